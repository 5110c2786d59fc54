"""Losses: composition, regularisation of bad energies, the RC entropy."""

import math

import pytest
import torch

from mlmol import flows, systems
from mlmol.losses import Batch, ForwardKL, ReactionCoordinate, ReverseKL, Sum, linlog


def test_linlog_is_identity_below_high_and_log_above():
    u = torch.tensor([-5.0, 10.0, 100.0, 1e9, math.nan, math.inf])
    out = linlog(u, high=10.0, cap=50.0)
    assert out[:2].tolist() == [-5.0, 10.0]
    assert out[2].item() == pytest.approx(10 + math.log(91))
    assert out[3].item() == pytest.approx(10 + math.log1p(1e9 - 10))
    assert out[4:].tolist() == [50.0, 50.0]


def test_losses_compose_with_weights():
    loss = ForwardKL() + 0.5 * (ReverseKL(systems.DoubleWell()) + 2 * ReactionCoordinate(0, -1, 1))
    assert isinstance(loss, Sum)
    assert [w for w, _ in loss.terms] == [1.0, 0.5, 1.0]


def _batch(flow, system, data=None, n=256):
    return Batch(flow, system, data, torch.Generator().manual_seed(0), batch_size=n)


def test_reverse_kl_equals_kl_divergence_minus_log_z():
    """For a flow that is the standard normal and u = |x|²/2: E_q[u + log q] = −log Z."""
    system = systems.Gaussian(mean=(0.0, 0.0), covariance=((1.0, 0.0), (0.0, 1.0)))
    flow = flows.RealNVP(2, blocks=1, hidden=(8,))  # starts as the identity
    value, metrics = ReverseKL(system)(_batch(flow, system, n=20_000))
    assert value.item() == pytest.approx(-system.log_z, abs=1e-4)
    assert metrics["n_nonfinite_energy"] == 0


def test_nonfinite_energies_are_counted_and_give_finite_gradients():
    class Holey(systems.Energy):
        name = "holey"

        def energy(self, x):
            u = 0.5 * (x**2).sum(-1)
            return torch.where(x[:, 0] > 1.0, torch.sqrt(-torch.ones_like(u)) * x[:, 1], u)  # NaN region

    system = Holey(2)
    flow = flows.RealNVP(2, blocks=1, hidden=(8,))
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1)
    value, metrics = ReverseKL(system, high=5.0, cap=100.0)(_batch(flow, system, n=1000))
    value.backward()
    assert 50 < metrics["n_nonfinite_energy"] < 400
    assert torch.isfinite(value)
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters())


def test_rc_entropy_is_higher_for_spread_samples():
    rc = ReactionCoordinate(0, -2, 2)
    narrow = flows.RealNVP(2, blocks=1, hidden=(8,), scale=torch.tensor([0.1, 1.0]))
    wide = flows.RealNVP(2, blocks=1, hidden=(8,), scale=torch.tensor([2.0, 1.0]))
    h_narrow = rc(_batch(narrow, None))[1]["rc_entropy"]
    h_wide = rc(_batch(wide, None))[1]["rc_entropy"]
    assert h_wide > h_narrow + 0.5
    assert h_wide <= math.log(11) + 1e-6


def test_ml_loss_without_data_says_so():
    from mlmol import MlmolError

    with pytest.raises(MlmolError, match="training data"):
        ForwardKL()(_batch(flows.RealNVP(2, blocks=1), None))
