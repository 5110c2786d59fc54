"""Training: the Gaussian is learnt exactly, seeds reproduce, resume is bit for bit."""

import pytest
import torch

import mlmol
from mlmol import MlmolError, flows, samplers, systems
from mlmol.experiments import noe2019
from mlmol.losses import ReverseKL
from mlmol.train import Recipe, Stage


def test_flow_that_can_represent_a_gaussian_reaches_ess_above_099():
    """An affine coupling flow contains every Gaussian: reverse KL drives ESS to ~1."""
    system = systems.Gaussian()
    torch.manual_seed(0)
    flow = flows.RealNVP(2, blocks=2, hidden=(32, 32))
    recipe = Recipe([Stage(400, ReverseKL(system), lr=3e-3, batch_size=512),
                     Stage(200, ReverseKL(system), lr=3e-4, batch_size=2048)], system)
    mlmol.fit(flow, recipe, seed=0)
    samples = mlmol.sample(flow, system, 20_000, seed=1)
    assert mlmol.estimators.ess_fraction(samples.log_weights) > 0.99
    # and the reweighted ΔF(x0 < 0 vs x0 > 0) is the exact one: P(x0 < 0) = Φ(−1)
    exact = mlmol.estimators.exact_delta_f(system, "x0 < 0", "x0 > 0")
    d = mlmol.estimators.delta_f(samples, "x0 < 0", "x0 > 0")
    assert abs(d.value - exact) < 4 * d.stderr + 1e-3
    # an affine flow of a Gaussian is exact at every latent tau: u/τ is matched too
    hot = mlmol.sample(flow, system, 20_000, tau=2.0, seed=2)
    assert hot.kT == 2.0 and mlmol.estimators.ess_fraction(hot.log_weights) > 0.99
    torch.testing.assert_close(hot.energy, system.energy(hot.x) / 2.0)


def _setup(seed=0):
    system = systems.DoubleWell()
    data = samplers.metropolis(system, 2000, seed=0).float()
    torch.manual_seed(seed)
    flow = flows.RealNVP(2, blocks=2, hidden=(16, 16), loc=data.mean(0), scale=data.std(0))
    return flow, noe2019(system, data, steps=60, ml_fraction=0.5, batch=128, ml_batch=64, lr_end=1e-5)


def _weights(flow):
    return torch.cat([p.detach().flatten() for p in flow.parameters()])


def test_same_seed_same_weights_other_seed_other_weights():
    a, ra = _setup()
    mlmol.fit(a, ra, seed=3)
    b, rb = _setup()
    mlmol.fit(b, rb, seed=3)
    c, rc = _setup()
    mlmol.fit(c, rc, seed=4)
    assert torch.equal(_weights(a), _weights(b))
    assert not torch.equal(_weights(a), _weights(c))


def test_resume_continues_bit_for_bit(tmp_path):
    straight, recipe = _setup()
    history = mlmol.fit(straight, recipe, seed=1, metrics=tmp_path / "straight.jsonl")
    interrupted, recipe = _setup()
    ckpt = tmp_path / "checkpoint.pt"
    mlmol.fit(interrupted, recipe, seed=1, checkpoint=ckpt, metrics=tmp_path / "m.jsonl", until=37,
              checkpoint_every=1000)  # stops mid-stage 2, checkpoint written at the stop
    resumed, recipe = _setup(seed=99)  # different initial weights: all state must come from the checkpoint
    resumed_history = mlmol.fit(resumed, recipe, seed=1, checkpoint=ckpt, metrics=tmp_path / "m.jsonl", resume=True)
    assert torch.equal(_weights(straight), _weights(resumed))
    assert [r["loss"] for r in resumed_history.records] == [r["loss"] for r in history.records]


def test_resume_with_missing_or_corrupt_checkpoint_is_a_clear_error(tmp_path):
    flow, recipe = _setup()
    with pytest.raises(MlmolError, match="no checkpoint"):
        mlmol.fit(flow, recipe, checkpoint=tmp_path / "nope.pt", resume=True)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MlmolError, match="corrupt"):
        mlmol.fit(flow, recipe, checkpoint=tmp_path / "bad.pt", resume=True)


def test_training_data_regularised_energies_are_logged():
    flow, recipe = _setup()
    history = mlmol.fit(flow, recipe, seed=0, log_every=5)
    kl_records = [r for r in history.records if "kl" in r]
    assert kl_records and all("n_high_energy" in r and "n_nonfinite_energy" in r for r in kl_records)
    assert history["step"][-1] == recipe.total_steps


def test_ctrl_c_writes_a_checkpoint_that_resumes(tmp_path):
    class Interrupt(mlmol.losses.Loss):
        def __init__(self, inner, at):
            self.inner, self.at, self.calls = inner, at, 0

        def __call__(self, batch):
            self.calls += 1
            if self.calls == self.at:  # interrupted mid-step, after this step's samples were drawn
                batch.generated()
                raise KeyboardInterrupt
            return self.inner(batch)

    straight, recipe = _setup()
    mlmol.fit(straight, recipe, seed=2)
    flow, recipe = _setup()
    stage = recipe.stages[1]
    stage.loss = Interrupt(stage.loss, at=7)
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        mlmol.fit(flow, recipe, seed=2, checkpoint=ckpt, checkpoint_every=1000)
    assert torch.load(ckpt, weights_only=False)["step"] == 30 + 6
    stage.loss = stage.loss.inner
    mlmol.fit(flow, recipe, seed=2, checkpoint=ckpt, resume=True)
    assert torch.equal(_weights(straight), _weights(flow))


def test_cosine_learning_rate_runs_from_lr_to_lr_end():
    stage = Stage(101, ReverseKL(systems.Gaussian()), lr=1e-3, lr_end=1e-5)
    assert stage.lr_at(0) == pytest.approx(1e-3) and stage.lr_at(100) == pytest.approx(1e-5)
    assert stage.lr_at(50) == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert Stage(10, ReverseKL(systems.Gaussian()), lr=1e-3).lr_at(7) == 1e-3


def test_validation_split_is_held_out_and_its_loss_logged():
    """noe2019(validation=f) keeps a fixed subset out of training; fit logs its NLL as val_ml."""
    system = systems.get("double-well")
    data = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    recipe = noe2019(system, data, losses="ml", steps=40, ml_fraction=1.0, ml_batch=64, validation=0.1)
    assert len(recipe.data) == 900 and len(recipe.validation) == 100
    rows = {tuple(r.tolist()) for r in data}
    assert {tuple(r.tolist()) for r in recipe.validation} | {tuple(r.tolist()) for r in recipe.data} == rows
    assert not {tuple(r.tolist()) for r in recipe.validation} & {tuple(r.tolist()) for r in recipe.data}
    flow = flows.RealNVP(2, blocks=2, hidden=(16,))
    history = mlmol.fit(flow, recipe, seed=0, validate_every=20)
    assert [r["step"] for r in history.records if "val_ml" in r] == [20, 40]
    with torch.no_grad():
        expected = -flow.log_prob(recipe.validation).mean().item()
    assert history["val_ml"][-1] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(MlmolError, match="validation must be a fraction"):
        noe2019(system, data, validation=1.5)
