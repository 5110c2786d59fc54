"""The harmonic approximation at an energy minimum, from the energy alone: the minimum (L-BFGS) and
independent samples of the Gaussian exp(−½ δᵀ H δ) with H the Hessian of the reduced energy.

It gives a flow trained without data its scales (the widths of bonds, angles and rigid torsions);
it is no equilibrium sample of anything anharmonic.
"""

from __future__ import annotations

import torch

from ..errors import MlmolError
from ..systems.base import Energy


def minimise(system: Energy, x: torch.Tensor, steps: int = 200) -> torch.Tensor:
    """A local minimum ``[dim]`` (float64) of the reduced energy, by L-BFGS from ``x`` ``[dim]``."""
    y = x.detach().double().clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([y], max_iter=steps, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        u = system.energy(y[None])[0]
        u.backward()
        return u

    optimizer.step(closure)
    if not bool(torch.isfinite(system.energy(y.detach()[None])).all()):
        raise MlmolError(f"minimising {system.name} from its structure reached a non-finite energy; check the "
                         "structure (clashes, missing atoms)")
    return y.detach()


def harmonic_samples(system: Energy, x0: torch.Tensor, n: int, generator: torch.Generator | None = None,
                     zero_modes: int = 6) -> torch.Tensor:
    """``n`` samples ``[n, dim]`` (float64) of the harmonic approximation at the minimum ``x0`` ``[dim]``.

    The ``zero_modes`` softest modes of the Hessian (rigid translations and rotations of a molecule:
    6) are left out; the rest must be stiff (positive), else ``x0`` is no minimum.

    Example:
        >>> from mlmol.systems import Gaussian
        >>> g = Gaussian()
        >>> x = harmonic_samples(g, g.mean, 50_000, torch.Generator().manual_seed(0), zero_modes=0)
        >>> bool(torch.allclose(torch.cov(x.T), torch.linalg.inv(g.precision), atol=0.05))
        True
    """
    x0 = x0.detach().double()
    hessian = torch.autograd.functional.hessian(lambda y: system.energy(y[None])[0], x0)
    values, vectors = torch.linalg.eigh(0.5 * (hessian + hessian.T))
    values, vectors = values[zero_modes:], vectors[:, zero_modes:]
    if not bool((values > 0).all()):
        raise MlmolError(f"{system.name} is not at a minimum (the Hessian has {int((values <= 0).sum())} negative "
                         "modes); minimise first")
    z = torch.randn(n, len(values), generator=generator, dtype=torch.float64)
    return x0 + (z / values.sqrt()) @ vectors.T
