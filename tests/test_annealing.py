"""Temperature annealing: the reweighted ML loss is exact cross-entropy on a Gaussian, the ladder, the
recipe's stages; energy-only runs from the command line make no data and count evaluations."""

import json
import math

import pytest
import torch

import mlmol
from mlmol import flows, systems
from mlmol.annealing import ReweightedML, ladder, weight_power
from mlmol.config import make_config
from mlmol.errors import MlmolError
from mlmol.experiments import noe2019, schopmans2025
from mlmol.losses import Batch, ReverseKL


def test_reweighted_ml_estimates_the_targets_cross_entropy_with_the_flow():
    """With q = N(0, I) (an identity flow) and p = N(μ, Σ): −E_p[log q] = ½(|μ|² + tr Σ) + log 2π."""
    target = systems.Gaussian(mean=(0.5, -0.3), covariance=((0.8, 0.2), (0.2, 0.6)))
    flow = flows.RealNVP(2, blocks=1, hidden=(8,)).double()  # starts as the identity
    loss = ReweightedML(target, pool=200_000, refresh=1000)
    values = []
    generator = torch.Generator().manual_seed(0)
    for step in range(20):
        value, metrics = loss(Batch(flow, target, None, generator, batch_size=20_000))
        values.append(value.item())
        assert metrics.get("evaluations", 0) == (200_000 if step == 0 else 0)  # one pool, drawn once
    exact = 0.5 * (0.5**2 + 0.3**2 + 0.8 + 0.6) + math.log(2 * math.pi)
    assert sum(values) / len(values) == pytest.approx(exact, abs=0.01)
    assert 0.2 < metrics.get("pool_ess", loss_pool_ess(loss)) < 1.0


def loss_pool_ess(loss: ReweightedML) -> float:
    return mlmol.estimators.ess_fraction(loss.log_w)


def test_a_thin_pool_is_fitted_to_the_partial_step_its_weight_power_gives():
    """q = N(0, I) (an identity flow), p = N(μ, I): the pool's ESS fraction is exp(−|μ|²); its log weights
    times α are those of q^(1−α) p^α = N(αμ, I), whose ESS fraction exp(−α²|μ|²) reaches min_ess at
    α = √(−log min_ess / |μ|²). The first state x0 < 0 has probability ½ under q, Φ(−μ0) under p and Φ(−αμ0)
    under the fitted weights."""
    mu = torch.tensor([math.sqrt(2.0), 0.0], dtype=torch.float64)
    target = systems.Gaussian(mean=mu.tolist(), covariance=((1.0, 0.0), (0.0, 1.0)))
    flow = flows.RealNVP(2, blocks=1, hidden=(8,)).double()
    loss = ReweightedML(target, pool=400_000, refresh=1000, min_ess=0.3)
    _, metrics = loss(Batch(flow, target, None, torch.Generator().manual_seed(0), batch_size=16))
    square = float(mu @ mu)
    # the estimate's relative sd is √((exp(4|μ|²) − 1) / n) = 0.09 (heavy-tailed weights)
    assert metrics["pool_ess"] == pytest.approx(math.exp(-square), rel=0.25)
    alpha = math.sqrt(-math.log(0.3) / square)
    assert metrics["pool_power"] == pytest.approx(alpha, rel=0.05)
    assert mlmol.estimators.ess_fraction(loss.log_w) == pytest.approx(0.3, rel=1e-6)  # what the flow is fitted to
    phi = lambda z: 0.5 * math.erfc(-z / math.sqrt(2))  # the normal CDF
    assert metrics["pool_state_flow"] == pytest.approx(0.5, abs=0.005)
    assert metrics["pool_state"] == pytest.approx(phi(-mu[0].item()), abs=0.002)
    assert metrics["pool_state_fit"] == pytest.approx(phi(-alpha * mu[0].item()), abs=0.005)
    plain = ReweightedML(target, pool=400_000, refresh=1000)  # min_ess 0: the plain weights, power 1
    _, metrics = plain(Batch(flow, target, None, torch.Generator().manual_seed(0), batch_size=16))
    assert metrics["pool_power"] == 1.0 and metrics["pool_state_fit"] == metrics["pool_state"]


def test_weight_power_is_the_largest_that_reaches_the_smallest_ess():
    log_w = torch.randn(10_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 4
    log_w[:3] = -math.inf  # zero weights stay zero
    alpha = weight_power(log_w, 0.3)
    assert mlmol.estimators.ess_fraction(alpha * log_w) >= 0.3
    assert mlmol.estimators.ess_fraction((alpha + 1e-6) * log_w) < 0.3
    assert weight_power(torch.zeros(5), 0.3) == 1.0  # already above: the whole step
    sparse = torch.full((1000,), -math.inf, dtype=torch.float64)
    sparse[:5] = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)  # 0.5% finite: 1% is out of reach
    alpha = weight_power(sparse, 0.01)
    assert 0 < alpha < 1e-6 and not torch.isnan(alpha * sparse).any()
    assert mlmol.estimators.ess_fraction(alpha * sparse) == pytest.approx(0.005, rel=1e-4)  # flat over the five
    with pytest.raises(MlmolError, match="smallest ESS"):
        ReweightedML(systems.DoubleWell(), min_ess=1.0)


def test_tempered_energy_and_the_ladder():
    system = systems.DoubleWell()
    hot = systems.Tempered(system, 3.0)
    x = torch.randn(5, 2)
    torch.testing.assert_close(hot.energy(x), system.energy(x) / 3.0)
    assert hot.kT == 3.0 * system.kT and hot.bounds == system.bounds
    factors = ladder(8.0, 4)
    assert factors[0] == 8.0 and factors[-1] == 1.0
    assert factors[1] / factors[2] == pytest.approx(factors[0] / factors[1])  # geometric
    with pytest.raises(MlmolError, match="ladder"):
        ladder(0.5, 3)
    with pytest.raises(MlmolError, match="positive"):
        systems.Tempered(system, 0.0)


def test_annealing_recipe_walks_down_to_the_system_itself():
    system = systems.DoubleWell()
    recipe = schopmans2025(system, None, steps=100, kl_fraction=0.4, high=8.0, temperatures=4)
    assert [s.steps for s in recipe.stages] == [40, 20, 20, 20] and recipe.total_steps == 100
    assert isinstance(recipe.stages[0].loss, ReverseKL) and recipe.stages[0].loss.system.factor == 8.0
    assert recipe.stages[-1].loss.system is system  # the last rung is the target, untempered
    with pytest.raises(MlmolError, match="learns from data"):
        noe2019(system, None, losses="ml+kl")


def test_losses_from_the_energy_alone_pick_their_recipe_and_make_no_data():
    config = make_config("gmm-40", losses="fab", steps=50)
    assert config["recipe"]["name"] == "midgley2023" and config["recipe"]["steps"] == 50
    assert config["data"] == {"sampler": "none"}
    assert make_config("double-well", losses="ta")["recipe"]["name"] == "schopmans2025"
    kl = make_config("double-well", losses="kl")
    assert kl["recipe"]["name"] == "noe2019" and kl["recipe"]["losses"] == "kl" and kl["data"] == {"sampler": "none"}
    assert make_config("double-well")["data"]["sampler"] == "metropolis"  # data-based recipes keep their data


@pytest.mark.parametrize("losses", ["fab", "ta", "kl"])
def test_energy_only_training_from_the_command_line(tmp_path, losses):
    from mlmol.cli import main

    out = tmp_path / losses
    assert main(["train", "double-well", "--losses", losses, "--steps", "30", "--out", str(out)]) in (0, None)
    assert not (out / "data.npz").exists()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    counts = [r["energy_evaluations"] for r in records]
    assert counts[-1] > 0 and counts == sorted(counts)
    if losses == "kl":  # one energy per generated sample
        assert counts[-1] == 30 * make_config("double-well", losses="kl")["recipe"]["batch"]
    assert main(["evaluate", str(out), "--n", "2000", "--seed", "7"]) in (0, None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert "delta_f" in metrics and metrics["seed"] == 7  # fresh samples record the seed that drew them


def test_flow_matched_annealing_for_the_equivariant_flow_and_its_guards():
    system = systems.get("dw4")
    recipe = schopmans2025(system, None, steps=90, fit="fm", kl_fraction=0.0, high=4.0, temperatures=3, pool=64,
                           refresh=10)
    assert [s.steps for s in recipe.stages] == [30, 30, 30]
    assert [type(s.loss).__name__ for s in recipe.stages] == ["ReweightedFlowMatching"] * 3
    assert recipe.stages[0].loss.system.factor == 4.0 and recipe.stages[-1].loss.system is system
    with pytest.raises(MlmolError, match="kl_fraction"):
        schopmans2025(system, None, fit="fm", kl_fraction=0.5)
    flow = flows.EquivariantFlow(4, 2, hidden=16, layers=1, basis=4, steps=4)
    stage = recipe.stages[0]
    value, metrics = stage.loss(Batch(flow, system, None, torch.Generator().manual_seed(0), batch_size=16))
    assert value.requires_grad and metrics["evaluations"] == 64 and 0 < metrics["pool_ess"] <= 1
    # FAB and reverse KL need the density's gradient, which the equivariant flow does not give
    from mlmol.run import check_flow

    with pytest.raises(MlmolError, match="no gradient"):
        check_flow(make_config("dw4", losses="fab", flow_kind="equivariant"), system)
    check_flow(make_config("dw4", losses="ta"), system)  # flow-matched rungs: fine


def test_ais_moved_pools_overlap_better_and_stay_unbiased():
    """AIS from q = N(0, I) to a narrower, shifted Gaussian: the pool's ESS rises, the weighted cross-entropy
    −E_p[log q] keeps its exact value."""
    target = systems.Gaussian(mean=(1.0, -0.5), covariance=((0.3, 0.05), (0.05, 0.2)))
    flow = flows.RealNVP(2, blocks=1, hidden=(8,)).double()
    exact = 0.5 * (1.0**2 + 0.5**2 + 0.3 + 0.2) + math.log(2 * math.pi)
    ess, values = {}, {}
    for levels in (0, 8):
        loss = ReweightedML(target, pool=100_000, refresh=1000, levels=levels, step_size=0.3)
        generator = torch.Generator().manual_seed(1)
        steps = [loss(Batch(flow, target, None, generator, batch_size=20_000)) for _ in range(10)]
        ess[levels] = steps[0][1]["pool_ess"]
        values[levels] = sum(v.item() for v, _ in steps) / len(steps)
        evaluations = steps[0][1]["evaluations"]
        assert evaluations == 100_000 * (levels + 1)
    assert ess[8] > 1.5 * ess[0]  # 0.39 against 0.21 here
    assert values[8] == pytest.approx(exact, abs=0.02) and values[0] == pytest.approx(exact, abs=0.03)


def test_clipping_lowers_the_largest_weights_to_the_smallest_of_them():
    """clip = 0.01 of 1,000 weights: the 10 largest become the 10th largest; the rest and pool_ess (the
    unclipped overlap) are unchanged."""
    target = systems.Gaussian(mean=(1.0, -0.5), covariance=((0.3, 0.05), (0.05, 0.2)))
    flow = flows.RealNVP(2, blocks=1, hidden=(8,)).double()
    pools = {}
    for clip in (0.0, 0.01):
        loss = ReweightedML(target, pool=1000, refresh=10, clip=clip)
        _, metrics = loss(Batch(flow, target, None, torch.Generator().manual_seed(2), batch_size=8))
        pools[clip] = loss.log_w, metrics["pool_ess"]
    raw, clipped = pools[0.0][0], pools[0.01][0]
    order = raw.argsort(descending=True)
    assert torch.equal(clipped[order[:10]], raw[order[9]].expand(10))
    assert torch.equal(clipped[order[10:]], raw[order[10:]])
    assert pools[0.01][1] == pools[0.0][1] < mlmol.estimators.ess_fraction(clipped)
    with pytest.raises(MlmolError, match="clipped fraction"):
        ReweightedML(target, clip=1.0)


def test_annealing_with_ais_pools_resumes_bit_for_bit(resumes_bit_for_bit):
    system = systems.DoubleWell()
    # stopped mid-rung, with a pool half used and an adapted AIS step
    log = resumes_bit_for_bit(lambda: schopmans2025(system, None, steps=24, kl_fraction=0.25, high=4.0, temperatures=3,
                                                    batch=32, pool=64, refresh=5, levels=2, step_size=0.3, clip=0.05),
                              seed=3, until=13)
    assert log[-1]["energy_evaluations"] == 6 * 32 + 4 * 64 * 3  # 6 KL steps; 2 rungs × 2 AIS pools


def test_an_energy_only_molecule_config_reads_back_as_written():
    """A run's config.yaml is read back through the molecule defaults (another recipe's options must not leak in)."""
    config = make_config("alanine-dipeptide-implicit", losses="ta")
    assert make_config(base=config) == config
    assert make_config(base=make_config("gmm-40", losses="fab")) == make_config("gmm-40", losses="fab")
