"""Exact references by quadrature for systems of dim <= 2 with ``bounds``: log Z, samples, ΔF.

Every quadrature in mlmol evaluates the energy on :func:`boltzmann_grid`; the free-energy
profile by quadrature is :func:`mlmol.estimators.exact_profile` (it bins like the estimates).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..errors import MlmolError
from .base import Bounds, Energy, State

StateLike = Callable[[torch.Tensor], torch.Tensor] | str  # a mask function of x, or a spec like "x0 < 0"


def grid(bounds: Bounds, points: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Axes (``points`` each) and the flattened grid ``[points**d, d]`` (float64) over a box.

    Arguments:
        bounds: the box ``((lo, hi), ...)``, one pair per coordinate.
        points: grid points per axis, endpoints included.

    Example:
        >>> axes, x = grid(((0.0, 1.0), (0.0, 2.0)), 3)
        >>> x.shape
        torch.Size([9, 2])
    """
    axes = [torch.linspace(lo, hi, points, dtype=torch.float64) for lo, hi in bounds]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return axes, torch.stack([m.reshape(-1) for m in mesh], dim=-1)


def require_bounds(system: Energy) -> Bounds:
    """The system's box, or a clear error when quadrature is not possible (no bounds or dim > 2)."""
    if system.bounds is None or system.dim > 2:
        raise MlmolError(
            f"{system.name}: exact references by quadrature need dim <= 2 and bounds "
            "(set 'bounds' in the run's config.yaml)"
        )
    return system.bounds


def boltzmann_grid(system: Energy, points: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Axes, grid points ``x`` ``[G, dim]`` and reduced energies ``u(x)`` ``[G]`` (float64) over
    ``system.bounds``: the one evaluation every quadrature here starts from."""
    axes, x = grid(require_bounds(system), points)
    with torch.no_grad():
        u = system.energy(x).double()
    u = torch.where(torch.isnan(u), torch.inf, u)  # undefined energy: no Boltzmann weight
    if not torch.isfinite(u).any():
        raise MlmolError(f"{system.name}: the energy is not finite anywhere on the quadrature grid over {system.bounds}")
    return axes, x, u


def log_partition(system: Energy, points: int = 801) -> float:
    """log Z = log ∫ exp(−u) dx by quadrature over ``system.bounds`` (dim <= 2 only).

    Arguments:
        system: the energy (reduced, kT).
        points: grid points per axis.

    Example:
        >>> from mlmol.systems import Gaussian
        >>> system = Gaussian()
        >>> abs(log_partition(system) - system.log_z) < 1e-6
        True
    """
    axes, _, u = boltzmann_grid(system, points)
    cell = math.prod(float(a[1] - a[0]) for a in axes)
    return float(torch.logsumexp(-u, 0)) + math.log(cell)


def boltzmann_probabilities(system: Energy, points: int) -> tuple[torch.Tensor, np.ndarray]:
    """Grid points ``[G, dim]`` and their Boltzmann probabilities ``[G]`` (summing to 1), G = ``points``**dim."""
    _, x, u = boltzmann_grid(system, points)
    p = torch.exp(-(u - u[torch.isfinite(u)].min())).numpy()
    return x, p / p.sum()


def exact_delta_f(system: Energy, state_a: StateLike, state_b: StateLike, points: int = 1001) -> float:
    """Exact F_a − F_b (kT) by quadrature over ``system.bounds`` (dim <= 2).

    Arguments:
        system: the energy (reduced, kT).
        state_a: the two states, as specs (``"x0 < 0"``) or masks ``[G, dim] -> [G]``.
        state_b: the two states, as specs (``"x0 < 0"``) or masks ``[G, dim] -> [G]``.
        points: grid points per axis.
    """
    x, p = boltzmann_probabilities(system, points)
    a, b = (State(s) if isinstance(s, str) else s for s in (state_a, state_b))
    return float(-np.log(p[a(x).numpy().astype(bool)].sum() / p[b(x).numpy().astype(bool)].sum()))


def exact_samples(system: Energy, n: int, seed: int = 0, points: int = 801) -> torch.Tensor:
    """``n`` samples (float64 ``[n, dim]``) of exp(−u) by quadrature over ``system.bounds``
    (dim <= 2): a grid cell drawn with its Boltzmann weight, then a uniform point inside it."""
    axes, x, u = boltzmann_grid(system, points)
    g = torch.Generator().manual_seed(seed)
    cells = torch.multinomial(torch.softmax(-u, 0), n, replacement=True, generator=g)
    spacing = torch.tensor([float(a[1] - a[0]) for a in axes], dtype=torch.float64)
    return x[cells] + (torch.rand(n, len(axes), generator=g, dtype=torch.float64) - 0.5) * spacing
