"""Reweighting estimators: effective sample size, free-energy profiles and differences.

Free energies are in kT. Weights are the unnormalised ``log_weights = −u(x) − log q(x)``.
Exact references for ``dim <= 2`` come from quadrature on a fine grid.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data import Samples, ess
from .errors import MlmolError
from .systems.base import Energy, State
from .systems.quadrature import StateLike, boltzmann_probabilities, exact_delta_f, require_bounds

__all__ = [
    "Estimate",
    "Profile",
    "default_edges",
    "delta_f",
    "ess",
    "ess_fraction",
    "exact_delta_f",
    "exact_profile",
    "free_energy_profile",
    "histogram_tv",
    "profile_rmse",
]


@dataclass(frozen=True)
class Estimate:
    """A reweighted estimate with its bootstrap standard error and Kish effective sample size."""

    value: float
    stderr: float
    n_eff: float

    def __repr__(self) -> str:
        return f"Estimate(value={self.value:.4g}, stderr={self.stderr:.2g}, n_eff={self.n_eff:.1f})"


@dataclass(frozen=True)
class Profile:
    """Free energy F (kT) per bin of a coordinate: F = −log(probability density), stderr per bin."""

    edges: np.ndarray
    f: np.ndarray
    stderr: np.ndarray

    @property
    def centres(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def ess_fraction(log_weights: torch.Tensor) -> float:
    """Kish effective sample size divided by the number of samples (1 = perfect generator)."""
    return ess(log_weights) / max(len(log_weights), 1)


def histogram_tv(values: np.ndarray, reference: np.ndarray, edges: np.ndarray | Sequence[float], weights: np.ndarray | None = None) -> float:
    """Total-variation distance ½ Σ |p_k − r_k| between the histograms of two samples on ``edges``.

    0 for identical histograms, 1 for disjoint ones. ``weights`` (e.g. importance weights) apply
    to ``values``; mass outside the edges counts as one extra bin on each side.
    """
    edges = np.concatenate([[-np.inf], np.asarray(edges, dtype=float), [np.inf]])
    p, _ = np.histogram(np.asarray(values, dtype=float), bins=edges, weights=weights)
    r, _ = np.histogram(np.asarray(reference, dtype=float), bins=edges)
    return float(0.5 * np.abs(p / p.sum() - r / r.sum()).sum())


def _as_state(state: StateLike) -> Callable[[torch.Tensor], torch.Tensor]:
    return State(state) if isinstance(state, str) else state


def _weights(samples: Samples) -> np.ndarray:
    lw = torch.as_tensor(samples.log_weights, dtype=torch.float64)
    lw = torch.nan_to_num(lw, nan=-math.inf)  # a NaN weight counts as zero weight
    return torch.exp(lw - lw.max()).numpy()


def _bootstrap(statistic, n: int, n_bootstrap: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([statistic(rng.integers(0, n, n)) for _ in range(n_bootstrap)])


def delta_f(samples: Samples, state_a: StateLike, state_b: StateLike, n_bootstrap: int = 200,
            seed: int = 0) -> Estimate:
    """Free energy of state a minus state b, F_a − F_b = −log(P_a / P_b), in kT.

    States are boolean functions of x (``lambda x: x[:, 0] < 0``) or specs like ``"x0 < 0"``.
    """
    w = _weights(samples)
    in_a = _as_state(state_a)(samples.x).cpu().numpy().astype(bool)
    in_b = _as_state(state_b)(samples.x).cpu().numpy().astype(bool)
    if not (w * in_a).sum() > 0 or not (w * in_b).sum() > 0:
        empty = "a" if not (w * in_a).sum() > 0 else "b"
        raise MlmolError(f"no weighted samples in state {empty}: cannot estimate ΔF; draw more samples")

    def statistic(idx):
        wa, wb = (w[idx] * in_a[idx]).sum(), (w[idx] * in_b[idx]).sum()
        return -np.log(wa / wb) if wa > 0 and wb > 0 else np.nan

    value = statistic(np.arange(len(w)))
    boot = _bootstrap(statistic, len(w), n_bootstrap, seed)
    return Estimate(float(value), float(np.nanstd(boot)), ess(samples.log_weights))


def _profile_from_weights(coord: np.ndarray, w: np.ndarray, edges: np.ndarray) -> np.ndarray:
    hist, _ = np.histogram(coord, bins=edges, weights=w)
    density = hist / (hist.sum() * np.diff(edges))
    with np.errstate(divide="ignore"):
        return -np.log(density)


def free_energy_profile(samples: Samples, coordinate: int | Callable, edges: np.ndarray | Sequence[float], n_bootstrap: int = 100,
                        seed: int = 0) -> Profile:
    """Reweighted free-energy profile along ``x[:, coordinate]`` (or a function of x), bootstrap errors."""
    edges = np.asarray(edges, dtype=float)
    r = samples.x[:, coordinate] if isinstance(coordinate, int) else coordinate(samples.x)
    r = r.detach().double().cpu().numpy()
    w = _weights(samples)
    f = _profile_from_weights(r, w, edges)
    boot = _bootstrap(lambda idx: _profile_from_weights(r[idx], w[idx], edges), len(w), n_bootstrap, seed)
    finite = np.where(np.isfinite(boot), boot, np.nan)
    with warnings.catch_warnings():  # bins empty in every resample have no error bar (NaN)
        warnings.simplefilter("ignore", RuntimeWarning)
        stderr = np.nanstd(finite, axis=0) if n_bootstrap > 1 else np.zeros_like(f)
    return Profile(edges, f, stderr)


def exact_profile(system: Energy, coordinate: int, edges: np.ndarray | Sequence[float], points: int = 1001) -> Profile:
    """Exact free-energy profile by quadrature over ``system.bounds`` (dim <= 2)."""
    edges = np.asarray(edges, dtype=float)
    x, p = boltzmann_probabilities(system, points)
    f = _profile_from_weights(x[:, coordinate].numpy(), p, edges)
    return Profile(edges, f, np.zeros_like(f))


def profile_rmse(estimate: Profile, exact: Profile, max_f: float = 5.0) -> tuple[float, int]:
    """RMSE (kT) between two profiles over bins with exact F − min F < ``max_f``.

    Profiles are aligned by the best constant shift. Returns (rmse, number of compared bins);
    the RMSE is inf when a compared bin holds no weighted sample.
    """
    ref = exact.f - np.min(exact.f[np.isfinite(exact.f)])
    selected = np.isfinite(ref) & (ref < max_f)
    est = estimate.f[selected]
    if not np.all(np.isfinite(est)):
        return math.inf, int(selected.sum())
    diff = est - exact.f[selected]
    diff = diff - diff.mean()
    return float(np.sqrt(np.mean(diff**2))), int(selected.sum())


def default_edges(system: Energy, coordinate: int, bins: int = 60) -> np.ndarray:
    """Bin edges spanning the system's bounds along a coordinate."""
    lo, hi = require_bounds(system)[coordinate]
    return np.linspace(lo, hi, bins + 1)


def mbar_split_delta_f(mbar: Any, mask: np.ndarray, u_target: np.ndarray | float = 0.0) -> tuple[float, float]:
    """F(inside) − F(outside) in kT and its MBAR error, in a target state, from a solved ``pymbar.MBAR``.

    ``mask`` ``[N]`` says which samples lie inside; ``u_target`` is every sample's reduced energy in the
    target state ``[N]`` (0: the unbiased state of bias-only energies).
    """
    u_ln = np.stack([np.where(mask, u_target, np.inf), np.where(mask, np.inf, u_target)])
    result = mbar.compute_perturbed_free_energies(u_ln)
    # pymbar: Delta_f[i, j] = f_j − f_i, so [1, 0] is F(inside) − F(outside)
    return float(result["Delta_f"][1, 0]), float(result["dDelta_f"][1, 0])


def forward_ess_fraction(log_weights: torch.Tensor | np.ndarray) -> float:
    """The effective sample fraction of importance sampling, estimated from exact target samples (Midgley
    et al. 2023): 1 / (mean w · mean 1/w) with log w = −u(x) − log q(x) at x ~ p. Unlike the Kish
    fraction of the proposal's own samples it sees modes the proposal misses (their w is huge).

    Example:
        >>> forward_ess_fraction(torch.zeros(5))  # q is the target
        1.0
    """
    log_w = torch.as_tensor(log_weights, dtype=torch.float64).reshape(-1)
    if len(log_w) < 2:
        raise MlmolError("the forward ESS needs at least two target samples")
    log_w = torch.nan_to_num(log_w, nan=math.inf, posinf=math.inf, neginf=-math.inf)  # NaN: q cannot produce it
    if not bool(torch.isfinite(log_w).all()):
        return 0.0
    n = len(log_w)
    return float(torch.exp(2 * math.log(n) - torch.logsumexp(log_w, 0) - torch.logsumexp(-log_w, 0)))


def log_normaliser(log_weights: torch.Tensor | np.ndarray) -> Estimate:
    """log Z ≈ log mean w from importance weights ``log w = −u(x) − log q(x)`` of samples of a normalised
    proposal q, with the delta-method standard error sd(w) / (mean(w) √n) and the Kish count.

    Example:
        >>> round(log_normaliser(torch.zeros(100)).value, 12)  # q is the target itself
        0.0
    """
    log_w = torch.as_tensor(log_weights, dtype=torch.float64).reshape(-1)
    n = len(log_w)
    if n < 2 or not bool(torch.isfinite(log_w).any()):
        raise MlmolError("log Z needs at least two samples with finite weights")
    w = torch.exp(log_w - log_w.max())  # scaled weights: the ratio sd / mean is unchanged
    value = float(torch.logsumexp(log_w, 0)) - math.log(n)
    return Estimate(value, float(w.std() / (w.mean() * math.sqrt(n))), ess(log_w))
