"""Likelihood-free inference: simulators, posteriors at known answers, calibration, failures."""

import math
import re
from pathlib import Path

import pytest
import torch

from mlmol.errors import MlmolError
from mlmol.implicit.calibration import c2st, rank_uniformity, sbc_ranks
from mlmol.implicit.inference import (
    SimulationWarning,
    npe,
    ratio_posterior,
    rejection_abc,
    sample_posterior,
    simulations,
    train_ratio,
)
from mlmol.implicit.tasks import LangevinDoubleWell, LinearGaussian, TwoMoons, box_prior


def linear_gaussian_likelihood(task, x_obs):
    return lambda theta: -((x_obs - theta) ** 2).sum(-1) / (2 * task.noise_var)


def test_failed_simulations_are_counted_and_left_out():
    prior = box_prior([-1.0], [1.0])

    def simulate(theta):
        return torch.where(theta > 0.5, torch.nan, theta**2)

    with pytest.warns(SimulationWarning, match="simulations failed"):
        sims = simulations(simulate, prior, 2000, seed=0, batch_size=500)
    assert len(sims.theta) == 2000 and torch.isfinite(sims.x).all()
    assert (sims.theta <= 0.5).all()
    assert sims.failed == pytest.approx(2000 / 3, rel=0.15)  # P(θ > 0.5) = 1/4 of attempts, 1/3 of successes


@pytest.mark.parametrize("simulate", [lambda t: torch.full_like(t, torch.nan), lambda t: 1 / 0])
def test_a_simulator_that_always_fails_stops_with_an_error_not_a_hang(simulate):
    with pytest.raises(MlmolError, match="simulations failed"):
        simulations(simulate, box_prior([0.0], [1.0]), 1000, batch_size=100)


def test_sample_posterior_recovers_the_linear_gaussian_posterior():
    task = LinearGaussian(dim=3)
    _, x_obs = task.observation(0)
    samples = sample_posterior(linear_gaussian_likelihood(task, x_obs), task.prior, 20_000, seed=1)
    assert samples.mean(0) == pytest.approx((x_obs / 2).tolist(), abs=0.01)
    assert samples.var(0) == pytest.approx([0.05] * 3, rel=0.05)
    assert len(torch.unique(samples[:, 0])) > 0.9 * len(samples)  # Metropolis removed resampling duplicates


def test_posterior_samples_stay_inside_a_bounded_prior():
    prior = box_prior([-1.0, 0.5], [1.0, 4.0])
    samples = sample_posterior(lambda t: 40 * t[:, 0] - 40 * t[:, 1], prior, 5000)  # mass piles on the corner
    assert (samples[:, 0] <= 1).all() and (samples[:, 1] >= 0.5).all()
    assert (samples[:, 0] >= -1).all() and (samples[:, 1] <= 4).all()
    assert samples[:, 0].mean() > 0.95


def test_two_moons_reference_posterior_matches_fine_abc():
    task = TwoMoons()
    x_obs = torch.tensor([0.0, 0.4], dtype=torch.float64)
    reference = task.reference_posterior(x_obs, 20_000)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        theta = task.prior.sample((2_000_000,))
    x = task.simulate(theta, torch.Generator().manual_seed(1))
    accepted = theta[((x - x_obs) ** 2).sum(-1) < 0.01**2]
    assert len(accepted) > 200
    for statistic in (lambda t: t.mean(0), lambda t: t.std(0)):
        assert statistic(reference) == pytest.approx(statistic(accepted).tolist(), abs=0.06)


def test_double_well_likelihood_from_statistics_equals_that_of_the_path():
    """The Euler–Maruyama transition density N(y' ; y − u'(y) Δt, 2Δt), summed over the path,
    differs from the statistics' likelihood by a θ-independent constant."""
    task = LangevinDoubleWell(steps=300)
    theta = task.prior.sample((5,))
    path = task.trajectory(theta[:1], torch.Generator().manual_seed(0))[0]
    x = task.statistics(path[None])[0]
    c, h = theta[:, :1], theta[:, 1:]
    mean = path[:-1] - (h * 4 * path[:-1] * (path[:-1] ** 2 - 1) + c) * task.dt
    exact = torch.distributions.Normal(mean, math.sqrt(2 * task.dt)).log_prob(path[1:]).sum(-1)
    difference = exact - task.log_likelihood(theta, x)
    assert difference.std() < 1e-8 * difference.abs().max()


def test_double_well_reference_posterior_matches_its_gaussian_form():
    """Log-likelihood quadratic in θ: inside the box the posterior is a truncated Gaussian."""
    task = LangevinDoubleWell()
    _, x = task.observation(0)
    samples = task.reference_posterior(x, 20_000, seed=0)
    s, dt, k = x.double(), task.dt, task.steps
    precision = dt / 2 * torch.tensor([[k, s[3]], [s[3], s[2]]], dtype=torch.float64)
    mean = torch.linalg.solve(precision, -0.5 * torch.stack([s[1], s[0]]))
    exact = torch.distributions.MultivariateNormal(mean, precision_matrix=precision).sample((200_000,))
    exact = exact[(exact[:, 0].abs() <= 1) & (exact[:, 1] >= 0.5) & (exact[:, 1] <= 4)]
    assert samples.mean(0) == pytest.approx(exact.mean(0).tolist(), abs=0.01)
    assert samples.std(0) == pytest.approx(exact.std(0).tolist(), rel=0.05)


def test_ratio_estimator_learns_the_true_log_ratio():
    """θ ~ N(0, 1), x ~ N(θ, 1): log r = log N(x; θ, 1) − log N(x; 0, 2)."""
    prior = torch.distributions.MultivariateNormal(torch.zeros(1, dtype=torch.float64),
                                                   torch.eye(1, dtype=torch.float64))
    sims = simulations(lambda t: t + torch.randn_like(t), prior, 5000, seed=0)
    estimator = train_ratio(sims.theta, sims.x, seed=0, hidden=(64, 64), epochs=60, contrastive=False)
    theta, x = torch.meshgrid(torch.linspace(-1.5, 1.5, 13), torch.linspace(-1.5, 1.5, 13), indexing="ij")
    theta, x = theta.reshape(-1, 1), x.reshape(-1, 1)
    exact = (-0.5 * (x - theta) ** 2 + 0.25 * x**2 + 0.5 * math.log(2))[:, 0]
    with torch.no_grad():
        error = (estimator(theta, x) - exact).abs()
    assert error.mean() < 0.1
    posterior = ratio_posterior(estimator, prior, torch.tensor([1.0]), 5000)
    assert posterior.mean().item() == pytest.approx(0.5, abs=0.05)  # exact: N(x / 2, 1 / 2)
    assert posterior.var().item() == pytest.approx(0.5, rel=0.15)


def test_contrastive_ratio_estimator_gives_the_exact_posterior():
    """The contrastive logit is log r + c(x); the posterior N(x / 2, 1 / 2) does not see c(x)."""
    prior = torch.distributions.MultivariateNormal(torch.zeros(1, dtype=torch.float64),
                                                   torch.eye(1, dtype=torch.float64))
    sims = simulations(lambda t: t + torch.randn_like(t), prior, 5000, seed=0)
    estimator = train_ratio(sims.theta, sims.x, seed=0, hidden=(64, 64), epochs=40)
    for x_obs in (-1.0, 1.5):
        posterior = ratio_posterior(estimator, prior, torch.tensor([x_obs]), 5000)
        assert posterior.mean().item() == pytest.approx(x_obs / 2, abs=0.06)
        assert posterior.var().item() == pytest.approx(0.5, rel=0.15)


def test_sbc_ranks_are_uniform_for_the_exact_posterior_and_not_for_a_biased_one():
    task = LinearGaussian(dim=2)
    sims = simulations(task.simulate, task.prior, 400, seed=3)
    exact = sbc_ranks(lambda x, n: task.reference_posterior(x, n, seed=int(1e6 * x[0]) % 1000), sims.theta, sims.x)
    biased = sbc_ranks(lambda x, n: task.reference_posterior(x, n) + 0.1, sims.theta, sims.x)
    assert exact.shape == (400, 2) and exact.min() >= 0 and exact.max() <= 99
    assert (rank_uniformity(exact, 99) > 0.01).all()
    assert (rank_uniformity(biased, 99) < 1e-3).all()


def test_c2st_is_one_half_for_equal_and_high_for_different_distributions():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g)
    assert abs(c2st(a, b) - 0.5) < 0.06
    assert c2st(a, b + 2.0) > 0.8


def test_rejection_abc_keeps_the_nearest_simulations():
    theta = torch.arange(10.0)[:, None]
    x = theta.clone()
    assert sorted(rejection_abc(theta, x, torch.tensor([3.2]), n=3)[:, 0].tolist()) == [2.0, 3.0, 4.0]


def test_sbi_npe_samples_stay_inside_a_bounded_prior():
    task = TwoMoons()
    sims = simulations(task.simulate, task.prior, 1000, seed=0)
    posterior = npe(sims.theta, sims.x, task.prior, max_num_epochs=5)
    _, x_obs = task.observation(0)
    samples = posterior.sample((2000,), x=x_obs.float(), show_progress_bars=False)
    assert samples.shape == (2000, 2)
    assert (samples.abs() <= 1).all()


def test_npe_points_to_the_stored_scores_instead_of_quoting_them():
    """C2ST scores change when the benchmark is rerun: the docstring names the file they live in."""
    results = "benchmarks/results/sbi_tasks.md"
    assert results in npe.__doc__
    assert not re.search(r"\b0\.\d\d", npe.__doc__), "a score quoted in the docstring goes stale"
    table = (Path(__file__).resolve().parent.parent / results).read_text()
    assert "| two-moons | NPE (sbi) |" in table


def test_observations_draw_parameter_and_noise_independently():
    task = LinearGaussian(dim=10)
    pairs = [task.observation(k) for k in range(200)]
    theta = torch.stack([t for t, _ in pairs])
    noise = torch.stack([x for _, x in pairs]) - theta
    correlation = torch.corrcoef(torch.stack([theta.flatten(), noise.flatten()]))[0, 1]
    assert abs(float(correlation)) < 0.1  # 2000 pairs: sd of r ≈ 0.02; a shared stream gives r = 1
    assert noise.var() == pytest.approx(task.noise_var, rel=0.15)
