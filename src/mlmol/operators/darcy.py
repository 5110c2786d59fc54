"""2D Darcy flow as in Li et al. (ICLR 2021) §5.2.

    −∇·(a(x) ∇u(x)) = f(x),  x ∈ (0, 1)²,   u = 0 on the boundary,   f = 1,

with the coefficient a = 12 where ψ ≥ 0 and 3 where ψ < 0, ψ ~ N(0, (−Δ + 9 I)⁻²) with zero
Neumann conditions. The map learnt is a ↦ u. Solved by second-order finite differences on a fine
grid of n × n points (boundary included; face coefficients are harmonic means of the neighbouring
nodes) and subsampled.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from ..errors import MlmolError
from ..progress import progress as progress_bar

FINE_POINTS = 421
HIGH, LOW = 12.0, 3.0


def gaussian_random_field(samples: int, n: int, shift: float = 9.0, power: float = 2.0,
                          rng: np.random.Generator | None = None) -> np.ndarray:
    """``[samples, n, n]`` draws of N(0, (−Δ + shift I)^−power) on [0, 1]² with zero Neumann
    conditions, at the grid points x_i = i / (n − 1): Σ_k √λ_k ξ_k φ_k₁(x) φ_k₂(y) over the n × n
    lowest modes of the orthonormal cosine basis φ₀ = 1, φ_k = √2 cos(πkx), λ_k = (π²|k|² + shift)^−power.

    Example:
        >>> gaussian_random_field(2, 33, rng=np.random.default_rng(0)).shape
        (2, 33, 33)
    """
    rng = rng or np.random.default_rng()
    k = np.arange(n)
    basis = np.sqrt(2.0) * np.cos(np.pi * np.outer(np.linspace(0, 1, n), k))
    basis[:, 0] = 1.0
    eigenvalues = (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + shift) ** -power
    xi = rng.standard_normal((samples, n, n))
    return basis @ (np.sqrt(eigenvalues) * xi) @ basis.T


def threshold(psi: np.ndarray) -> np.ndarray:
    """The coefficient: 12 where ψ ≥ 0, 3 elsewhere (float64, the shape of ``psi``)."""
    return np.where(psi >= 0, HIGH, LOW)


def _harmonic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 2 * a * b / (a + b)


def solve(a: np.ndarray, f: float | np.ndarray = 1.0) -> np.ndarray:
    """u ``[n, n]`` on the grid x_i = i / (n − 1) (boundary rows and columns are 0) for the nodal
    coefficient ``a`` ``[n, n]``: the 5-point scheme with harmonic-mean face coefficients, sparse LU (about a
    second at 421 × 421 on one core). ``f``: the source, a number or ``[n, n]`` (only its interior is used).

    Example:
        >>> u = solve(np.ones((5, 5)))
        >>> u.shape, bool(u[0].any()), bool(u[2, 2] > 0)
        ((5, 5), False, True)
    """
    a = np.asarray(a, dtype=float)
    n = a.shape[0]
    if a.ndim != 2 or a.shape[1] != n or n < 3:
        raise MlmolError(f"the coefficient must be a square grid of at least 3 × 3 points, got shape {a.shape}")
    if np.any(a <= 0):
        raise MlmolError("the coefficient a must be positive everywhere")
    h = 1.0 / (n - 1)
    m = n - 2  # interior points per axis
    index = np.arange(m * m).reshape(m, m)
    east = _harmonic(a[1:-1, 1:-1], a[2:, 1:-1])
    west = _harmonic(a[1:-1, 1:-1], a[:-2, 1:-1])
    north = _harmonic(a[1:-1, 1:-1], a[1:-1, 2:])
    south = _harmonic(a[1:-1, 1:-1], a[1:-1, :-2])
    rows, cols, vals = [index.ravel()], [index.ravel()], [(east + west + north + south).ravel()]
    for coefficient, di, dj in ((east, 1, 0), (west, -1, 0), (north, 0, 1), (south, 0, -1)):
        i, j = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
        inside = (0 <= i + di) & (i + di < m) & (0 <= j + dj) & (j + dj < m)
        rows.append(index[i[inside], j[inside]])
        cols.append(index[i[inside] + di, j[inside] + dj])
        vals.append(-coefficient[inside])
    matrix = scipy.sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                     shape=(m * m, m * m)) / h**2
    rhs = np.broadcast_to(np.asarray(f, dtype=float), (n, n))[1:-1, 1:-1].ravel()
    u = np.zeros((n, n))
    # the matrix is symmetric: minimum-degree ordering of AᵀA + A is ~1.4× faster than the default COLAMD
    u[1:-1, 1:-1] = scipy.sparse.linalg.spsolve(matrix, rhs, permc_spec="MMD_AT_PLUS_A").reshape(m, m)
    return u


def dataset(samples: int, resolution: int, seed: int = 0, fine: int = FINE_POINTS,
            progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(a, u), each ``[samples, resolution, resolution]``: solved on ``fine`` × ``fine`` points and
    subsampled every (fine − 1) / (resolution − 1) points (421 → 85, 141, 211, 421), float64.

    Arguments:
        samples: the number of pairs.
        resolution: grid points per axis of the returned fields.
        seed: seeds the random fields.
        fine: grid points per axis of the solver.
        progress: show a progress bar.
    """
    stride = (fine - 1) / (resolution - 1)
    if stride != int(stride):
        raise MlmolError(f"resolution {resolution} does not subsample the {fine}-point grid; (fine − 1) must be a "
                         "multiple of (resolution − 1), e.g. 85, 141, 211 or 421 for 421")
    stride = int(stride)
    rng = np.random.default_rng(seed)
    inputs, outputs = [], []
    for _ in progress_bar(range(samples), desc="Darcy", enabled=progress):
        a = threshold(gaussian_random_field(1, fine, rng=rng)[0])
        inputs.append(a[::stride, ::stride])
        outputs.append(solve(a)[::stride, ::stride])
    return np.stack(inputs), np.stack(outputs)


def convergence_order(errors: list[float], sizes: list[int]) -> float:
    """Least-squares slope of log(error) against log(h), h = 1 / (n − 1), for errors at grid sizes n
    (``sizes``); NaN with fewer than two errors."""
    h = [1 / (n - 1) for n in sizes]
    return float(np.polyfit(np.log(h), np.log(errors), 1)[0]) if len(errors) > 1 else math.nan
