"""One run contract for every kind of run: the same files, train/--resume/evaluate/report through one
command line, and a report with the right figures for a Boltzmann generator, a VMC and an operator run."""

import json

import pytest
import torch
import yaml

from mlmol.cli import main
from mlmol.errors import MlmolError
from mlmol.rundir import KINDS, RunDirectory

CONTRACT = ("config.yaml", "checkpoint.pt", "metrics.jsonl", "metrics.json")


def _figures(page: str) -> list[str]:
    """The titles of the report's figures; each must embed a PNG image of some size."""
    parts = page.split("<h2>")[1:]
    titles = [part.split("</h2>")[0] for part in parts if "data:image/png;base64," in part]
    assert all(len(part.split("base64,")[1].split("'")[0]) > 5000 for part in parts if "base64," in part)
    return titles


@pytest.fixture(scope="module")
def vmc_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("vmc") / "h"
    assert main(["vmc", "H", "--ansatz", "slater-jastrow", "--steps", "8", "--walkers", "16", "--eval-steps", "8",
                 "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def operator_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("operator") / "smol"
    assert main(["operator", "smoluchowski", "--train", "8", "--validation", "2", "--test", "3", "--epochs", "2",
                 "--batch-size", "4", "--modes", "8", "--width", "8", "--threads", "1", "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def bg_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("bg") / "dw"
    config = tmp_path_factory.mktemp("config") / "small.yaml"
    config.write_text(yaml.safe_dump({"system": {"name": "double-well"}, "data": {"n": 500},
                                      "flow": {"blocks": 2, "hidden": [16, 16]},
                                      "recipe": {"steps": 30, "batch": 64, "ml_batch": 64},
                                      "evaluate": {"n": 2000}}))
    assert main(["train", str(config), "--out", str(run)]) == 0
    return run


@pytest.mark.parametrize("name", ["bg_run", "vmc_run", "operator_run"])
def test_every_kind_writes_the_same_files_and_its_kind(name, request):
    path = request.getfixturevalue(name)
    if name == "bg_run":
        assert main(["evaluate", str(path)]) == 0  # a Boltzmann generator is evaluated on demand
    for file in CONTRACT:
        assert (path / file).is_file(), file
    config = yaml.safe_load((path / "config.yaml").read_text())
    assert config["kind"] == {"bg_run": "bg", "vmc_run": "vmc", "operator_run": "operator"}[name] in KINDS
    assert RunDirectory(path).kind == config["kind"]
    log = RunDirectory(path).read_log()
    assert log and all("step" in r and "time_s" in r for r in log) and log[-1]["step"] >= log[0]["step"]
    checkpoint = torch.load(path / "checkpoint.pt", weights_only=False)
    assert checkpoint["step"] == log[-1]["step"] and checkpoint["flow"]  # the weights of the last logged step


def test_report_of_a_boltzmann_generator_run(bg_run, capsys):
    assert main(["evaluate", str(bg_run)]) == 0
    assert main(["report", str(bg_run), "--n", "1000"]) == 0
    page = (bg_run / "report.html").read_text()
    assert _figures(page)[:2] == ["Samples over the energy", "Free-energy profiles"]
    assert "Training curves" in _figures(page) and "ΔF = F(x0 &lt; 0) − F(x0 &gt; 0)" in page


def test_report_of_a_vmc_run(vmc_run, capsys):
    assert main(["report", str(vmc_run)]) == 0
    page = (vmc_run / "report.html").read_text()
    assert _figures(page)[:3] == ["Energy during training", "Local-energy variance",
                                  "Blocking analysis of the evaluation"]
    metrics = json.loads((vmc_run / "metrics.json").read_text())
    assert f"{metrics['value']:.6f}" in page and len(metrics["series"]) == 8


def test_report_of_an_operator_run(operator_run):
    before = (operator_run / "metrics.json").read_text()
    assert main(["report", str(operator_run)]) == 0
    page = (operator_run / "report.html").read_text()
    assert _figures(page)[:2] == ["Predictions on held-out test pairs", "Relative L2 during training"]
    metrics = json.loads(before)
    assert f"{metrics['test_l2']['256']:.4f}" in page
    assert (operator_run / "metrics.json").read_text() == before  # the report never rewrites the evaluation


def test_evaluate_reproduces_what_training_wrote_for_vmc_and_operators(vmc_run, operator_run):
    trained = json.loads((operator_run / "metrics.json").read_text())
    assert main(["evaluate", str(operator_run)]) == 0
    again = json.loads((operator_run / "metrics.json").read_text())
    keys = ("test_l2", "validation_l2", "reference_l2", "mass_error", "train_seconds")
    assert {k: again[k] for k in keys} == {k: trained[k] for k in keys}  # deterministic, timings kept
    # VMC: evaluating from the checkpoint is deterministic; training's own evaluation continued the walkers
    # in memory (their log|ψ|² from before the last update), so it agrees within the errors, not bit for bit
    trained = json.loads((vmc_run / "metrics.json").read_text())
    results = []
    for _ in range(2):
        assert main(["evaluate", str(vmc_run)]) == 0
        results.append(json.loads((vmc_run / "metrics.json").read_text()))
    assert results[0]["series"] == results[1]["series"] and results[1]["train_s_this_call"] == trained["train_s_this_call"]
    assert abs(results[0]["value"] - trained["value"]) < 4 * (results[0]["stderr"] ** 2 + trained["stderr"] ** 2) ** 0.5


def test_resume_continues_any_kind_and_refuses_options(vmc_run, tmp_path, capsys):
    assert main(["train", "--out", str(vmc_run), "--resume"]) == 2  # finished: nothing left to resume
    assert "already finished its 8 steps" in capsys.readouterr().err
    assert main(["train", "--out", str(vmc_run), "--resume", "--seed", "3"]) == 2
    assert "drop the other options --seed" in capsys.readouterr().err
    assert main(["sample", str(vmc_run), "--n", "10", "--out", str(tmp_path / "s.npz")]) == 2
    assert "Boltzmann generators only" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["before the update", "after the update"])
@pytest.mark.parametrize("kind", ["bg", "operator"])
def test_mlmol_train_resume_continues_an_interrupted_run_bit_for_bit(kind, where, tmp_path, monkeypatch, capsys):
    """A run stopped by Ctrl-C in its 11th step (before or after that step's update) finishes that
    step and stops; continued with ``mlmol train --resume`` it runs only the steps left and ends with
    the weights of a run never stopped."""
    import os
    import signal

    import mlmol.train

    config = tmp_path / "config.yaml"
    if kind == "bg":
        config.write_text(yaml.safe_dump({"system": {"name": "double-well"}, "data": {"n": 300},
                                          "flow": {"blocks": 2, "hidden": [8, 8]},
                                          "recipe": {"steps": 40, "batch": 32, "ml_batch": 32}}))
    else:
        config.write_text(yaml.safe_dump({"kind": "operator", "problem": "smoluchowski", "train": 8,
                                          "validation": 2, "test": 2, "epochs": 10, "batch_size": 4, "modes": 4,
                                          "width": 4, "data": str(tmp_path / "pairs.npz")}))
    assert main(["train", str(config), "--out", str(tmp_path / "straight")]) == 0
    total = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["step"]
    real_batch, real_step = mlmol.train.Batch, torch.optim.Adam.step
    calls = {"batch": 0, "update": 0, "interrupt": True}

    def counting_batch(*args, **kwargs):
        calls["batch"] += 1
        if calls["interrupt"] and where == "before the update" and calls["batch"] == 11:
            os.kill(os.getpid(), signal.SIGINT)
        return real_batch(*args, **kwargs)

    def interrupting_update(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        calls["update"] += 1
        if calls["interrupt"] and where == "after the update" and calls["update"] == 11:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(mlmol.train, "Batch", counting_batch)
    monkeypatch.setattr(torch.optim.Adam, "step", interrupting_update)
    assert main(["train", str(config), "--out", str(tmp_path / "stopped")]) == 130
    done = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)["step"]
    assert done == 11
    calls.update(batch=0, interrupt=False)
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "stopped"), "--resume"]) == 0
    assert f"mlmol: resuming at step 11 of {total}" in capsys.readouterr().err
    assert calls["batch"] == total - done  # only the steps left, not a restart
    first, second = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=False)
                     for name in ("straight", "stopped"))
    assert first["step"] == second["step"] == total > 11
    assert all(torch.equal(first["flow"][k], second["flow"][k]) for k in first["flow"])


def test_a_run_config_reruns_any_kind(vmc_run, tmp_path):
    again = tmp_path / "again"
    assert main(["train", str(vmc_run / "config.yaml"), "--out", str(again)]) == 0
    first, second = (torch.load(p / "checkpoint.pt", weights_only=False) for p in (vmc_run, again))
    assert second["step"] == first["step"] == 8 and torch.equal(second["losses"][0]["x"], first["losses"][0]["x"])
    assert all(torch.equal(second["flow"][k], v) for k, v in first["flow"].items())  # the same weights


def test_train_by_name_picks_the_kind_and_bg_options_are_refused(tmp_path, capsys):
    assert main(["train", "H", "--steps", "3", "--out", str(tmp_path / "h")]) == 0
    config = yaml.safe_load((tmp_path / "h" / "config.yaml").read_text())
    assert (config["kind"], config["system"], config["steps"], config["ansatz"]) == ("vmc", "H", 3, "ferminet")
    assert json.loads((tmp_path / "h" / "metrics.json").read_text())["steps"] == 3
    assert main(["train", "He", "--losses", "ml", "--out", str(tmp_path / "he")]) == 2
    assert "--losses apply to Boltzmann generators" in capsys.readouterr().err
    with pytest.raises(MlmolError, match="not a run directory"):
        RunDirectory(tmp_path).read_config()


def test_numbers_in_exponent_notation_are_numbers_in_a_config(tmp_path):
    """``lr: 2e-3`` is the number 0.002 (YAML 1.2), not the string PyYAML's YAML 1.1 makes of it; quoted it stays text."""
    from mlmol.rundir import read_yaml

    config = tmp_path / "c.yaml"
    config.write_text("recipe: {lr: 2e-3, steps: 1E1, cap: -1e+2, name: '3e4', a: 1.5e3, b: 2.0E-4, c: .5e1, "
                      "d: 12, e: 0.5, f: 1_000e3}\n")
    assert read_yaml(config)["recipe"] == {"lr": 0.002, "steps": 10.0, "cap": -100.0, "name": "3e4", "a": 1500.0,
                                           "b": 0.0002, "c": 5.0, "d": 12, "e": 0.5, "f": "1_000e3"}
    config.write_text("system: {name: double-well}\nrecipe: {lr: 2e-3, steps: 5}\n")
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 0
    assert RunDirectory(run).read_config()["recipe"]["lr"] == 0.002
