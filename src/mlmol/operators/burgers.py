"""Burgers' equation on the periodic unit interval, as in Li et al. (ICLR 2021) §5.1.

    ∂u/∂t + ∂(u²/2)/∂x = ν ∂²u/∂x²,   x ∈ [0, 1) periodic,   u(x, 0) = u₀(x),

with u₀ ~ N(0, σ² (−Δ + τ² I)^−γ) on mean-zero functions (the constant mode is left out, as in the
paper's released generator, ``GRF1(N, m = 0, ...)``). The map learnt is u₀ ↦ u(·, 1). Two settings:

- :data:`PAPER_TEXT` (problem ``burgers``): ν = 0.1, σ² = 625, τ² = 25, γ = 2, as the paper's text
  states. u(·, 1) keeps about 1.6% of the norm of u₀ and no shock forms.
- :data:`RELEASED` (problem ``burgers-shock``): the generator released with the paper
  (neuraloperator's ``data_generation/burgers/gen_burgers1.m`` with ``GRF1.m``): ν = 1/1000,
  ``GRF1(s/2, 0, gamma = 2.5, tau = 7, sigma = 7^2, "periodic")``, i.e. the covariance
  49² (−Δ + 49 I)^−2.5, solved to t = 1. u(·, 1) keeps about 70% of the norm and carries shocks.

Solutions are computed pseudo-spectrally at 8192 points (exponential time differencing, ETDRK4 of
Kassam & Trefethen 2005, with the 2/3 rule on the nonlinear term) and subsampled; the solver is
checked against the exact Cole–Hopf solution (:func:`cole_hopf`) in the tests, shocks included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import MlmolError
from ..progress import progress as progress_bar

FINE_POINTS = 8192


@dataclass(frozen=True)
class Setting:
    """One Burgers data distribution: viscosity ν, the initial field N(0, scale (−Δ + shift I)^−power)
    and the solver's time step ``dt`` (ETDRK4 at 8192 points); all in the units of x ∈ [0, 1) and t ∈ [0, 1]."""

    viscosity: float
    scale: float
    shift: float
    power: float
    dt: float


# dt = 5e-3 differs from 1e-3 by 1.4e-8 in relative L2 at ν = 0.1. At ν = 1/1000 dt = 2e-3 is within
# 1e-7 of the exact Cole–Hopf solution (5e-3: 2e-6) at 8192 points, whose spectrum has decayed
# to 1e-14 of its peak by mode 512: the shocks are resolved. (:func:`solve` shortens dt further for
# fields of large amplitude, see :func:`stable_dt`.)
PAPER_TEXT = Setting(viscosity=0.1, scale=625.0, shift=25.0, power=2.0, dt=5e-3)
RELEASED = Setting(viscosity=1e-3, scale=49.0**2, shift=49.0, power=2.5, dt=2e-3)
VISCOSITY = PAPER_TEXT.viscosity


def wavenumbers(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """2π k ``[n // 2 + 1]`` for the modes of a real field on n points of [0, 1)."""
    return 2 * math.pi * torch.arange(n // 2 + 1, dtype=dtype)


def gaussian_random_field(samples: int, n: int, scale: float = 625.0, shift: float = 25.0, power: float = 2.0,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """``[samples, n]`` draws of N(0, scale (−Δ + shift I)^−power) on mean-zero periodic functions
    of the unit interval, at the points x_j = j / n (the Karhunen–Loève sum over the nonzero Fourier
    modes the grid resolves). Leaving out the constant mode matters: with it (variance
    scale / shift^power = 1 here) the mean dominates ‖u‖ and relative errors look 10–100× smaller.

    Arguments:
        samples: the number of fields.
        n: grid points per field.
        scale: the covariance scale (−Δ + shift I)^−power.
        shift: the covariance scale (−Δ + shift I)^−power.
        power: the covariance scale (−Δ + shift I)^−power.
        generator: the source of randomness, or None for the global one.

    Example:
        >>> u0 = gaussian_random_field(3, 256, generator=torch.Generator().manual_seed(0))
        >>> u0.shape, u0.dtype
        (torch.Size([3, 256]), torch.float64)
    """
    k = wavenumbers(n)
    sqrt_eigenvalues = math.sqrt(scale) * (k**2 + shift) ** (-power / 2)
    real = torch.randn(samples, len(k), generator=generator, dtype=torch.float64)
    imag = torch.randn(samples, len(k), generator=generator, dtype=torch.float64)
    coefficients = torch.complex(real, imag) / math.sqrt(2)
    coefficients[:, 0] = 0.0  # mean zero
    if n % 2 == 0:
        coefficients[:, -1] = real[:, -1]  # so is the Nyquist mode
    return torch.fft.irfft(sqrt_eigenvalues * coefficients * n, n=n)


class _ETDRK4:
    """Coefficients of ETDRK4 for û' = L û + N(û) with diagonal L = −ν k² (contour integrals, M = 32)."""

    def __init__(self, n: int, viscosity: float, dt: float):
        k = wavenumbers(n)
        linear = -viscosity * k**2
        self.e, self.e2 = torch.exp(dt * linear), torch.exp(dt * linear / 2)
        roots = torch.exp(1j * math.pi * (torch.arange(1, 33, dtype=torch.float64) - 0.5) / 32)
        lr = dt * linear[:, None].to(torch.complex128) + roots[None, :]
        exp = torch.exp(lr)
        self.q = dt * ((torch.exp(lr / 2) - 1) / lr).mean(1).real
        self.f1 = dt * ((-4 - lr + exp * (4 - 3 * lr + lr**2)) / lr**3).mean(1).real
        self.f2 = dt * ((2 + lr + exp * (-2 + lr)) / lr**3).mean(1).real
        self.f3 = dt * ((-4 - 3 * lr - lr**2 + exp * (4 - lr)) / lr**3).mean(1).real
        dealias = torch.arange(n // 2 + 1) < n / 3  # 2/3 rule
        self.g = -0.5j * k * dealias
        self.n = n

    def nonlinear(self, v: torch.Tensor) -> torch.Tensor:
        u = torch.fft.irfft(v, n=self.n)
        return self.g * torch.fft.rfft(u * u)

    def step(self, v: torch.Tensor) -> torch.Tensor:
        nv = self.nonlinear(v)
        a = self.e2 * v + self.q * nv
        na = self.nonlinear(a)
        b = self.e2 * v + self.q * na
        nb = self.nonlinear(b)
        c = self.e2 * a + self.q * (2 * nb - nv)
        nc = self.nonlinear(c)
        return self.e * v + nv * self.f1 + 2 * (na + nb) * self.f2 + nc * self.f3


def stable_dt(u0: torch.Tensor, viscosity: float, dt: float) -> float:
    """``dt``, or 2ν / max|u₀|² if smaller. The nonlinear term is explicit: modes with |u| k ≈ ν k²
    (advection as strong as diffusion) become unstable once max|u|² dt / ν exceeds about 5 (at
    ν = 1/1000 the largest of 72 of the released generator's fields, max|u₀| = 1.1, broke up at
    dt = 5e-3 and not at 4e-3). By the maximum principle |u(·, t)| ≤ max|u₀|, so the bound holds
    for the whole solve."""
    amplitude = float(u0.abs().max())
    return min(dt, 2 * viscosity / amplitude**2) if amplitude > 0 else dt


def solve(u0: torch.Tensor, time: float = 1.0, viscosity: float = VISCOSITY, dt: float = 1e-3) -> torch.Tensor:
    """u(·, ``time``) ``[B, n]`` from u₀ ``[B, n]`` on n equispaced points of [0, 1) (float64), with
    time steps of at most ``dt`` (shortened by :func:`stable_dt` where that would be unstable)."""
    if u0.ndim != 2:
        raise MlmolError(f"u0 must be [batch, points], got shape {tuple(u0.shape)}")
    steps = max(1, math.ceil(time / stable_dt(u0, viscosity, dt) - 1e-9))
    scheme = _ETDRK4(u0.shape[1], viscosity, time / steps)
    v = torch.fft.rfft(u0.double())
    for _ in range(steps):
        v = scheme.step(v)
    return torch.fft.irfft(v, n=u0.shape[1])


def dataset(samples: int, resolution: int, seed: int = 0, fine: int = FINE_POINTS, chunk: int = 100,
            dt: float | None = None, progress: bool = False, setting: Setting = PAPER_TEXT
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(u₀, u(·, 1)), each ``[samples, resolution]`` for the data distribution ``setting``: solved at
    ``fine`` points with time step ``dt`` (default: the setting's), subsampled (every
    ``fine / resolution``-th point).

    Arguments:
        samples: the number of pairs.
        resolution: grid points per function (a divisor of ``fine``).
        seed: seeds the initial fields.
        fine: the solver's grid points.
        chunk: fields solved at once.
        dt: the solver's time step, or None for the setting's.
        progress: show a progress bar.
        setting: the data distribution (:data:`PAPER_TEXT` or :data:`RELEASED`).

    Returns:
        Inputs and outputs, each ``[samples, resolution]`` (float64).
    """
    if fine % resolution:
        raise MlmolError(f"resolution {resolution} must divide the solver's {fine} points (e.g. 256, 1024, 4096)")
    generator = torch.Generator().manual_seed(seed)
    inputs, outputs = [], []
    for start in progress_bar(range(0, samples, chunk), desc="Burgers", enabled=progress):
        u0 = gaussian_random_field(min(chunk, samples - start), fine, setting.scale, setting.shift, setting.power,
                                   generator=generator)
        u1 = solve(u0, viscosity=setting.viscosity, dt=dt or setting.dt)
        if not torch.isfinite(u1).all():
            raise MlmolError("the Burgers solver diverged; use a smaller dt")
        inputs.append(u0[:, :: fine // resolution])
        outputs.append(u1[:, :: fine // resolution])
    return torch.cat(inputs), torch.cat(outputs)


def heat_equation(u0: np.ndarray, viscosity: float, time: float = 1.0) -> np.ndarray:
    """exp(ν t Δ) u₀ for periodic ``u0`` ``[..., n]`` on [0, 1): Burgers without its nonlinear term,
    exact in Fourier space (a cheap reference predictor)."""
    n = u0.shape[-1]
    k = 2 * math.pi * np.fft.rfftfreq(n, 1 / n)
    return np.fft.irfft(np.fft.rfft(u0, axis=-1) * np.exp(-viscosity * time * k**2), n=n, axis=-1)


def cole_hopf(u0: np.ndarray, time: float, viscosity: float, chunk: int = 128) -> np.ndarray:
    """The exact solution u(x_i, ``time``) at the n points x_i = i / n of ``u0`` ``[n]`` (mean zero,
    periodic), by the Cole–Hopf transform written as Hopf's formula:

        u(x, t) = ∫ (x − y)/t · w(y) dy / ∫ w(y) dy,   w(y) = exp(−(x − y)²/(4νt) − U₀(y)/(2ν)),

    U₀ = ∫₀ʸ u₀ (periodic because u₀ has mean zero, taken spectrally), y over as many periods as the
    Gaussian reaches (where its factor is below e⁻⁴⁰ of the largest weight), the integrals by the
    trapezoidal rule on the grid and the exponent shifted by its maximum per x (log-sum-exp), so that
    it stays exact at small ν where exp(−U₀/2ν) spans many decades. O(n²): a reference for tests,
    not a solver."""
    u0 = np.asarray(u0, dtype=float)
    n = len(u0)
    if abs(u0.mean()) > 1e-12 * max(1.0, np.abs(u0).max()):
        raise MlmolError("cole_hopf needs a mean-zero u0 (its antiderivative must be periodic)")
    k = 2 * math.pi * np.fft.rfftfreq(n, 1 / n)
    coefficients = np.fft.rfft(u0)
    coefficients[1:] /= 1j * k[1:]
    coefficients[0] = 0.0
    antiderivative = np.fft.irfft(coefficients, n=n)
    x = np.arange(n) / n
    spread = (antiderivative.max() - antiderivative.min()) / (2 * viscosity)
    periods = math.ceil(math.sqrt(4 * viscosity * time * (40 + spread))) + 1
    y = np.concatenate([x + shift for shift in range(-periods, periods + 1)])
    exponent_y = -np.tile(antiderivative, 2 * periods + 1) / (2 * viscosity)
    u = np.empty(n)
    for start in range(0, n, chunk):
        distance = x[start:start + chunk, None] - y
        exponent = exponent_y - distance**2 / (4 * viscosity * time)
        weight = np.exp(exponent - exponent.max(1, keepdims=True))
        u[start:start + chunk] = (distance * weight).sum(1) / (time * weight.sum(1))
    return u
