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


def exchange(u: torch.Tensor, scales: torch.Tensor, parity: int, generator: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """One round of neighbour swaps between temperature states (parallel tempering).

    Arguments:
        u: reduced energies ``[K]`` (at the base temperature) of the configurations now in states 0..K−1.
        scales: the states' temperature factors ``[K]``, increasing.
        parity: 0 tries the pairs (0, 1), (2, 3), ...; 1 tries (1, 2), (3, 4), ...
        generator: the random stream of the acceptance tests.

    Returns:
        The permutation ``[K]`` (state k takes the configuration of state ``perm[k]``) and the accepted
        mask of the pairs tried ``[K − 1]`` (False for pairs not tried). A swap of states i, j is accepted
        with probability min(1, exp((1/s_i − 1/s_j)(u_i − u_j))), which keeps each state's distribution.
    """
    k = len(u)
    perm = torch.arange(k, device=u.device)
    accepted = torch.zeros(max(k - 1, 0), dtype=torch.bool, device=u.device)
    for i in range(parity, k - 1, 2):
        log_ratio = (1 / scales[i] - 1 / scales[i + 1]) * (u[perm[i]] - u[perm[i + 1]])
        if bool(torch.log(torch.rand((), generator=generator, dtype=u.dtype, device=u.device)) < log_ratio):
            perm[i], perm[i + 1] = perm[i + 1].clone(), perm[i].clone()
            accepted[i] = True
    return perm, accepted


class ParallelTempering:
    """Batched Langevin dynamics of ``chains`` independent copies of a temperature ladder, with neighbour
    exchanges every ``exchange_every`` steps; all replicas (chains × states) in one energy call.

    Arguments:
        energy: the system (its ``kT`` is the lowest temperature's).
        x: starting positions ``[chains, states, dim]``.
        scales: temperature factors ``[states]``, increasing from 1 (e.g. ``torch.logspace(0, 1, 8)``:
            up to 10 × the system's temperature).
        timestep, friction, masses, seed: as for :class:`BatchedLangevin`.
        exchange_every: MD steps between exchange rounds.

    ``acceptance()`` gives each neighbour pair's swap acceptance so far; :meth:`run` returns the
    frames of every state ``[frames, chains, states, dim]`` (state 0 samples the system itself).
    """

    def __init__(self, energy: Energy, x: torch.Tensor, scales: torch.Tensor, timestep: float,
                 friction: float = 1.0, masses: torch.Tensor | None = None, seed: int = 0, exchange_every: int = 10):
        if x.ndim != 3 or x.shape[1] != len(scales):
            raise MlmolError(f"starting positions must be [chains, {len(scales)} states, dim], got {tuple(x.shape)}")
        self.chains, self.states, dim = x.shape
        self.scales = torch.as_tensor(scales, dtype=x.dtype, device=x.device)
        if not bool((self.scales[1:] > self.scales[:-1]).all()):
            raise MlmolError("the temperature factors must increase")
        self.md = BatchedLangevin(energy, x.reshape(-1, dim), timestep, friction, masses, seed,
                                  scales=self.scales.repeat(self.chains))
        self.exchange_every = int(exchange_every)
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.tried = torch.zeros(self.states - 1)
        self.accepted = torch.zeros(self.states - 1)
        self.rounds = 0

    def _exchange(self) -> None:
        x = self.md.x.reshape(self.chains, self.states, -1)
        v = self.md.v.reshape(self.chains, self.states, -1)
        u = self.md.u.reshape(self.chains, self.states)
        force = self.md.force.reshape(self.chains, self.states, -1)
        parity = self.rounds % 2
        for c in range(self.chains):
            perm, accepted = exchange(u[c], self.scales, parity, self.generator)
            # a configuration that moves from state perm[k] to state k keeps its velocity direction,
            # rescaled to the new temperature: sqrt(s_k / s_perm[k])
            v[c] = v[c, perm] * torch.sqrt(self.scales / self.scales[perm])[:, None]
            x[c], u[c], force[c] = x[c, perm], u[c, perm], force[c, perm]
            self.accepted += accepted.double()
        self.tried[parity::2] += self.chains
        self.rounds += 1
        self.md.x, self.md.v = x.reshape(len(self.md.x), -1), v.reshape(len(self.md.v), -1)
        self.md.u, self.md.force = u.reshape(-1), force.reshape(len(self.md.x), -1)

    def step(self, n: int) -> None:
        """``n`` MD steps, with an exchange round after every ``exchange_every`` (none for one state)."""
        if self.states == 1:
            self.md.step(n)
            return
        for _ in range(n // self.exchange_every):
            self.md.step(self.exchange_every)
            self._exchange()
        self.md.step(n % self.exchange_every)

    def run(self, n_frames: int, interval: int) -> torch.Tensor:
        """``n_frames`` frames ``[n_frames, chains, states, dim]``, one every ``interval`` steps."""
        frames = []
        for _ in range(n_frames):
            self.step(interval)
            frames.append(self.md.x.reshape(self.chains, self.states, -1).clone())
        return torch.stack(frames)

    def acceptance(self) -> torch.Tensor:
        """The fraction of accepted swaps per neighbour pair ``[states − 1]`` (NaN where none was tried)."""
        return self.accepted / self.tried
