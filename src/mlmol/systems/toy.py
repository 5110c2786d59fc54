"""Two-dimensional toy systems of Noé et al., Science 2019 (reduced units, kT = 1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import Energy


class DoubleWell(Energy):
    """u(x) = a x1⁴ + b x1² + c x1 + d x2² with the paper's (a, b, c, d) = (1, −6, 1, 1/2).

    Minima near x1 ≈ −1.77 (u ≈ −10.8) and x1 ≈ +1.69 (u ≈ −7.3); the left well is
    deeper by ≈ 3.4 kT of free energy; the barrier at x1 ≈ 0.08 is ≈ 10.8 kT above it.

    Arguments:
        a: the coefficients (kT per power of the coordinate).
        b: the coefficients (kT per power of the coordinate).
        c: the coefficients (kT per power of the coordinate).
        d: the coefficients (kT per power of the coordinate).

    Example:
        >>> DoubleWell().energy(torch.tensor([[0.0, 0.0], [1.0, 2.0]]))
        tensor([ 0., -2.])
    """

    name = "double-well"
    bounds = ((-3.5, 3.5), (-6.0, 6.0))
    states = ("x0 < 0", "x0 > 0")
    profile_coords = (0,)
    rc = (0, -2.5, 2.5)
    minima = ((-1.77, 0.0), (1.69, 0.0))

    def __init__(self, a: float = 1.0, b: float = -6.0, c: float = 1.0, d: float = 0.5) -> None:
        super().__init__(dim=2)
        self.a, self.b, self.c, self.d = a, b, c, d

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy ``[*batch]`` (kT) of ``x`` ``[*batch, 2]``."""
        x1, x2 = x[..., 0], x[..., 1]
        return self.a * x1**4 + self.b * x1**2 + self.c * x1 + self.d * x2**2


class MuellerBrown(Energy):
    """Müller–Brown potential scaled by α = 0.1 (Noé et al. 2019), in kT.

    u(x, y) = α Σₖ Aₖ exp(aₖ (x − x̂ₖ)² + bₖ (x − x̂ₖ)(y − ŷₖ) + cₖ (y − ŷₖ)²) with
    A = (−200, −100, −170, 15), a = (−1, −1, −6.5, 0.7), b = (0, 0, 11, 0.6),
    c = (−10, −10, −6.5, 0.7), x̂ = (1, 0, −0.5, −1), ŷ = (0, 0.5, 1.5, 1).
    Minima: (−0.558, 1.442) u ≈ −14.7, (0.623, 0.028) u ≈ −10.8, (−0.050, 0.467) u ≈ −8.1.
    States for ΔF: the deep upper-left basin (y > 0.75, beyond the free-energy barrier along y)
    against the two lower basins.

    Arguments:
        alpha: the factor α on the original potential (kT per its energy unit).
    """

    name = "mueller-brown"
    bounds = ((-1.8, 1.3), (-0.6, 2.3))
    states = ("x1 > 0.75", "x1 < 0.75")
    profile_coords = (0, 1)
    rc = (1, -0.1, 1.7)
    minima = ((-0.558, 1.442), (0.623, 0.028), (-0.050, 0.467))

    A = (-200.0, -100.0, -170.0, 15.0)
    a = (-1.0, -1.0, -6.5, 0.7)
    b = (0.0, 0.0, 11.0, 0.6)
    c = (-10.0, -10.0, -6.5, 0.7)
    x_hat = (1.0, 0.0, -0.5, -1.0)
    y_hat = (0.0, 0.5, 1.5, 1.0)

    def __init__(self, alpha: float = 0.1) -> None:
        super().__init__(dim=2)
        self.alpha = alpha

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy ``[*batch]`` (kT) of ``x`` ``[*batch, 2]``."""
        px, py = x[..., 0], x[..., 1]
        u = torch.zeros_like(px)
        for A, a, b, c, xh, yh in zip(self.A, self.a, self.b, self.c, self.x_hat, self.y_hat):
            dx, dy = px - xh, py - yh
            u = u + A * torch.exp(a * dx**2 + b * dx * dy + c * dy**2)
        return self.alpha * u


class Gaussian(Energy):
    """A correlated Gaussian u(x) = ½ (x − μ)ᵀ Σ⁻¹ (x − μ); log Z = ½ log det(2π Σ) exactly.

    Arguments:
        mean: the mean μ ``[d]``.
        covariance: the covariance Σ ``[d, d]``.

    The bounds are μ ± 8 standard deviations per coordinate; ``log_z`` holds log Z.
    """

    name = "gaussian"
    states = ("x0 < 0", "x0 > 0")

    def __init__(self, mean: Sequence[float] | torch.Tensor = (1.0, -0.5),
                 covariance: Sequence[Sequence[float]] | torch.Tensor = ((1.0, 0.6), (0.6, 0.5))) -> None:
        mean = torch.as_tensor(mean, dtype=torch.float64)
        super().__init__(dim=mean.numel())
        cov = torch.as_tensor(covariance, dtype=torch.float64)
        self.register_buffer("mean", mean)
        self.register_buffer("precision", torch.linalg.inv(cov))
        self.log_z = 0.5 * float(torch.logdet(2 * torch.pi * cov))
        std = cov.diagonal().sqrt()
        self.bounds = tuple((float(m - 8 * s), float(m + 8 * s)) for m, s in zip(mean, std))
        self.profile_coords = tuple(range(min(self.dim, 2)))
        self.minima = (tuple(mean.tolist()),)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy ``[*batch]`` (kT) of ``x`` ``[*batch, d]``."""
        d = x - self.mean.to(x.dtype)
        return 0.5 * torch.einsum("...i,ij,...j->...", d, self.precision.to(x.dtype), d)
