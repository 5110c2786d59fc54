"""Matplotlib figures; each is ``f(..., ax=None) -> ax``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .estimators import Profile  # noqa: E402
from .systems.base import Energy  # noqa: E402
from .systems.quadrature import grid  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _ax(ax):
    return plt.subplots(figsize=(5, 4))[1] if ax is None else ax


def energy_contours(system: Energy, points: torch.Tensor | None = None, ax: Axes | None = None, max_u: float = 12.0,
                    label: str = "samples", color: str = "C3", n_points: int = 3000) -> Axes:
    """Contours of u(x) − min u (kT) over the system's bounds, with sample points on top.

    Arguments:
        system: a two-dimensional energy with ``bounds`` (evaluated on a 200 × 200 grid).
        points: samples ``[n, 2]`` to scatter, or None.
        ax: the axes to draw on (default: a new figure).
        max_u: the highest contour level (kT); higher energies are clipped to it.
        label: the legend label of the points.
        color: the colour of the points.
        n_points: at most this many of ``points`` are drawn.

    Returns:
        The axes.
    """
    ax = _ax(ax)
    axes, x = grid(system.bounds, 200)
    with torch.no_grad():
        u = system.energy(x).double().reshape(200, 200).numpy()
    u = u - u.min()
    levels = np.arange(0, max_u + 1, 1.0)
    cs = ax.contourf(axes[0].numpy(), axes[1].numpy(), np.minimum(u, max_u).T, levels=levels, cmap="Blues_r")
    plt.colorbar(cs, ax=ax, label="u − min u (kT)")
    if points is not None:
        p = points[:n_points].double().cpu().numpy()
        ax.scatter(p[:, 0], p[:, 1], s=2, c=color, alpha=0.5, label=label)
        ax.legend(loc="upper right", markerscale=5)
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    return ax


def free_energy_profile(estimate: Profile, exact: Profile | None = None, ax: Axes | None = None,
                        label: str = "generator, reweighted", coordinate: str = "x0", max_f: float = 12.0,
                        raw: Profile | None = None) -> Axes:
    """Reweighted profile with bootstrap error bars, against the exact one when given (min set to 0).

    Arguments:
        estimate: the estimated profile (kT), drawn with its standard errors.
        exact: the exact profile (kT); the estimate is shifted to it by the best constant.
        ax: the axes to draw on (default: a new figure).
        label: the legend label of the estimate.
        coordinate: the x-axis label.
        max_f: the top of the y-axis (kT).
        raw: the profile without reweighting, drawn dashed, or None.

    Returns:
        The axes.
    """
    ax = _ax(ax)
    finite = estimate.f[np.isfinite(estimate.f)]
    shift = finite.min() if finite.size else 0.0
    if exact is not None:
        ref_shift = np.nanmin(exact.f[np.isfinite(exact.f)])
        ax.plot(exact.centres, exact.f - ref_shift, "k-", lw=2, label="exact (quadrature)")
        ok = np.isfinite(exact.f) & np.isfinite(estimate.f) & (exact.f - ref_shift < 5)
        if ok.any():  # align like the RMSE does: best constant over the compared bins
            shift = ref_shift + np.mean(estimate.f[ok] - exact.f[ok])
    if raw is not None:
        ax.plot(raw.centres, raw.f - np.nanmin(raw.f[np.isfinite(raw.f)]), "C1--", label="generator, not reweighted")
    ax.errorbar(estimate.centres, estimate.f - shift, yerr=estimate.stderr, fmt="o", ms=3, color="C0", label=label)
    ax.set_ylim(-0.5, max_f)
    ax.set_xlabel(coordinate)
    ax.set_ylabel("free energy (kT)")
    ax.legend()
    return ax


def energy_histograms(energies: dict[str, np.ndarray], ax: Axes | None = None,
                      weights: dict[str, np.ndarray] | None = None, fence: float = 6.0) -> Axes:
    """Histograms of reduced energies, e.g. training data against generator samples.

    The axis spans every label's bulk: from its quartiles, ``fence`` interquartile ranges out (or its
    extremes, where closer), so that a few clashing generator samples at 10⁸ kT do not flatten the
    rest; a label with samples beyond the axis says what share of its weight lies there.

    Arguments:
        energies: reduced energies ``[n]`` (kT) by legend label.
        ax: the axes to draw on (default: a new figure).
        weights: weights ``[n]`` for some of the labels (the others are unweighted).
        fence: how many interquartile ranges beyond the quartiles the axis reaches.

    Returns:
        The axes.
    """
    ax = _ax(ax)
    lows, highs = [], []
    for e in energies.values():
        e = e[np.isfinite(e)]
        if len(e):
            q1, q3 = np.percentile(e, [25, 75])
            lows.append(max(e.min(), q1 - fence * (q3 - q1)))
            highs.append(min(e.max(), q3 + fence * (q3 - q1)))
    lo, hi = min(lows), max(highs)
    bins = np.linspace(lo, hi, 60)
    for name, e in energies.items():
        w = np.ones(len(e)) if weights is None or name not in weights else np.asarray(weights[name], dtype=float)
        inside = (e >= lo) & (e <= hi)  # False for NaN and infinite energies too
        outside = float(w[~inside].sum() / w.sum())
        share = "<0.01" if outside < 1e-4 else f"{100 * outside:.2g}"
        label = name if outside == 0 else f"{name} ({share}% beyond the axis)"
        ax.hist(e[inside], bins=bins, weights=w[inside] / w.sum() / (bins[1] - bins[0]), histtype="step", lw=1.5,
                label=label)
    ax.set_xlabel("reduced energy u (kT)")
    ax.set_ylabel("density")
    ax.legend()
    return ax


def training_curves(records: list[dict[str, Any]], ax: Axes | None = None,
                    keys: Sequence[str] | Mapping[str, str] = ("ml", "val_ml", "kl", "loss"),
                    log_z: float | None = None, ylabel: str = "loss", exact: float | None = None,
                    log: bool = False) -> Axes:
    """Logged quantities against the step, from metrics.jsonl records (any kind of run).

    Arguments:
        records: one dictionary per logged step, with ``"step"`` and any of ``keys``.
        ax: the axes to draw on (default: a new figure).
        keys: the quantities to draw, or a mapping of them to their labels (those absent from every
            record are skipped).
        log_z: the exact log partition function, or None: −log Z is the KL term's floor.
        ylabel: the vertical axis's label.
        exact: an exact value of the quantities drawn (e.g. a VMC energy), or None.
        log: a logarithmic vertical axis.

    Returns:
        The axes.
    """
    ax = _ax(ax)
    if log_z is not None:
        ax.axhline(-log_z, color="k", ls=":", label="−log Z (exact): floor of kl")
    if exact is not None:
        ax.axhline(exact, color="k", ls="--", label="exact")
    labels = dict(keys) if isinstance(keys, Mapping) else {key: key for key in keys}
    style = {"val_ml": {"marker": "o", "label": "ml (validation)"},
             "loss": {"ls": "--", "lw": 1}}  # loss dashed: it can coincide with one term
    for key, label in labels.items():
        pts = [(r["step"], r[key]) for r in records if key in r]
        if pts:
            s, v = zip(*pts)
            ax.plot(s, v, **{"label": label, **style.get(key, {})})
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax


def ramachandran(phi: np.ndarray, psi: np.ndarray, weights: np.ndarray | None = None, ax: Axes | None = None,
                 bins: int = 60, max_f: float = 10.0, title: str = "") -> Axes:
    """Free energy (kT, minimum 0) of the (φ, ψ) histogram, torsions in radians, shown in degrees.

    Arguments:
        phi: torsions φ ``[n]`` (radians).
        psi: torsions ψ ``[n]`` (radians).
        weights: sample weights ``[n]``, or None.
        ax: the axes to draw on (default: a new figure).
        bins: bins per axis over [−180°, 180°).
        max_f: the top of the colour scale (kT).
        title: the axes' title.

    Returns:
        The axes.
    """
    return free_energy_map(np.degrees(phi), np.degrees(psi), (-180, 180, -180, 180), weights, ax, bins, max_f,
                           title, ("φ (degrees)", "ψ (degrees)"))


def free_energy_map(a: np.ndarray, b: np.ndarray, extent: tuple[float, float, float, float],
                    weights: np.ndarray | None = None, ax: Axes | None = None, bins: int = 60, max_f: float = 10.0,
                    title: str = "", labels: tuple[str, str] = ("", "")) -> Axes:
    """Free energy (kT, minimum 0) of the histogram of two coordinates, e.g. TICA components.

    Arguments:
        a: the horizontal coordinate ``[n]``.
        b: the vertical coordinate ``[n]``.
        extent: (a_low, a_high, b_low, b_high), the histogram's range.
        weights: sample weights ``[n]``, or None.
        ax: the axes to draw on (default: a new figure).
        bins: bins per axis.
        max_f: the top of the colour scale (kT).
        title: the axes' title.
        labels: the axes' labels.

    Returns:
        The axes.
    """
    ax = _ax(ax)
    hist, _, _ = np.histogram2d(a, b, bins=bins, range=[extent[:2], extent[2:]], weights=weights)
    with np.errstate(divide="ignore"):
        f = -np.log(hist / hist.sum())
    f = f - np.min(f[np.isfinite(f)])
    image = ax.imshow(np.where(np.isfinite(f), np.minimum(f, max_f), np.nan).T, origin="lower", extent=extent,
                      aspect="auto", cmap="viridis", vmin=0, vmax=max_f)
    plt.colorbar(image, ax=ax, label="free energy (kT)")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title)
    return ax
