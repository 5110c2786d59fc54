"""Sampling benchmarks known exactly: normalising constants and independent samples for judging
generators trained from the energy alone (Midgley et al., ICLR 2023).

Both are in reduced units (kT = 1); ``log_z`` holds log Z = log ∫ exp(−u) dx and ``sample`` draws exact
samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import MlmolError
from .base import Energy


class GaussianMixture(Energy):
    """u(x) = −log Σ_k w_k N(x; μ_k, diag σ_k²), a normalised mixture: log Z = 0.

    Arguments:
        means: the component means μ ``[K, d]``.
        std: the standard deviations σ, one number or ``[K, d]``.
        weights: the mixture weights ``[K]`` (normalised here; default equal).

    Example:
        >>> mixture = GaussianMixture(torch.tensor([[-2.0], [2.0]]), std=0.5)
        >>> mixture.sample(4, torch.Generator().manual_seed(0)).shape
        torch.Size([4, 1])
    """

    name = "gaussian-mixture"
    log_z = 0.0

    def __init__(self, means: torch.Tensor, std: float | torch.Tensor = 1.0, weights: torch.Tensor | None = None):
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.ndim != 2:
            raise MlmolError(f"mixture means must be [components, dim], got shape {tuple(means.shape)}")
        super().__init__(dim=means.shape[1])
        std = torch.as_tensor(std, dtype=torch.float64).expand_as(means).clone()
        weights = torch.ones(len(means), dtype=torch.float64) if weights is None else torch.as_tensor(weights).double()
        if not bool((std > 0).all()) or not bool((weights > 0).all()) or len(weights) != len(means):
            raise MlmolError("mixture standard deviations and weights must be positive, one weight per component")
        self.register_buffer("means", means)
        self.register_buffer("std", std)
        self.register_buffer("log_weights", torch.log(weights / weights.sum()))
        reach = (means.abs() + 8 * std).max(0).values
        self.bounds = tuple((-float(r), float(r)) for r in reach)
        self.profile_coords = tuple(range(min(self.dim, 2)))
        self.minima = tuple(tuple(m) for m in means.tolist())

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy ``[*batch]`` of ``x`` ``[*batch, d]``."""
        means, std = self.means.to(x.dtype), self.std.to(x.dtype)
        z = (x[..., None, :] - means) / std  # [*batch, K, d]
        log_normal = -0.5 * (z**2).sum(-1) - torch.log(std).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return -torch.logsumexp(self.log_weights.to(x.dtype) + log_normal, -1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact samples ``[n, d]``."""
        component = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[component] + self.std[component] * noise


def gmm40(seed: int = 0) -> GaussianMixture:
    """GMM-40 of the FAB paper: 40 equal Gaussians in 2D, means uniform in [−40, 40]², σ = softplus(1).

    The means are drawn from ``torch.Generator().manual_seed(seed)``; each coordinate's σ ≈ 1.313."""
    generator = torch.Generator().manual_seed(seed)
    means = (torch.rand(40, 2, generator=generator, dtype=torch.float32).double() - 0.5) * 2 * 40
    mixture = GaussianMixture(means, std=float(F.softplus(torch.tensor(1.0, dtype=torch.float64))))
    mixture.name = "gmm-40"
    return mixture


class ManyWell(Energy):
    """Many Well: independent 2D double wells (16 copies: the FAB paper's Many Well 32, with 2¹⁶ modes).

    Each pair has u(x₁, x₂) = x₁⁴ − 6 x₁² − ½ x₁ + ½ x₂²; the right well (x₁ ≈ 1.7) is the deeper.

    ``log_z`` is exact to quadrature precision (the x₁ integral on a fine grid, the x₂ Gaussian in
    closed form); :meth:`sample` inverts x₁'s tabulated distribution function.

    Example:
        >>> round(ManyWell(16).log_z, 3)
        164.696
    """

    name = "many-well"
    _GRID = torch.linspace(-6.0, 6.0, 240_001, dtype=torch.float64)  # exp(−u₁) < 1e-200 beyond ±6

    def __init__(self, copies: int = 16):
        if copies < 1:
            raise MlmolError(f"ManyWell needs at least one copy, got {copies}")
        super().__init__(dim=2 * copies)
        self.copies = copies
        self.name = f"many-well-{2 * copies}"
        density = torch.exp(-self._u1(self._GRID))
        cell = float(self._GRID[1] - self._GRID[0])
        cdf = torch.cumulative_trapezoid(density, dx=cell)
        self.log_z1 = math.log(float(cdf[-1]))  # the x₁ integral
        self._cdf = torch.cat([torch.zeros(1, dtype=torch.float64), cdf / cdf[-1]])
        self.log_z = copies * (self.log_z1 + 0.5 * math.log(2 * math.pi))
        self.bounds = ((-3.0, 3.0), (-6.0, 6.0)) * copies
        self.states = ("x0 < 0", "x0 > 0")
        self.profile_coords = (0,)

    @staticmethod
    def _u1(x1: torch.Tensor) -> torch.Tensor:
        return x1**4 - 6 * x1**2 - 0.5 * x1

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy ``[*batch]`` of ``x`` ``[*batch, 2 copies]``."""
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return (self._u1(x1) + 0.5 * x2**2).sum(-1)

    def left_fraction(self) -> float:
        """The exact probability that one pair's x₁ < 0 (the shallower well)."""
        return float(self._cdf[len(self._GRID) // 2])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact samples ``[n, 2 copies]``."""
        u = torch.rand(n, self.copies, generator=generator, dtype=torch.float64)
        index = torch.searchsorted(self._cdf, u).clamp(1, len(self._GRID) - 1)
        lo, hi = self._cdf[index - 1], self._cdf[index]
        x1 = self._GRID[index - 1] + (u - lo) / (hi - lo) * (self._GRID[1] - self._GRID[0])
        x2 = torch.randn(n, self.copies, generator=generator, dtype=torch.float64)
        return torch.stack([x1, x2], -1).reshape(n, self.dim)
