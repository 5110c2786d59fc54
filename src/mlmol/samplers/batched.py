"""Batched Langevin dynamics: R replicas of one system stepped together as one tensor ``[R, dim]``.

The BAOAB splitting (Leimkuhler & Matthews 2013) with an exact Ornstein–Uhlenbeck velocity update:
half kick, half drift, friction and noise, half drift, half kick, one force evaluation per step. Its
configurational distribution is exp(−u) of the same energy the generators target (exact for a
harmonic oscillator at any stable time step). Units: the energy's ``kT`` sets the energy unit
(kJ/mol for molecules, 1 for reduced toy systems); with nm, atomic mass units (g/mol) and ps,
forces of kJ/mol/nm divided by masses are accelerations in nm/ps².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import MlmolError
from ..systems.base import Energy


class BlowUp(MlmolError):
    """A replica left the sampled region (a non-finite energy or a coordinate beyond ``max_coordinate``);
    the integrator keeps the last good state."""


@dataclass
class LangevinState:
    """Positions ``x`` and velocities ``v`` ``[R, dim]``, the step count and the noise generator's state."""

    x: torch.Tensor
    v: torch.Tensor
    step: int
    generator: torch.Tensor


class BatchedLangevin:
    """BAOAB Langevin dynamics of ``R`` replicas of ``energy``, seeded and checkpointable.

    Arguments:
        energy: the system; its reduced energy u(x) ``[R]`` and ``kT`` (energy unit).
        x: starting positions ``[R, dim]`` (one row per replica).
        timestep: the time step (ps for molecules; reduced time for toy systems).
        friction: the collision rate γ (1/ps).
        masses: ``[dim]`` per coordinate, or ``[dim // 3]`` per atom (amu); default 1.
        seed: seeds the velocities and the noise.
        max_coordinate: a replica with a coordinate beyond this (in length units) has blown up.
        scales: ``[R]`` temperature factors: replica r samples exp(−u / s_r), the energy at s_r times the
            system's temperature (parallel tempering); default 1 for every replica.

    Example:
        >>> from mlmol.systems import DoubleWell
        >>> md = BatchedLangevin(DoubleWell(), torch.zeros(8, 2), timestep=0.01, friction=1.0, seed=0)
        >>> frames = md.run(10, interval=5)  # [10, 8, 2]
    """

    def __init__(self, energy: Energy, x: torch.Tensor, timestep: float, friction: float = 1.0,
                 masses: torch.Tensor | None = None, seed: int = 0, max_coordinate: float = 1e3,
                 scales: torch.Tensor | None = None):
        if x.ndim != 2 or x.shape[1] != energy.dim:
            raise MlmolError(f"starting positions must be [replicas, {energy.dim}], got {tuple(x.shape)}")
        if not timestep > 0 or not friction > 0:
            raise MlmolError(f"the time step and the friction must be positive, got {timestep} and {friction}")
        self.energy, self.dt, self.gamma, self.max_coordinate = energy, float(timestep), float(friction), max_coordinate
        dtype, device = x.dtype, x.device
        m = torch.ones(energy.dim, dtype=dtype, device=device) if masses is None else torch.as_tensor(
            masses, dtype=dtype, device=device)
        if m.numel() * 3 == energy.dim:
            m = m.repeat_interleave(3)
        if m.shape != (energy.dim,) or not bool((m > 0).all()):
            raise MlmolError(f"masses must be positive, one per coordinate ({energy.dim}) or per atom")
        self.masses = m
        self.kT = float(energy.kT)
        self.scales = torch.ones(len(x), dtype=dtype, device=device) if scales is None else torch.as_tensor(
            scales, dtype=dtype, device=device)
        if self.scales.shape != (len(x),) or not bool((self.scales > 0).all()):
            raise MlmolError(f"scales must be {len(x)} positive temperature factors, one per replica")
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.x = x.detach().clone()
        self.v = self._thermal_velocities()
        self.steps_done = 0
        self.u, self.force = self._evaluate(self.x)
        self._check(self.x, self.u, "the start")

    def _sigma(self) -> torch.Tensor:
        """Thermal velocity scale ``[R, dim]``: sqrt(s_r kT / m)."""
        return torch.sqrt(self.kT * self.scales[:, None] / self.masses)

    def _thermal_velocities(self) -> torch.Tensor:
        noise = torch.randn(self.x.shape, generator=self.generator, dtype=self.x.dtype, device=self.x.device)
        return noise * self._sigma()

    def _evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reduced energies ``[R]`` and forces ``[R, dim]`` (energy unit per length)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            u = self.energy.energy(x)
            (grad,) = torch.autograd.grad(u.sum(), x)
        return u.detach(), -self.kT * grad

    def _check(self, x: torch.Tensor, u: torch.Tensor, where: str) -> None:
        bad = ~torch.isfinite(u) | (x.abs() > self.max_coordinate).any(-1) | ~torch.isfinite(x).all(-1)
        if bool(bad.any()):
            replica = int(torch.nonzero(bad)[0])
            raise BlowUp(f"replica {replica} of {len(x)} blew up at {where} (energy {float(u[replica]):.4g} kT); "
                         "the last good state is kept: lower the time step or check the system")

    def step(self, n: int = 1) -> None:
        """``n`` BAOAB steps of every replica; on a blow-up the state stays at the last good step."""
        c1 = math.exp(-self.gamma * self.dt)
        c2 = math.sqrt(1 - c1 * c1)
        sigma = self._sigma()
        half = 0.5 * self.dt
        for _ in range(n):
            v = self.v + half * self.force / self.masses
            x = self.x + half * v
            noise = torch.randn(x.shape, generator=self.generator, dtype=x.dtype, device=x.device)
            v = c1 * v + c2 * sigma * noise
            x = x + half * v
            u, force = self._evaluate(x)
            self._check(x, u, f"step {self.steps_done + 1}")
            self.x, self.v, self.u, self.force = x, v + half * force / self.masses, u, force
            self.steps_done += 1

    def run(self, n_frames: int, interval: int = 1) -> torch.Tensor:
        """``n_frames`` frames ``[n_frames, R, dim]``, one every ``interval`` steps."""
        if n_frames < 1 or interval < 1:
            raise MlmolError(f"n_frames and interval must be positive (got {n_frames}, {interval})")
        frames = []
        for _ in range(n_frames):
            self.step(interval)
            frames.append(self.x.clone())
        return torch.stack(frames)

    def state(self) -> LangevinState:
        """Everything needed to continue bit for bit."""
        return LangevinState(self.x.clone(), self.v.clone(), self.steps_done, self.generator.get_state())

    def restore(self, state: LangevinState) -> None:
        """Continue from :meth:`state`."""
        if state.x.shape != self.x.shape:
            raise MlmolError(f"the saved state holds {tuple(state.x.shape)} positions, this run {tuple(self.x.shape)}")
        self.x, self.v, self.steps_done = state.x.clone(), state.v.clone(), state.step
        self.generator.set_state(state.generator)
        self.u, self.force = self._evaluate(self.x)
