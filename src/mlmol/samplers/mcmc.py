"""Reference samplers for training data: batched Metropolis and Metropolis-adjusted Langevin.

The Boltzmann-generator paper trains on short simulations started in the metastable
states; these samplers run many short chains from each start, so the data cover every
well but are not in equilibrium proportions (reweighting fixes that later).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ..errors import MlmolError
from ..progress import progress as progress_bar
from ..systems.base import Energy, check_finite
from ..systems.particles import ParticleSystem

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def find_minima(system: Energy, seed: int = 0, starts: int = 64, spread: float = 2.0,
                steps: int = 500, tol: float = 1e-2) -> torch.Tensor:
    """Distinct local minima found by gradient descent from random starts, deepest first.

    Arguments:
        system: the energy (differentiable; without gradients the random starts are kept).
        seed: seeds the random starts.
        starts: the number of random starts, N(0, ``spread``²) per coordinate.
        spread: the standard deviation of the starts.
        steps: Adam steps (learning rate 0.02).
        tol: minima closer than 10 ``tol`` count as one.

    Returns:
        The minima ``[k, dim]`` (float64), lowest energy first.
    """
    g = torch.Generator().manual_seed(seed)
    x = (spread * torch.randn(starts, system.dim, generator=g, dtype=torch.float64)).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=0.02)
    for _ in range(steps):
        optimizer.zero_grad()
        total = torch.nan_to_num(system.energy(x), nan=0.0, posinf=0.0).sum()
        if not total.requires_grad:  # an energy without gradients: keep the random starts
            break
        total.backward()
        x.grad = torch.nan_to_num(x.grad, nan=0.0, posinf=0.0, neginf=0.0)
        optimizer.step()
    x = x.detach()
    with torch.no_grad():
        u = system.energy(x)
    keep = torch.isfinite(u) & torch.isfinite(x).all(-1)
    x, u = x[keep], u[keep]
    minima: list[torch.Tensor] = []
    for i in torch.argsort(u):
        if all(torch.linalg.norm(x[i] - m) > tol * 10 for m in minima):
            minima.append(x[i])
    if not minima:
        raise MlmolError(
            f"{system.name}: the energy is NaN or inf at all {starts} random starting points "
            f"(N(0, {spread}²) in every coordinate); fix the energy function or give starting "
            "points where it is finite (data.starts in the config)")
    return torch.stack(minima)


def starting_points(system: Energy, starts: ArrayLike | None = None, seed: int = 0) -> torch.Tensor:
    """``starts`` if given, else the system's listed minima, else minima found by descent.

    Returns:
        The starts ``[k, dim]`` (float64), checked to have finite energies.
    """
    if starts is None:
        starts = system.minima if system.minima is not None else find_minima(system, seed)
    x = torch.as_tensor(starts, dtype=torch.float64).reshape(-1, system.dim)
    check_finite(system, x, "starting points")
    return x


def _run(system: Energy, n: int, seed: int, starts, chains_per_start: int, burn: int, thin: int,
         propose, progress: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x0 = starting_points(system, starts, seed)
    x = x0.repeat_interleave(chains_per_start, dim=0)
    n_chains = len(x)
    kept_per_chain = math.ceil(n / n_chains)
    with torch.no_grad():
        u = system.energy(x).double()
    out = []
    steps = range(burn + kept_per_chain * thin)
    if progress:
        steps = progress_bar(steps, desc=f"{type(system).__name__} MCMC", unit="step")
    for step in steps:
        x, u = propose(x, u, g)
        if step >= burn and (step - burn) % thin == thin - 1:
            out.append(x.clone())
    return torch.stack(out).reshape(-1, system.dim)[:n]


def metropolis(system: Energy, n: int, seed: int = 0, starts: ArrayLike | None = None, step: float = 0.1,
               chains_per_start: int = 50, burn: int = 100, thin: int = 10, progress: bool = False,
               moves: str = "all") -> torch.Tensor:
    """``n`` samples (float64, ``[n, dim]``) from random-walk Metropolis chains (Gaussian steps).

    ``moves="all"``: a step moves every coordinate by N(0, ``step``²). ``moves="particle"``
    (a :class:`~mlmol.systems.particles.ParticleSystem`): a step is a sweep of single-particle moves
    (:func:`particle_sweep`), far better at decorrelating dense solvent; ``burn`` and ``thin``
    then count sweeps.

    Arguments:
        system: the reduced energy (kT).
        n: the number of samples returned.
        seed: seeds the chains.
        starts: starting points ``[k, dim]`` (default: :func:`starting_points`).
        step: the proposal's standard deviation per coordinate (the coordinates' units).
        chains_per_start: chains run from each start.
        burn: steps discarded at the start of each chain.
        thin: one sample is kept every ``thin`` steps.
        progress: show a progress bar.
        moves: ``"all"`` or ``"particle"``.

    Example:
        >>> from mlmol.systems import DoubleWell
        >>> metropolis(DoubleWell(), 1000, step=0.5).shape
        torch.Size([1000, 2])
    """
    if moves == "particle":
        if not isinstance(system, ParticleSystem):
            raise MlmolError(f"{system.name} is not a system of particles (no particle_energy): use moves='all'")
        return _run(system, n, seed, starts, chains_per_start, burn, thin,
                    lambda x, u, g: particle_sweep(system, x, u, g, step)[:2], progress)
    if moves != "all":
        raise MlmolError(f"unknown moves {moves!r}: use 'all' or 'particle'")

    def propose(x, u, g):
        y = x + step * torch.randn(x.shape, generator=g, dtype=x.dtype)
        with torch.no_grad():
            v = system.energy(y).double()
        accept = torch.log(torch.rand(len(x), generator=g, dtype=x.dtype)) < (u - v)
        accept &= torch.isfinite(v)
        return torch.where(accept[:, None], y, x), torch.where(accept, v, u)

    return _run(system, n, seed, starts, chains_per_start, burn, thin, propose, progress)


def langevin(system: Energy, n: int, seed: int = 0, starts: ArrayLike | None = None, step: float = 0.01,
             chains_per_start: int = 50, burn: int = 100, thin: int = 10, progress: bool = False) -> torch.Tensor:
    """``n`` samples (float64, ``[n, dim]``) from Metropolis-adjusted overdamped Langevin chains (MALA, time step
    ``step``: the proposal is x + step · F + √(2 step) ξ with the reduced force F = −∇u).

    The other arguments are those of :func:`metropolis`; the system must be differentiable.
    """

    def log_proposal(to, frm, force):
        return -((to - frm - step * force) ** 2).sum(-1) / (4 * step)

    def propose(x, u, g):
        fx = system.force(x)
        y = x + step * fx + math.sqrt(2 * step) * torch.randn(x.shape, generator=g, dtype=x.dtype)
        with torch.no_grad():
            v = system.energy(y).double()
        fy = torch.nan_to_num(system.force(y))
        log_ratio = (u - v) + log_proposal(x, y, fy) - log_proposal(y, x, fx)
        accept = (torch.log(torch.rand(len(x), generator=g, dtype=x.dtype)) < log_ratio) & torch.isfinite(v)
        return torch.where(accept[:, None], y, x), torch.where(accept, v, u)

    return _run(system, n, seed, starts, chains_per_start, burn, thin, propose, progress)


def particle_sweep(system: ParticleSystem, x: torch.Tensor, u: torch.Tensor, g: torch.Generator, step: float,
                   bias: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One sweep of single-particle Metropolis moves over all chains ``x`` ``[chains, dim]``.

    Particles are visited in a random order; each move displaces one particle by N(0, step²)
    per coordinate and is accepted on the change of ``system.particle_energy(x, i)`` (the terms
    that involve particle i) plus that of ``bias(x)`` (optional, per chain). ``u`` (the total
    reduced energy per chain) is kept up to date. Returns x, u and the acceptance rate. Far
    cheaper than moving all particles at once: each move costs O(n) and is accepted often.

    Arguments:
        system: a system of particles with ``particle_energy``.
        x: the chains' configurations ``[chains, dim]``.
        u: their reduced energies ``[chains]`` (kT).
        g: the random generator.
        step: the standard deviation of a move per coordinate.
        bias: an extra reduced energy per chain, ``[chains, dim] -> [chains]``, or None.
    """
    n, d = system.n_particles, system.spatial_dim
    accepted = 0.0
    for i in torch.randperm(n, generator=g).tolist():
        y = x.clone()
        y[:, i * d:(i + 1) * d] += step * torch.randn(len(x), d, generator=g, dtype=x.dtype)
        with torch.no_grad():
            du = system.particle_energy(y, i) - system.particle_energy(x, i)
            if bias is not None:
                du = du + bias(y) - bias(x)
        accept = (torch.log(torch.rand(len(x), generator=g, dtype=x.dtype)) < -du) & torch.isfinite(du)
        x = torch.where(accept[:, None], y, x)
        u = torch.where(accept, u + du, u)
        accepted += float(accept.double().mean())
    return x, u, accepted / n
