"""Estimators against exact answers: ESS, reweighted ΔF and profiles from a known proposal."""

import math

import numpy as np
import pytest
import torch

from mlmol import Samples, estimators, systems


def test_kish_ess_limits():
    assert estimators.ess(torch.zeros(1000)) == pytest.approx(1000)
    one_hot = torch.full((1000,), -math.inf)
    one_hot[3] = 0.0
    assert estimators.ess(one_hot) == pytest.approx(1.0)
    lw = torch.log(torch.tensor([1.0, 1.0, 2.0, 4.0]))
    assert estimators.ess(lw) == pytest.approx(64 / 22)


def _reweighted_samples(system, n, seed, scale=2.5):
    """Samples from a broad Gaussian proposal q with the exact log weights −u − log q."""
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(n, system.dim, generator=g, dtype=torch.float64)
    log_q = (-0.5 * (x / scale) ** 2 - math.log(scale * math.sqrt(2 * math.pi))).sum(-1)
    u = system.energy(x)
    return Samples(x, -u - log_q, u)


def test_reweighted_delta_f_matches_exact_within_error_bars():
    dw = systems.DoubleWell()
    exact = estimators.exact_delta_f(dw, "x0 < 0", "x0 > 0")
    z = []
    for seed in range(5):
        estimate = estimators.delta_f(_reweighted_samples(dw, 200_000, seed), "x0 < 0", "x0 > 0")
        assert estimate.stderr > 0 and 0 < estimate.n_eff < 200_000
        z.append((estimate.value - exact) / estimate.stderr)
    # bootstrap errors are calibrated: standardised errors look like N(0, 1)
    assert max(abs(v) for v in z) < 4
    assert 0.2 < np.std(z) < 2.5


def test_delta_f_accepts_callables_and_signs():
    dw = systems.DoubleWell()
    s = _reweighted_samples(dw, 100_000, 0)
    a = estimators.delta_f(s, lambda x: x[:, 0] < 0, lambda x: x[:, 0] > 0)
    b = estimators.delta_f(s, "x0 > 0", "x0 < 0")
    assert a.value == pytest.approx(-b.value)
    assert a.value < -3  # the left well is the deeper one


def test_reweighted_profile_matches_quadrature():
    dw = systems.DoubleWell()
    edges = estimators.default_edges(dw, 0)
    profile = estimators.free_energy_profile(_reweighted_samples(dw, 200_000, 1), 0, edges)
    rmse, bins = estimators.profile_rmse(profile, estimators.exact_profile(dw, 0, edges))
    assert bins >= 15 and rmse < 0.1
    # a wrong profile is caught: unweighted proposal samples are far off
    flat = _reweighted_samples(dw, 200_000, 1)
    flat.log_weights = torch.zeros_like(flat.log_weights)
    rmse_flat, _ = estimators.profile_rmse(estimators.free_energy_profile(flat, 0, edges, n_bootstrap=2),
                                           estimators.exact_profile(dw, 0, edges))
    assert rmse_flat > 1.0


def test_profile_rmse_is_inf_when_a_bin_is_empty():
    dw = systems.DoubleWell()
    edges = estimators.default_edges(dw, 0)
    s = _reweighted_samples(dw, 50_000, 2)
    keep = s.x[:, 0] < 0  # the generator missed the right well entirely
    s = Samples(s.x[keep], s.log_weights[keep], s.energy[keep])
    rmse, _ = estimators.profile_rmse(estimators.free_energy_profile(s, 0, edges, n_bootstrap=2),
                                      estimators.exact_profile(dw, 0, edges))
    assert rmse == math.inf


def test_samples_npz_round_trip(tmp_path):
    s = _reweighted_samples(systems.DoubleWell(), 100, 0)
    path = s.save(tmp_path / "s.npz")
    with np.load(path) as f:
        assert set(f.files) == {"x", "log_weights", "energy", "kT"}
        assert f["x"].dtype == np.float64 and f["x"].shape == (100, 2)
        assert f["log_weights"].shape == (100,) and f["energy"].shape == (100,) and f["kT"].shape == ()
    back = Samples.load(path)
    torch.testing.assert_close(back.log_weights, s.log_weights)


def test_histogram_tv_distance():
    from mlmol.estimators import histogram_tv

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200_000), rng.normal(size=200_000)
    edges = np.linspace(-4, 4, 41)
    assert histogram_tv(a, b, edges) < 0.01
    assert histogram_tv(a + 100, a, edges) == pytest.approx(1.0, abs=1e-3)  # all in the overflow bin
    # N(0, 1) against N(1, 1): TV = 2 Φ(1/2) − 1 = 0.3829 (binning lowers it slightly)
    assert histogram_tv(a, b + 1, np.linspace(-5, 6, 221)) == pytest.approx(0.3829, abs=0.01)
    # importance weights turn N(0, 1) samples into N(1, 1): w ∝ exp(x − 1/2)
    assert histogram_tv(a, b + 1, edges, weights=np.exp(a)) < 0.02


def _gaussian_log_weights(x: torch.Tensor, scale: float, shift: float = 0.0) -> torch.Tensor:
    """log w = −u − log q at ``x`` for the target u = x²/2 (unnormalised, log Z = log √(2π)) and the
    proposal q = N(0, scale²); ``shift`` adds a constant (weights are defined up to one)."""
    log_q = -0.5 * (x / scale) ** 2 - math.log(scale * math.sqrt(2 * math.pi))
    return -0.5 * x**2 - log_q + shift


@pytest.mark.parametrize("scale", [0.9, 1.2])
def test_forward_ess_matches_its_closed_form_on_gaussians(scale):
    """For p = N(0, 1) and q = N(0, s²) the forward ESS is 1 / ∫ p²/q = √(2s² − 1) / s² (both moments
    of w under p finite for 2/3 < s² < 2), whatever constant the log weights carry."""
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # exact p samples
    exact = math.sqrt(2 * scale**2 - 1) / scale**2
    assert estimators.forward_ess_fraction(_gaussian_log_weights(x, scale, shift=7.0)) == pytest.approx(exact, abs=0.005)


def test_forward_ess_sees_a_missed_mode_that_the_kish_ess_cannot():
    """q = N(−5, 1) against p = ½N(−5, 1) + ½N(5, 1): q's own samples all weigh about ½ (Kish ESS ≈ 1),
    but the exact samples in the missed mode carry enormous weights (forward ESS ≈ 0)."""
    g = torch.Generator().manual_seed(1)

    def log_w(x):
        log_p = torch.logsumexp(torch.stack([-0.5 * (x + 5) ** 2, -0.5 * (x - 5) ** 2]), 0) + math.log(0.5)
        return log_p - (-0.5 * (x + 5) ** 2)

    own = torch.randn(100_000, generator=g, dtype=torch.float64) - 5
    exact = torch.randn(100_000, generator=g, dtype=torch.float64) + torch.where(
        torch.rand(100_000, generator=g) < 0.5, -5.0, 5.0).double()
    assert estimators.ess(log_w(own)) / 100_000 > 0.99
    assert estimators.forward_ess_fraction(log_w(exact)) < 0.01


def test_log_normaliser_standard_error_is_calibrated():
    """Over 400 independent batches the estimates of log Z spread as their reported standard errors say,
    and about 95% of them lie within 2 standard errors of the exact value."""
    g = torch.Generator().manual_seed(2)
    scale, exact = 1.3, 0.5 * math.log(2 * math.pi)
    estimates = [estimators.log_normaliser(_gaussian_log_weights(scale * torch.randn(2000, generator=g,
                                                                                       dtype=torch.float64), scale))
                 for _ in range(400)]
    values = torch.tensor([e.value for e in estimates])
    stderrs = torch.tensor([e.stderr for e in estimates])
    assert float(values.std() / stderrs.mean()) == pytest.approx(1.0, abs=0.15)
    coverage = float(((values - exact).abs() < 2 * stderrs).double().mean())
    assert 0.91 < coverage < 0.99, coverage
