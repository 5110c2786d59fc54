"""Plots that stay readable on what real runs produce."""

import matplotlib

matplotlib.use("Agg")

import numpy as np

from mlmol import plots


def test_energy_histograms_keep_the_bulk_in_view_and_say_what_lies_beyond():
    """1% of a generator's samples at 10⁸ kT (clashes) would flatten every histogram onto one bin: the axis
    spans the bulk instead, the generator's label gives its share beyond the axis (by weight where weighted),
    and each curve's area is the share of its weight on the axis."""
    rng = np.random.default_rng(0)
    reference = rng.normal(0.0, 1.0, 10_000)
    generator = np.concatenate([rng.normal(0.5, 1.0, 9_900), np.full(100, 1e8)])
    weights = np.concatenate([np.ones(9_900), np.full(100, 0.5)])
    tiny = np.concatenate([np.ones(9_900), np.full(100, 1e-300)])  # a share too small to print
    ax = plots.energy_histograms({"reference": reference, "generator": generator, "reweighted": generator,
                                  "tiny": generator}, weights={"reweighted": weights, "tiny": tiny})
    lo, hi = ax.get_xlim()
    assert -10 < lo < -3 and 3 < hi < 20
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["reference", "generator (1% beyond the axis)", "reweighted (0.5% beyond the axis)",
                      "tiny (<0.01% beyond the axis)"]
    areas = []  # step histograms are outline polygons: integrate the outline of each
    for patch in ax.patches:
        x, y = patch.get_xy().T
        areas.append(float(np.sum(np.diff(x) * y[:-1])))
    np.testing.assert_allclose(areas, [1.0, 0.99, 1 - 50 / 9_950, 1.0], atol=1e-9)
