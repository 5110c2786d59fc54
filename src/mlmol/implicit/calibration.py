"""Scoring posteriors: simulation-based calibration and the classifier two-sample test.

- :func:`sbc_ranks` (Talts et al. 2018): for θ* ~ prior, x ~ simulator(θ*), the rank of θ*
  among L posterior samples given x is uniform on {0, …, L} for every parameter if the
  posterior is calibrated; :func:`rank_uniformity` tests that (χ² on binned ranks).
- :func:`c2st`: the accuracy of a classifier telling two sample sets apart (0.5: the same
  distribution, 1: disjoint), sbi's implementation with sbibm's MLP settings.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import stats


def sbc_ranks(sample: Callable[[torch.Tensor, int], torch.Tensor], theta: torch.Tensor, x: torch.Tensor,
              n_posterior: int = 99, progress: bool = False) -> torch.Tensor:
    """Ranks ``[N, d]`` of each true θ ``[N, d]`` among ``n_posterior`` draws of ``sample(x_i, n)``.

    Arguments:
        sample: draws ``n`` posterior samples ``[n, d]`` given one observation ``[d_x]``.
        theta: the true parameters ``[N, d]`` (drawn from the prior).
        x: their simulated data ``[N, d_x]``.
        n_posterior: posterior draws per observation (ranks lie in {0, …, n_posterior}).
        progress: show a progress bar.
    """
    rows = range(len(theta))
    if progress:
        from ..progress import progress as progress_bar

        rows = progress_bar(rows, desc="SBC", unit="posterior")
    ranks = [(sample(x[i], n_posterior).double() < theta[i].double()).sum(0) for i in rows]
    return torch.stack(ranks)


def rank_uniformity(ranks: torch.Tensor, n_posterior: int, bins: int = 10) -> np.ndarray:
    """χ² test p-values ``[d]`` (one per parameter) that ranks ``[N, d]`` in {0, …, n_posterior} are uniform,
    over ``bins`` equal bins (``n_posterior + 1`` must be a multiple of ``bins``)."""
    if (n_posterior + 1) % bins:
        raise ValueError(f"n_posterior + 1 = {n_posterior + 1} is not a multiple of bins = {bins}")
    counts = np.stack([np.bincount(r.numpy() * bins // (n_posterior + 1), minlength=bins) for r in ranks.T.long()])
    return stats.chisquare(counts, axis=1).pvalue


def c2st(a: torch.Tensor, b: torch.Tensor, seed: int = 0) -> float:
    """Classifier two-sample test accuracy (5-fold cross-validated MLP; z-scored by ``a``).

    Arguments:
        a: samples ``[n, d]``.
        b: samples ``[m, d]``; both sets are cut to min(n, m) rows.
        seed: seeds the classifier and the folds.

    Example:
        >>> c2st(torch.randn(1000, 2), torch.randn(1000, 2) + 3)  # doctest: +SKIP
        0.99...
    """
    from sbi.utils.metrics import c2st as sbi_c2st

    n = min(len(a), len(b))
    return float(sbi_c2st(a[:n].float(), b[:n].float(), seed=seed, classifier="mlp"))
