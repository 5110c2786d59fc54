"""Energy-only sampling benchmarks: exact normalising constants and exact samples."""

import math

import pytest
import torch

from mlmol.errors import MlmolError
from mlmol.systems import log_partition
from mlmol.systems.targets import GaussianMixture, ManyWell, gmm40


def test_many_well_32_has_the_published_log_z_and_its_samples_the_exact_well_occupancy():
    many_well = ManyWell(16)
    # the FAB paper's constant: 16 × (log 11784.50927 + ½ log 2π) = 164.696
    assert abs(many_well.log_z - 16 * (math.log(11784.50927) + 0.5 * math.log(2 * math.pi))) < 1e-6
    assert abs(ManyWell(1).log_z - log_partition(ManyWell(1), points=1601)) < 1e-6  # 2D quadrature agrees
    samples = many_well.sample(50_000, torch.Generator().manual_seed(0))
    assert samples.shape == (50_000, 32)
    p = many_well.left_fraction()
    left = (samples[:, 0::2] < 0).double().mean(0)  # every pair: the shallow well's share
    assert 0.15 < p < 0.16 and float((left - p).abs().max()) < 4 * math.sqrt(p * (1 - p) / 50_000)
    torch.testing.assert_close(samples[:, 1::2].var(0), torch.ones(16, dtype=torch.float64), rtol=0.04, atol=0)


def test_gmm_40_is_normalised_and_its_samples_follow_its_components():
    gmm = gmm40()
    assert gmm.name == "gmm-40" and gmm.means.shape == (40, 2) and float(gmm.means.abs().max()) <= 40
    assert abs(log_partition(gmm, points=1201) - gmm.log_z) < 1e-6  # log Z = 0 by quadrature
    samples = gmm.sample(40_000, torch.Generator().manual_seed(1))
    nearest = torch.cdist(samples, gmm.means).argmin(-1)  # two means are 1.18 apart (σ = 1.31): swaps balance
    counts = torch.bincount(nearest, minlength=40).double()
    assert float((counts - 1000).abs().max()) < 5 * math.sqrt(1000)  # 40 equal shares
    reference = torch.distributions.MixtureSameFamily(  # the same mixture through torch.distributions
        torch.distributions.Categorical(torch.ones(40, dtype=torch.float64)),
        torch.distributions.Independent(torch.distributions.Normal(gmm.means, gmm.std), 1))
    torch.testing.assert_close(gmm.energy(samples[:1000]), -reference.log_prob(samples[:1000]))
    with pytest.raises(MlmolError, match="positive"):
        GaussianMixture(torch.zeros(2, 2), std=0.0)
    with pytest.raises(MlmolError, match=r"\[components, dim\]"):
        GaussianMixture(torch.zeros(3))
