"""Replica exchange over batched Langevin dynamics: temperature ladders (parallel tempering) and
Hamiltonian exchange between umbrella windows, every replica of every chain in one energy call, with
MBAR (pymbar) over all states.

A *state* k has a temperature factor s_k and a bias b_k(x) (reduced, in kT of the system's own
temperature): it samples exp(−u_k(x)) with u_k(x) = (u(x) + b_k(x)) / s_k. A *chain* is one copy of
the whole ladder: slot k of a chain always runs state k, and exchanges move configurations between
neighbouring slots. Chains are independent, which gives honest error bars (bootstrap over chains).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data import ess as kish_ess
from ..errors import MlmolError
from ..estimators import mbar_split_delta_f
from ..geometry import wrap_angle
from ..systems.base import Energy
from .batched import BatchedLangevin, LangevinState

Bias = Callable[[torch.Tensor], torch.Tensor]  # x [*batch, dim] -> each state's bias [*batch, K] (kT)


@dataclass
class States:
    """The thermodynamic states of a ladder.

    Arguments:
        scales: temperature factors ``[K]`` (1 is the system's temperature).
        bias: optional, differentiable: positions ``[*batch, dim]`` to every state's bias ``[*batch, K]``
            in kT at the system's temperature (e.g. :func:`torsion_umbrellas`).
        centres: what the states are, for logs and plots (e.g. umbrella centres in degrees).
    """

    scales: torch.Tensor
    bias: Bias | None = None
    centres: np.ndarray | None = field(default=None)

    def __len__(self) -> int:
        return len(self.scales)

    def reduced(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Every configuration in every state: ``[*batch, K]`` from base energies ``u`` ``[*batch]`` and
        positions ``x`` ``[*batch, dim]``."""
        biased = u[..., None] if self.bias is None else u[..., None] + self.bias(x)
        return biased / self.scales.to(u)


def temperature_ladder(low: float, high: float, count: int) -> States:
    """``count`` temperatures spaced geometrically from ``low`` to ``high`` (kelvin, or any unit of the
    system's temperature ``low``), as factors of ``low``.

    Example:
        >>> temperature_ladder(300, 600, 3).scales
        tensor([1.0000, 1.4142, 2.0000], dtype=torch.float64)
    """
    if not 0 < low <= high or count < 1 or (count == 1 and high != low):
        raise MlmolError(f"a temperature ladder needs 0 < LOW <= HIGH and COUNT >= 1 (and LOW = HIGH for one), "
                         f"got {low}:{high}:{count}")
    return States(torch.logspace(0, math.log10(high / low), count, dtype=torch.float64) if count > 1
                  else torch.ones(1, dtype=torch.float64))


def torsion_umbrellas(variables: Sequence[Callable[[torch.Tensor], torch.Tensor]], centres_deg: np.ndarray,
                      k: float, scales: torch.Tensor | None = None) -> States:
    """Hamiltonian-exchange states: harmonic restraints ½ k Σ_d (θ_d(x) − c_kd)² on torsions (periodic
    differences), one state per row of ``centres_deg``.

    Arguments:
        variables: the torsions θ_d(x) ``[*batch]`` (radians), e.g. ``[system.variables["phi"]]``.
        centres_deg: the window centres ``[K, len(variables)]`` (degrees).
        k: the restraint constant (kT/rad² at the system's temperature).
        scales: temperature factors ``[K]`` (default 1: every window at the system's temperature).
    """
    centres = np.asarray(centres_deg, dtype=np.float64).reshape(len(centres_deg), -1)
    if centres.shape[1] != len(variables) or not k > 0:
        raise MlmolError(f"umbrella centres must be [windows, {len(variables)}] degrees and k positive")
    theta0 = torch.from_numpy(np.radians(centres))

    def bias(x: torch.Tensor) -> torch.Tensor:
        theta = torch.stack([variable(x) for variable in variables], -1)  # [*batch, d]
        return 0.5 * k * (wrap_angle(theta[..., None, :] - theta0.to(theta)) ** 2).sum(-1)

    return States(torch.ones(len(centres), dtype=torch.float64) if scales is None else scales, bias, centres)


def exchange(reduced: torch.Tensor, parity: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One round of neighbour swaps in every chain.

    Arguments:
        reduced: ``[chains, K, K]``: entry (c, a, k) is u_k of the configuration now in slot a of chain c.
        parity: 0 tries the slot pairs (0, 1), (2, 3), ...; 1 tries (1, 2), (3, 4), ...
        generator: the random stream of the acceptance tests.

    Returns:
        The permutation ``[chains, K]`` (slot k takes the configuration of slot ``perm[c, k]``) and the
        accepted mask ``[chains, K − 1]`` of the pairs (False for pairs not tried). Slots i, j swap with
        probability min(1, exp(u_i(x_i) + u_j(x_j) − u_i(x_j) − u_j(x_i))), which keeps every state's
        distribution (detailed balance).
    """
    chains, k = reduced.shape[:2]
    perm = torch.arange(k, device=reduced.device).repeat(chains, 1)
    accepted = torch.zeros(chains, max(k - 1, 0), dtype=torch.bool, device=reduced.device)
    i = torch.arange(parity, k - 1, 2, device=reduced.device)
    if len(i) == 0:
        return perm, accepted
    log_ratio = (reduced[:, i, i] + reduced[:, i + 1, i + 1] - reduced[:, i + 1, i] - reduced[:, i, i + 1])
    draw = torch.rand(log_ratio.shape, generator=generator, dtype=reduced.dtype, device=reduced.device)
    swap = torch.log(draw) < log_ratio  # [chains, pairs]
    perm[:, i] = torch.where(swap, i + 1, i)
    perm[:, i + 1] = torch.where(swap, i, i + 1)
    accepted[:, i] = swap
    return perm, accepted


class _SlotEnergy(Energy):
    """The energy each slot's dynamics feels: u(x) + b_slot(x) (replica r is slot r mod K)."""

    def __init__(self, energy: Energy, states: States):
        super().__init__(energy.dim, energy.kT)
        self.base, self.states, self.name = energy, states, energy.name

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        u = self.base.energy(x)
        if self.states.bias is None:
            return u
        k = len(self.states)
        bias = self.states.bias(x.reshape(-1, k, x.shape[-1]))  # [chains, K slots, K states]
        return u + torch.diagonal(bias, dim1=-2, dim2=-1).reshape(u.shape)


@dataclass
class ExchangeState:
    """Everything a replica-exchange run needs to continue bit for bit."""

    md: LangevinState
    generator: torch.Tensor
    rounds: int
    tried: torch.Tensor
    accepted: torch.Tensor


@dataclass
class ExchangeSamples:
    """Frames of a replica-exchange run, slot k holding state k's samples.

    ``energies``: the system's reduced energy u(x) ``[T, chains, K]``; ``reduced``: every sample in every
    state ``[T, chains, K (sampled in), K (evaluated in)]``; ``observed``: ``observe(x)`` ``[T, chains, K, m]``
    (or the positions when no observable was given).
    """

    energies: torch.Tensor
    reduced: torch.Tensor
    observed: torch.Tensor


class ReplicaExchange:
    """Batched Langevin dynamics of ``chains`` independent copies of a ladder of states, with neighbour
    exchanges every ``exchange_every`` steps; all chains × states replicas in one energy call.

    Arguments:
        energy: the system (its ``kT`` is the reference temperature, scale 1).
        x: starting positions ``[chains, K, dim]``.
        states: the ladder (:func:`temperature_ladder`, :func:`torsion_umbrellas`).
        timestep, friction, masses: as for :class:`~mlmol.samplers.batched.BatchedLangevin`.
        seed: seeds the velocities, the noise and the swap draws (independent streams spawned from it).
        exchange_every: MD steps between exchange rounds (alternating even and odd pairs).

    Example:
        >>> from mlmol.systems import DoubleWell
        >>> rex = ReplicaExchange(DoubleWell(), torch.zeros(4, 3, 2), temperature_ladder(1, 4, 3), timestep=0.01)
        >>> samples = rex.run(10, interval=20)
        >>> samples.energies.shape, rex.acceptance().shape
        (torch.Size([10, 4, 3]), torch.Size([2]))
    """

    def __init__(self, energy: Energy, x: torch.Tensor, states: States, timestep: float, friction: float = 1.0,
                 masses: torch.Tensor | None = None, seed: int = 0, exchange_every: int = 10):
        if x.ndim != 3 or x.shape[1] != len(states):
            raise MlmolError(f"starting positions must be [chains, {len(states)} states, dim], got {tuple(x.shape)}")
        if not bool((states.scales > 0).all()) or exchange_every < 1 or seed < 0:
            raise MlmolError("temperature factors must be positive, exchange_every at least 1 and the seed "
                             f"a whole number ≥ 0 (got seed {seed})")
        self.chains, k, dim = x.shape
        self.states = states
        self.scales = states.scales.to(x)
        # the dynamics and the swap draws get independent streams spawned from ``seed``, so that no other seed's
        # dynamics (seed + 1, ...) reuses this run's swap draws
        dynamics, swaps = (int(s.generate_state(1, np.uint64)[0]) for s in np.random.SeedSequence(seed).spawn(2))
        self.md = BatchedLangevin(_SlotEnergy(energy, states), x.reshape(-1, dim), timestep, friction, masses,
                                  dynamics, scales=self.scales.repeat(self.chains))
        self.exchange_every = int(exchange_every)
        self.generator = torch.Generator(device=x.device).manual_seed(swaps)
        self.tried = torch.zeros(max(k - 1, 0), dtype=torch.float64)
        self.accepted = torch.zeros(max(k - 1, 0), dtype=torch.float64)
        self.rounds = 0

    def _view(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(self.chains, len(self.states), *t.shape[1:])

    def energies(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current base energies u(x) ``[chains, K]`` and every configuration in every state
        ``[chains, K, K]``."""
        x = self._view(self.md.x)
        u = self._view(self.md.u)
        if self.states.bias is not None:
            u = u - torch.diagonal(self.states.bias(x), dim1=-2, dim2=-1)
        return u, self.states.reduced(u, x)

    def _exchange(self) -> None:
        reduced = self.energies()[1]
        parity = self.rounds % 2
        perm, accepted = exchange(reduced, parity, self.generator)
        rows = torch.arange(self.chains, device=perm.device)[:, None]
        scales = self.scales
        x, v = self._view(self.md.x)[rows, perm], self._view(self.md.v)[rows, perm]
        # a configuration moving from slot perm[k] to slot k keeps its velocity direction, rescaled to the
        # new temperature: sqrt(s_k / s_perm[k])
        v = v * torch.sqrt(scales / scales[perm])[..., None]
        self.md.x, self.md.v = x.reshape(self.md.x.shape), v.reshape(self.md.v.shape)
        if self.states.bias is None:  # same energy function in every slot: permute the energies and forces
            self.md.u = self._view(self.md.u)[rows, perm].reshape(self.md.u.shape)
            self.md.force = self._view(self.md.force)[rows, perm].reshape(self.md.force.shape)
        else:  # another bias: the forces change
            self.md.u, self.md.force = self.md._evaluate(self.md.x)
        self.accepted += accepted.double().sum(0).cpu()
        self.tried[parity::2] += self.chains
        self.rounds += 1

    def step(self, n: int) -> None:
        """``n`` MD steps, with an exchange round whenever the step count reaches a multiple of
        ``exchange_every`` (none for one state), so that the schedule does not depend on how a run is cut."""
        if len(self.states) == 1:
            self.md.step(n)
            return
        while n > 0:
            chunk = min(n, self.exchange_every - self.md.steps_done % self.exchange_every)
            self.md.step(chunk)
            n -= chunk
            if self.md.steps_done % self.exchange_every == 0:
                self._exchange()

    def run(self, n_frames: int, interval: int,
            observe: Callable[[torch.Tensor], torch.Tensor] | None = None) -> ExchangeSamples:
        """``n_frames`` frames, one every ``interval`` steps (see :class:`ExchangeSamples`); ``observe`` maps
        positions ``[chains, K, dim]`` to what is kept ``[chains, K, m]`` (default: the positions)."""
        if n_frames < 1 or interval < 1:
            raise MlmolError(f"n_frames and interval must be positive (got {n_frames}, {interval})")
        energies, reduced, observed = [], [], []
        for _ in range(n_frames):
            self.step(interval)
            u, r = self.energies()
            x = self._view(self.md.x)
            energies.append(u)
            reduced.append(r)
            observed.append(x.clone() if observe is None else observe(x).detach())
        return ExchangeSamples(torch.stack(energies), torch.stack(reduced), torch.stack(observed))

    def acceptance(self) -> torch.Tensor:
        """The fraction of accepted swaps per neighbour pair ``[K − 1]`` (NaN where none was tried)."""
        return self.accepted / self.tried

    def state(self) -> ExchangeState:
        """Everything needed to continue bit for bit."""
        return ExchangeState(self.md.state(), self.generator.get_state(), self.rounds, self.tried.clone(),
                             self.accepted.clone())

    def restore(self, state: ExchangeState) -> None:
        """Continue from :meth:`state`."""
        self.md.restore(state.md)
        self.generator.set_state(state.generator)
        self.rounds, self.tried, self.accepted = state.rounds, state.tried.clone(), state.accepted.clone()


def mbar_delta_f(samples: ExchangeSamples, inside: torch.Tensor, target: torch.Tensor | None = None,
                 bootstrap: int = 20, seed: int = 0) -> tuple[float, float, dict]:
    """F(inside) − F(outside) in kT in a target state by MBAR (pymbar) over every state's samples.

    Arguments:
        samples: a run's frames (:meth:`ReplicaExchange.run`), ``[T, chains, K, ...]``.
        inside: which samples lie in the state of interest ``[T, chains, K]`` (bool).
        target: every sample's reduced energy in the target state ``[T, chains, K]``; default
            ``samples.energies``: the system itself at its temperature, unbiased.
        bootstrap: resamples of whole chains (independent by construction) for the standard error;
            frames within a chain are correlated, so MBAR's own error would be too small.
        seed: the bootstrap's random stream.

    Returns:
        (ΔF, its bootstrap standard error, details: MBAR's analytical error, the state free energies f_k,
        the effective samples in the target state and the bootstrap values).
    """
    from pymbar import MBAR

    t, chains, k = inside.shape
    target = samples.energies if target is None else target

    def solve(which: np.ndarray, initial: np.ndarray | None = None) -> tuple[float, float, np.ndarray, float]:
        # sample n = (frame, chain, slot), drawn from state slot; u_kn[state, n]
        # [state, slot × T × chains]
        u_kn = samples.reduced[:, which].permute(3, 2, 0, 1).reshape(k, -1).double().cpu().numpy()
        n_k = np.full(k, t * len(which))
        mask = inside[:, which].permute(2, 0, 1).reshape(-1).cpu().numpy()
        u_target = target[:, which].permute(2, 0, 1).reshape(-1).double().cpu().numpy()
        if mask.all() or not mask.any():
            raise MlmolError("every sample falls on one side of the state: run longer or widen the ladder")
        mbar = MBAR(u_kn, n_k, initial_f_k=initial)
        value, analytical = mbar_split_delta_f(mbar, mask, u_target)
        log_w = mbar.f_k[None, :] - u_kn.T  # [N, K]
        log_w = -u_target - np.logaddexp.reduce(log_w + np.log(n_k)[None, :], axis=1)
        return value, analytical, mbar.f_k, kish_ess(torch.from_numpy(log_w))

    everything = np.arange(chains)
    value, analytical, f_k, ess = solve(everything)
    rng = np.random.default_rng(seed)
    values = [solve(rng.integers(0, chains, chains), f_k)[0] for _ in range(bootstrap)]
    stderr = float(np.std(values, ddof=1)) if bootstrap > 1 else float("nan")
    return value, stderr, {"mbar_stderr": analytical, "f_k": f_k.tolist(), "effective_samples": ess,
                           "bootstrap": values}
