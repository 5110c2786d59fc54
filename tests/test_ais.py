"""Annealed importance sampling: exact on a Gaussian-to-Gaussian path (log Z to its standard error)."""

import math

import pytest
import torch

from mlmol.errors import MlmolError
from mlmol.estimators import log_normaliser
from mlmol.samplers.ais import annealed_importance_sampling
from mlmol.systems import Gaussian


def _proposal():
    return torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64),
                                                  2.0 * torch.eye(2, dtype=torch.float64))


def test_without_transitions_ais_is_plain_importance_sampling():
    target, q = Gaussian(), _proposal()
    x = q.sample((500,))
    out = annealed_importance_sampling(x, q.log_prob, target, [0.0, 1.0])
    torch.testing.assert_close(out.log_weights, -target.energy(x) - q.log_prob(x))
    assert torch.equal(out.x, x) and out.evaluations == 500 and len(out.acceptance) == 0


def test_ais_gets_a_gaussians_log_z_within_its_standard_error_and_beats_plain_importance_sampling():
    target, q = Gaussian(), _proposal()  # log Z = ½ log det(2π Σ), exactly
    torch.manual_seed(0)
    x = q.sample((4000,))
    generator = torch.Generator().manual_seed(100)  # not 0: the moves' noise must not repeat the draws of x
    plain = log_normaliser(-target.energy(x) - q.log_prob(x))
    out = annealed_importance_sampling(x, q.log_prob, target, torch.linspace(0, 1, 21), step_size=0.5,
                                       generator=generator)
    annealed = log_normaliser(out.log_weights)
    assert abs(annealed.value - target.log_z) < 4 * annealed.stderr, (annealed, target.log_z)
    assert abs(plain.value - target.log_z) < 4 * plain.stderr
    assert annealed.stderr < 0.7 * plain.stderr and annealed.n_eff > 1.5 * plain.n_eff  # the path helps
    assert bool((out.acceptance > 0.5).all()) and out.evaluations == 4000 * 20
    # the final samples follow the target: its mean, reweighted
    w = torch.softmax(out.log_weights, 0)
    torch.testing.assert_close((w[:, None] * out.x).sum(0), target.mean, atol=0.08, rtol=0)


def test_a_bad_path_or_step_is_refused():
    target, q = Gaussian(), _proposal()
    with pytest.raises(MlmolError, match="increase from"):
        annealed_importance_sampling(q.sample((4,)), q.log_prob, target, [0.0, 0.5])
    with pytest.raises(MlmolError, match="step size"):
        annealed_importance_sampling(q.sample((4,)), q.log_prob, target, [0.0, 1.0], step_size=0.0)
    assert math.isfinite(log_normaliser(torch.tensor([0.0, -1.0])).value)
    with pytest.raises(MlmolError, match="two samples"):
        log_normaliser(torch.zeros(1))


def test_ais_towards_p_squared_over_q_is_exact_with_several_moves():
    """FAB's path end p̃² / q (alpha = 2): the mean weight is ∫ exp(−2u) / q, here by quadrature."""
    target, q = Gaussian(), _proposal()
    edges = torch.linspace(-12, 12, 1201, dtype=torch.float64)
    grid = torch.cartesian_prod(edges, edges)
    cell = float(edges[1] - edges[0]) ** 2
    exact = float(torch.logsumexp(-2 * target.energy(grid) - q.log_prob(grid), 0)) + math.log(cell)
    torch.manual_seed(3)
    x = q.sample((8000,))
    out = annealed_importance_sampling(x, q.log_prob, target, torch.linspace(0, 1, 6), step_size=0.4,
                                       generator=torch.Generator().manual_seed(300), alpha=2.0, moves=3)
    estimate = log_normaliser(out.log_weights)
    assert abs(estimate.value - exact) < 4 * estimate.stderr, (estimate, exact)
    assert out.evaluations == 8000 * (1 + 4 * 3) and len(out.acceptance) == 4
    # a wrong path end (alpha = 1 weights read as alpha = 2) would be off by far more than the error
    assert abs(exact - target.log_z) > 20 * estimate.stderr
