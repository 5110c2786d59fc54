"""The Smoluchowski (overdamped Fokker–Planck) equation in 1D, and random double-well potentials.

    ∂p/∂t = D ∂/∂x (∂p/∂x + β p ∂U/∂x),   x ∈ [−L, L], no flux through the ends,

in reduced units (βU in kT, D = 1 by default, lengths and times dimensionless). The reference
solver is a finite-volume master equation on n cells of width h with the square-root rates
k_{i→i±1} = D/h² · exp(−β(U_{i±1} − U_i)/2) (Lie & Weber 2013; Donati et al. 2018): second order
in h, detailed balance with exp(−βU) exactly, and total probability conserved exactly. Its rate
matrix is exponentiated (scaling and squaring), so p(t) is exact in time.
The operator learnt is (p₀, U) ↦ p(t).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

from ..errors import MlmolError


def cell_centres(n: int, half_width: float) -> np.ndarray:
    """The n cell centres ``[n]`` of [−L, L], L = ``half_width``.

    Example:
        >>> cell_centres(4, 1.0)
        array([-0.75, -0.25,  0.25,  0.75])
    """
    h = 2 * half_width / n
    return -half_width + h * (np.arange(n) + 0.5)


class Propagator:
    """p(t) = exp(t K) p(0) for one potential ``u`` (βU at the cell centres, ``[n]``) on cells of
    width ``h``; densities are per unit length (Σ p h = 1).

    exp(tK) is computed by scaling and squaring (scipy's ``expm``), which stays accurate when the
    potential spans many kT. (Diagonalising the Boltzmann-symmetrised K instead divides by
    exp(−βU/2): with walls ~100 kT high that loses every digit.)

    Arguments:
        u: the reduced potential βU ``[n]`` (kT) at the cell centres, n ≥ 3.
        h: the cell width.
        diffusion: the diffusion constant D.

    Example:
        >>> x = cell_centres(64, 2.5)
        >>> p0 = np.exp(-0.5 * (x / 0.3) ** 2)
        >>> p = Propagator((x**2 - 1) ** 2, 5 / 64)(p0 / (p0.sum() * 5 / 64), 0.1)
        >>> round(float(p.sum() * 5 / 64), 10)
        1.0
    """

    def __init__(self, u: np.ndarray, h: float, diffusion: float = 1.0) -> None:
        u = np.asarray(u, dtype=float)
        if u.ndim != 1 or len(u) < 3 or not np.all(np.isfinite(u)):
            raise MlmolError("the potential must be finite values at ≥ 3 cell centres")
        rate = diffusion / h**2 * np.exp(-0.5 * np.diff(u))  # i → i+1
        back = diffusion / h**2 * np.exp(0.5 * np.diff(u))  # i+1 → i
        # column j holds the rates out of cell j; each column sums to zero (probability is conserved)
        self.generator = np.diag(rate, -1) + np.diag(back, 1)
        self.generator -= np.diag(self.generator.sum(0))
        self.h = h

    def __call__(self, p0: np.ndarray, t: float) -> np.ndarray:
        """Densities at time ``t`` from ``p0`` ``[..., n]``."""
        return np.asarray(p0, dtype=float) @ scipy.linalg.expm(t * self.generator).T


def random_potentials(samples: int, n: int, half_width: float = 2.5, rng: np.random.Generator | None = None
                      ) -> np.ndarray:
    """``[samples, n]`` double-well-like βU at the cell centres: a(x² − 1)² + c x + smooth bumps,
    with barrier a ∈ [1, 5] kT, tilt c ∈ [−1, 1] kT per unit length and three random Fourier bumps of
    amplitude ≤ 0.5 kT."""
    rng = rng or np.random.default_rng()
    x = cell_centres(n, half_width)
    a = rng.uniform(1, 5, (samples, 1))
    c = rng.uniform(-1, 1, (samples, 1))
    modes = np.arange(1, 4)
    amplitude = rng.uniform(-0.5, 0.5, (samples, 3, 1))
    phase = rng.uniform(0, 2 * math.pi, (samples, 3, 1))
    bumps = (amplitude * np.sin(modes[None, :, None] * math.pi * x / half_width + phase)).sum(1)
    return a * (x**2 - 1) ** 2 + c * x + bumps


def random_densities(samples: int, n: int, half_width: float = 2.5, rng: np.random.Generator | None = None
                     ) -> np.ndarray:
    """``[samples, n]`` normalised initial densities: mixtures of one or two Gaussians with centres in
    [−1.5, 1.5] and widths in [0.1, 0.5]."""
    rng = rng or np.random.default_rng()
    x = cell_centres(n, half_width)
    h = 2 * half_width / n
    centres = rng.uniform(-1.5, 1.5, (samples, 2, 1))
    widths = rng.uniform(0.1, 0.5, (samples, 2, 1))
    weights = rng.uniform(0.2, 1, (samples, 2, 1))
    weights[:, 1] *= rng.random((samples, 1)) < 0.5  # half the densities have one Gaussian
    p = (weights * np.exp(-0.5 * ((x - centres) / widths) ** 2) / widths).sum(1)
    return p / (p.sum(1, keepdims=True) * h)


def dataset(samples: int, n: int = 256, time: float = 0.1, half_width: float = 2.5, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``[samples, n, 2]`` (p₀ and βU) and outputs ``[samples, n]`` (p at ``time``)."""
    rng = np.random.default_rng(seed)
    u = random_potentials(samples, n, half_width, rng)
    p0 = random_densities(samples, n, half_width, rng)
    h = 2 * half_width / n
    pt = np.stack([Propagator(ui, h)(pi, time) for ui, pi in zip(u, p0, strict=True)])
    return np.stack([p0, u], -1), pt
