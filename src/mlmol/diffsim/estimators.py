"""Gradient estimators of a Gaussian-smoothed objective (Suh et al., ICML 2022).

For an objective ``f`` and noise w ~ N(0, σ² I) the smoothed objective is
F(θ) = E_w f(θ + w). Its gradient is estimated from n samples wᵢ:

- :func:`zeroth_order` (ZoBG): mean of [f(θ + wᵢ) − f(θ)] wᵢ / σ², function values only
  (the likelihood-ratio / REINFORCE form with f(θ) as baseline). Unbiased for any f.
- :func:`first_order` (FoBG): mean of ∇f(θ + wᵢ), gradients through a differentiable
  simulator. Unbiased only where f is continuous and differentiable almost everywhere
  *and* its gradient carries the whole change of f: a jump in f is missed (bias), and a
  stiff f (a steep but continuous jump) gives heavy-tailed gradients (variance, and an
  "empirical bias" at finite n when the steep region is rarely sampled).
- :func:`alpha_order` (AoBG): α · FoBG + (1 − α) · ZoBG from the same samples, with α chosen
  to minimise the variance subject to a bias bound (the paper's bias-constrained rule):
  if the ZoBG's confidence half-width ε exceeds the tolerance γ, α = 0; otherwise α is the
  variance-optimal blend, shrunk until α · |FoBG − ZoBG| ≤ γ − ε.

``f`` maps a batch of parameters ``[n, d]`` to values ``[n]``, one row per sample and rows
independent (a batched simulator); it may draw its own noise (a stochastic simulator). Every
estimator returns a :class:`GradientEstimate` with the per-coordinate sample variance of its
per-sample terms, so its standard error is sqrt(variance / n).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import MlmolError

Objective = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class GradientEstimate:
    """An estimate of ∇F(θ): ``gradient`` ``[d]``, the sample ``variance`` ``[d]`` of the
    per-sample terms, the number of ``samples`` and, for the α-order estimator, the ``alpha`` used."""

    gradient: torch.Tensor
    variance: torch.Tensor
    samples: int
    alpha: float | None = None

    @property
    def stderr(self) -> torch.Tensor:
        """Standard error of each coordinate of the gradient."""
        return (self.variance / self.samples).sqrt()


def _check(theta: torch.Tensor, sigma: float, n: int) -> torch.Tensor:
    theta = torch.as_tensor(theta)
    if theta.ndim != 1:
        raise MlmolError(f"theta must be a vector [d], got shape {tuple(theta.shape)}: pass theta.flatten()")
    if not sigma > 0:
        raise MlmolError(f"the smoothing sigma must be positive, got {sigma}")
    if n < 2:
        raise MlmolError(f"need at least 2 samples to estimate a gradient and its variance, got n={n}")
    return theta


def _check_alpha(tolerance: float, confidence: float) -> None:
    if not tolerance > 0:
        raise MlmolError(f"the bias tolerance must be positive, got {tolerance}")
    if not 0 < confidence < 1:
        raise MlmolError(f"confidence must lie in (0, 1), got {confidence}")


def perturbations(theta: torch.Tensor, sigma: float, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n Gaussian perturbations w ``[n, d]`` of standard deviation ``sigma`` (θ's dtype)."""
    return sigma * torch.randn(n, theta.shape[-1], generator=generator, dtype=theta.dtype)


def _values(f: Objective, x: torch.Tensor) -> torch.Tensor:
    values = f(x)
    if values.shape != x.shape[:1]:
        raise MlmolError(f"the objective must map [n, d] parameters to [n] values, got shape {tuple(values.shape)}")
    return values


def zeroth_terms(f: Objective, theta: torch.Tensor, w: torch.Tensor, sigma: float,
                 baseline: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample ZoBG terms [f(θ + wᵢ) − b] wᵢ / σ² ``[n, d]``; the baseline b is f(θ) unless
    ``baseline`` (a value, or one per sample) is given. Any b independent of w keeps it unbiased."""
    with torch.no_grad():
        values = _values(f, theta + w)
        if baseline is None:
            baseline = _values(f, theta[None])[0]
    return (values - baseline)[:, None] * w / sigma**2


def first_terms(f: Objective, theta: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-sample FoBG terms ∇f(θ + wᵢ) ``[n, d]`` by autograd through ``f``."""
    x = (theta + w).detach().requires_grad_(True)
    with torch.enable_grad():
        values = _values(f, x)
        if not values.requires_grad:  # piecewise constant in θ (a comparison, a rounding): ∇f = 0
            return torch.zeros_like(x).detach()
        (grad,) = torch.autograd.grad(values.sum(), x)
    return grad.detach()


def _estimate(terms: torch.Tensor, alpha: float | None = None) -> GradientEstimate:
    return GradientEstimate(terms.mean(0), terms.var(0), len(terms), alpha)


def zeroth_order(f: Objective, theta: torch.Tensor, sigma: float, n: int,
                 generator: torch.Generator | None = None) -> GradientEstimate:
    """The zeroth-order (function values only) estimate of ∇F(θ) from ``n`` samples."""
    theta = _check(theta, sigma, n)
    return _estimate(zeroth_terms(f, theta, perturbations(theta, sigma, n, generator), sigma))


def first_order(f: Objective, theta: torch.Tensor, sigma: float, n: int,
                generator: torch.Generator | None = None) -> GradientEstimate:
    """The first-order (gradients through ``f``) estimate of ∇F(θ) from ``n`` samples."""
    theta = _check(theta, sigma, n)
    return _estimate(first_terms(f, theta, perturbations(theta, sigma, n, generator)))


def alpha_order(f: Objective, theta: torch.Tensor, sigma: float, n: int, tolerance: float,
                confidence: float = 0.95, generator: torch.Generator | None = None) -> GradientEstimate:
    """The α-order blend α · FoBG + (1 − α) · ZoBG from the same ``n`` samples (one simulation
    with its gradient each), α by the paper's bias-constrained rule (:func:`alpha_blend`).

    ``tolerance`` γ is the largest bias (in the gradient's norm: the objective's units per unit
    of θ) the blend may carry; ``confidence`` sets the ZoBG's confidence half-width (the paper's
    released code uses 0.95).
    """
    theta = _check(theta, sigma, n)
    _check_alpha(tolerance, confidence)
    w = perturbations(theta, sigma, n, generator)
    return alpha_blend(zeroth_terms(f, theta, w, sigma), first_terms(f, theta, w), tolerance, confidence)


def alpha_blend(zeroth: torch.Tensor, first: torch.Tensor, tolerance: float, confidence: float = 0.95) -> GradientEstimate:
    """The bias-constrained α-order estimate from per-sample ZoBG and FoBG terms ``[n, d]`` of the same samples.

    ε = z_{(1+confidence)/2} sqrt(V₀ / n) is the ZoBG's confidence half-width (V₀, V₁ the traces of
    the two terms' variances, C their covariance). If ε > γ (``tolerance``), α = 0: the ZoBG is too
    uncertain to vouch for the FoBG. Otherwise α is the variance-optimal weight
    α* = (V₀ − C) / (V₀ + V₁ − 2C), reduced to (γ − ε) / |FoBG − ZoBG| where α* · |FoBG − ZoBG|
    would exceed γ − ε.
    """
    _check_alpha(tolerance, confidence)
    n = len(zeroth)
    v0, v1 = float(zeroth.var(0).sum()), float(first.var(0).sum())
    z = math.sqrt(2) * float(torch.special.erfinv(torch.tensor(confidence, dtype=torch.float64)))
    epsilon = z * math.sqrt(v0 / n)
    if epsilon > tolerance:
        alpha = 0.0
    else:
        c = float(((zeroth - zeroth.mean(0)) * (first - first.mean(0))).sum() / (n - 1))
        denominator = v0 + v1 - 2 * c
        alpha = min(max((v0 - c) / denominator, 0.0), 1.0) if denominator > 0 else 1.0
        gap = float((first.mean(0) - zeroth.mean(0)).norm())
        if alpha * gap > tolerance - epsilon:
            alpha = (tolerance - epsilon) / gap
    return _estimate(alpha * first + (1 - alpha) * zeroth, alpha)


def _gaussian_quadrature(f: Objective, theta: float, sigma: float, points: int, width: float,
                         weight) -> float:
    """∫ f(θ + w) weight(w) N(w; 0, σ²) dw by the trapezoid rule on ``points`` over ±``width`` σ."""
    w = torch.linspace(-width * sigma, width * sigma, points, dtype=torch.float64)
    with torch.no_grad():
        values = _values(f, (theta + w)[:, None]).double()
    density = torch.exp(-0.5 * (w / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return float(torch.trapezoid(values * weight(w) * density, w))


def smoothed_gradient_quadrature(f: Objective, theta: float, sigma: float, points: int = 200_001,
                                 width: float = 8.0) -> float:
    """dF/dθ of a one-parameter objective by quadrature: ∫ f(θ + w) w / σ² N(w; 0, σ²) dw on a
    uniform grid of ``points`` over ±``width`` σ (exact for jumps: no derivative of f is taken)."""
    return _gaussian_quadrature(f, theta, sigma, points, width, lambda w: w / sigma**2)


def smoothed_value_quadrature(f: Objective, theta: float, sigma: float, points: int = 20_001,
                              width: float = 8.0) -> float:
    """F(θ) = E f(θ + w), w ~ N(0, σ²), of a one-parameter objective by quadrature (as above)."""
    return _gaussian_quadrature(f, theta, sigma, points, width, torch.ones_like)
