"""Operator learning through the shared training loop, the run directory and the CLI."""

import json

import numpy as np
import pytest
import torch

from mlmol.cli import main
from mlmol.errors import MlmolError
from mlmol.operators import FNO
from mlmol.operators import run as operator_run
from mlmol.train import Recipe, Stage, fit


def smoothing_pairs(n: int, points: int = 64, seed: int = 0) -> torch.Tensor:
    """[n, points, 2]: random periodic signals and their low-pass filtered versions (an operator an FNO represents)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, points, generator=g)
    k = torch.fft.rfftfreq(points, 1 / points)
    u = torch.fft.irfft(torch.fft.rfft(a) / (1 + (k / 2) ** 2), n=points)
    return torch.stack([a, u], -1)


def recipe(steps: int) -> Recipe:
    loss = operator_run.OperatorL2(channels_in=1, dim=1)
    return Recipe([Stage(steps, loss, lr=3e-3, batch_size=16)], data=smoothing_pairs(64),
                  validation=smoothing_pairs(16, seed=1),
                  validation_metric=lambda m, d: {"test_l2": operator_run.test_error(m, d[..., :1], d[..., 1:])})


def test_an_fno_learns_a_smoothing_operator_through_fit_and_resumes_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    model = FNO(dim=1, modes=8, width=16)
    history = fit(model, recipe(150), seed=0, validate_every=150)
    assert history["test_l2"][-1] < 0.15 and history["l2"][0] > 0.5

    torch.manual_seed(0)
    first = FNO(dim=1, modes=8, width=16)
    fit(first, recipe(150), seed=0, checkpoint=tmp_path / "c.pt", until=70)
    torch.manual_seed(1)  # the checkpoint, not the initialisation, decides
    resumed = FNO(dim=1, modes=8, width=16)
    fit(resumed, recipe(150), seed=0, checkpoint=tmp_path / "c.pt", resume=True)
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_normalisation_makes_the_fno_equivariant_to_rescaled_data():
    torch.manual_seed(0)
    model = FNO(dim=1, modes=4, width=8)
    a, u = torch.randn(5, 32, 1), torch.randn(5, 32, 1)
    model.normalize_with(a, u)
    rescaled = FNO(dim=1, modes=4, width=8)
    rescaled.load_state_dict(model.state_dict())
    rescaled.normalize_with(10 * a + 3, 7 * u)
    assert torch.allclose(rescaled(10 * a + 3), 7 * model(a), atol=1e-4)


def test_operator_cli_trains_a_mass_conserving_smoluchowski_propagator(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["operator", "smoluchowski", "--out", str(run), "--train", "12", "--test", "4", "--epochs", "2",
            "--batch-size", "4", "--modes", "8", "--width", "8", "--threads", "1"]
    assert main(args) == 0
    result = json.loads((run / "metrics.json").read_text())
    assert result["mass_error"] < 1e-5 and 0 < result["test_l2"]["256"] < 2
    assert (run / "predictions.png").stat().st_size > 1000
    with np.load(run / "data.npz") as data:
        assert data["inputs"].shape == (16, 256, 2) and data["outputs"].shape == (16, 256, 1)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 6  # 2 epochs of 3 batches
    config, model = operator_run.load(run)
    assert config["problem"] == "smoluchowski" and isinstance(model, operator_run.DensityFNO)
    assert main(args) == 2 and "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["operator", "navier-stokes"], "unknown operator problem"),
    (["operator", "burgers", "--resolution", "1000"], "resolution 1000 is not available"),
    (["operator", "darcy", "--resolution", "60"], "resolution 60 is not available"),
    (["operator", "burgers", "--epochs", "0"], "epochs must be positive"),
    (["operator", "--resume", "--epochs", "3"], "--resume continues RUN"),
])
def test_operator_cli_rejects_bad_input_with_a_hint(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_unreadable_or_too_small_data_files_are_refused(tmp_path):
    config = operator_run.make_config("smoluchowski", train=10, test=5, data=str(tmp_path / "d.npz"))
    np.savez(tmp_path / "d.npz", inputs=np.zeros((4, 256, 2)), outputs=np.zeros((4, 256, 1)))
    with pytest.raises(MlmolError, match="holds 4 pairs"):
        operator_run.load_data(config, tmp_path)
    (tmp_path / "d.npz").write_text("not a zip")
    with pytest.raises(MlmolError, match="cannot read operator data"):
        operator_run.load_data(config, tmp_path)
