"""Every bad input a newcomer tried gets exit 2 and one line that names the problem in command-line
terms, before any data or training starts, and leaves nothing half-written behind."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlmol.cli import _parser, main

ENERGY = '''
import torch

def tilted(x):
    return 2.0 * (x[:, 0] ** 2 - 1.0) ** 2 + 0.7 * x[:, 0] + 0.5 * (x[:, 1] - 0.3 * x[:, 0]) ** 2

def quartic(x):  # one coordinate
    return (x[:, 0] ** 2 - 1.0) ** 2

def nan_far_left(x):  # undefined for x0 < -1.3, where the Boltzmann weight is small but not zero
    return torch.where(x[:, 0] < -1.3, torch.full_like(x[:, 0], float("nan")), tilted(x))
'''


@pytest.fixture
def energy_file(tmp_path):
    path = tmp_path / "my_energy.py"
    path.write_text(ENERGY)
    return path


def _error(capsys, argv: list[str]) -> str:
    """The one-line error of a command that must fail with exit 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"mlmol {argv[0]}: error: "), err
    return err


@pytest.mark.parametrize("steps", ["0", "-5"])
def test_a_count_that_is_not_positive_is_refused_before_training(capsys, tmp_path, steps):
    err = _error(capsys, ["train", "double-well", "--steps", steps, "--out", str(tmp_path / "r")])
    assert f"--steps must be a positive whole number, got {steps}" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "double-well", "--threads", "0"], "--threads must be a positive whole number, got 0"),
    (["vmc", "H", "--threads", "0"], "--threads must be a positive whole number, got 0"),
    (["operator", "smoluchowski", "--threads", "-1"], "--threads must be a positive whole number, got -1"),
    (["train", "double-well", "--losses", "ml+kll"], "unknown --losses 'ml+kll'; choose one of ml, ml+kl"),
    (["train", "double-well", "--flow", "nvp"], "argument --flow: invalid choice: 'nvp'"),
])
def test_bad_options_get_one_line_and_exit_2(capsys, tmp_path, argv, message):
    assert message in _error(capsys, [*argv, "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def test_a_losses_typo_on_a_molecule_is_found_before_any_md(capsys, tmp_path):
    err = _error(capsys, ["train", "alanine-dipeptide", "--losses", "ml+kl+r", "--out", str(tmp_path / "ala")])
    assert "unknown --losses 'ml+kl+r'" in err and not (tmp_path / "ala").exists()


def test_an_energy_that_ignores_a_coordinate_is_refused(capsys, tmp_path, energy_file):
    err = _error(capsys, ["train", "--energy", f"{energy_file}:tilted", "--dim", "3", "--out", str(tmp_path / "r")])
    assert "does not depend on x2" in err and "Is --dim 3 right?" in err


def test_out_must_be_a_new_or_empty_folder(capsys, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("mine")
    assert "is a file, not a folder" in _error(capsys, ["train", "double-well", "--out", str(readme)])
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"jpg")
    assert "is a folder with other files in it" in _error(capsys, ["train", "double-well", "--out", str(folder)])
    assert readme.read_text() == "mine" and sorted(p.name for p in folder.iterdir()) == ["holiday.jpg"]


@pytest.mark.parametrize("tau", ["0", "-1"])
def test_sample_tau_must_be_positive(capsys, tmp_path, tau):
    assert f"--tau must be positive, got {float(tau):g}" in _error(
        capsys, ["sample", str(tmp_path / "r"), "--tau", tau, "--out", str(tmp_path / "s.npz")])


def test_files_that_are_not_what_they_should_be(capsys, tmp_path, energy_file):
    text = tmp_path / "x.npz"
    text.write_text("not an npz\n")
    run = tmp_path / "run"
    assert main(["train", "double-well", "--steps", "5", "--out", str(run)]) == 0
    capsys.readouterr()
    err = _error(capsys, ["evaluate", str(run), "--samples", str(text)])
    assert "is not a samples file written by mlmol sample" in err and "allow_pickle" not in err
    assert "is not a PDB file: it has no ATOM or HETATM records" in _error(
        capsys, ["simulate", "--pdb", str(energy_file), "--out", str(tmp_path / "t.dcd"), "--frames", "2"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("system: {name: double-well\nseed: 1\n")
    assert "is not valid YAML (line 2, column 5" in _error(capsys, ["train", str(bad), "--out", str(tmp_path / "r")])
    assert "give either --pdb (a molecule) or --energy (your own function), not both" in _error(
        capsys, ["train", "--pdb", str(energy_file), "--energy", f"{energy_file}:tilted", "--dim", "2", "--out",
                 str(tmp_path / "r2")])


def test_a_moved_energy_file_is_named_as_the_run_recorded_it_and_as_given(capsys, tmp_path, energy_file,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--energy", "my_energy.py:tilted", "--dim", "2", "--steps", "5", "--out", "run"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["system"]["given"] == "my_energy.py:tilted"
    energy_file.rename(tmp_path / "moved.py")
    capsys.readouterr()
    err = _error(capsys, ["sample", "run", "--n", "10", "--out", "s.npz"])
    assert (f"the run's energy file {energy_file}:tilted, given as my_energy.py:tilted (system.energy in "
            f"{Path('run') / 'config.yaml'}) is gone") in err
    assert "--energy" not in err


def test_an_energy_undefined_in_part_of_space_trains_evaluates_and_reports(capsys, tmp_path, energy_file):
    run = tmp_path / "run"
    assert main(["train", "--energy", f"{energy_file}:nan_far_left", "--dim", "2", "--steps", "200", "--out",
                 str(run)]) == 0
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # the reverse KL gets no gradient from undefined energies, so the flow drifts there (seed 0: most of the
    # batch by the end): training says so instead of ending silently
    assert log[-1]["n_nonfinite_energy"] > 100
    assert f"{log[-1]['n_nonfinite_energy']} of 1000 generator samples had a NaN or infinite energy" in \
        capsys.readouterr().err
    assert main(["evaluate", str(run), "--n", "20000"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["nonfinite_energy_fraction"] < 1  # counted: such samples have weight zero
    assert metrics["weighted_fraction"] == pytest.approx(1 - metrics["nonfinite_energy_fraction"])
    assert "non-finite energy" in capsys.readouterr().out
    # the exact reference gives the undefined region no weight: the same by an independent grid sum
    (lo0, hi0), (lo1, hi1) = yaml.safe_load((run / "config.yaml").read_text())["system"]["bounds"]
    x0, x1 = np.meshgrid(np.linspace(lo0, hi0, 1501), np.linspace(lo1, hi1, 1501), indexing="ij")
    u = 2.0 * (x0**2 - 1.0) ** 2 + 0.7 * x0 + 0.5 * (x1 - 0.3 * x0) ** 2
    p = np.where(x0 < -1.3, 0.0, np.exp(-(u - u.min())))
    assert metrics["delta_f"]["exact"] == pytest.approx(-np.log(p[x0 < 0].sum() / p[x0 > 0].sum()), abs=2e-3)
    assert main(["report", str(run), "--n", "2000"]) == 0
    assert "non-finite energy" in (run / "report.html").read_text()


def test_hydrogens_added_to_a_pdb_are_announced_and_can_be_refused(capsys, tmp_path):
    pytest.importorskip("openmm")
    pdb = str(Path(__file__).parent / "data" / "glycine-dipeptide.pdb")
    common = ["--forcefield", "amber14-all.xml", "--frames", "1", "--interval", "1"]
    assert main(["simulate", "--pdb", pdb, *common, "--out", str(tmp_path / "a.dcd")]) == 0
    assert "added 10 hydrogens to" in capsys.readouterr().err
    err = _error(capsys, ["simulate", "--pdb", pdb, *common, "--no-add-hydrogens", "--out", str(tmp_path / "b.dcd")])
    assert "lacks hydrogens" in err and not (tmp_path / "b.dcd").exists()


def test_every_option_of_every_command_has_help_text():
    parser = _parser()
    missing = [(name, action.dest) for sub in parser._subparsers._group_actions for name, command in sub.choices.items()
               for action in command._actions if action.help is None]
    assert not missing, missing
    assert all(command.description for sub in parser._subparsers._group_actions for command in sub.choices.values()
               if command.prog.split()[-1] == "systems")


def test_progress_is_written_as_lines_when_not_on_a_terminal(tmp_path):
    """Off a terminal (a log, a pipe) the bar becomes plain lines."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"system": {"name": "double-well"}, "data": {"n": 300},
                                      "flow": {"blocks": 1, "hidden": [8]}, "recipe": {"steps": 20}}))
    done = subprocess.run([sys.executable, "-m", "mlmol", "train", str(config), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "\r" not in done.stderr and any(line.startswith("training: 100%") and "20/20" in line for line in lines)


def test_outputs_that_would_destroy_a_file_or_cannot_be_written(capsys, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("mine")
    run = tmp_path / "run"
    assert main(["train", "double-well", "--steps", "5", "--out", str(run)]) == 0
    capsys.readouterr()
    assert "samples are written as .npz" in _error(capsys, ["sample", str(run), "--out", str(readme)])
    assert "is a folder" in _error(capsys, ["sample", str(run), "--out", str(tmp_path)])
    assert readme.read_text() == "mine"
    assert "the suffix names no trajectory format" in _error(
        capsys, ["simulate", "alanine-dipeptide", "--out", str(tmp_path / "t.txt"), "--frames", "2"])
    assert "is a file, not a run directory" in _error(capsys, ["sample", str(readme), "--out", str(tmp_path / "s.npz")])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:  # a read-only folder, or (as root, who may write there anyway) /proc, where no one can
        target = Path("/proc") if _writable(locked) else locked
        err = _error(capsys, ["sample", str(run), "--out", str(target / "s.npz")])
        assert str(target) in err and "check the path and its permissions" in err
        err = _error(capsys, ["train", "double-well", "--out", str(target / "run")])
        assert str(target) in err and "check the path and its permissions" in err
    finally:
        locked.chmod(0o700)


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("")
    except PermissionError:
        return False
    (folder / "probe").unlink()
    return True


@pytest.mark.parametrize("argv, message", [
    (["train", "--energy", "E:quartic", "--dim", "1"], "--flow realnvp needs at least 2 coordinates"),
    (["train", "--energy", "E:tilted", "--dim", "0"], "--dim must be a positive whole number, got 0"),
    (["train", "double-well", "--flow", "equivariant"], "--flow equivariant needs a system of identical particles"),
    (["train", "dw4", "--flow", "spline"], "needs --flow equivariant; drop --flow spline"),
])
def test_a_flow_that_does_not_fit_the_system_is_refused_before_any_data(capsys, tmp_path, energy_file, argv,
                                                                        message):
    argv = [a.replace("E:", f"{energy_file}:") for a in argv]
    assert message in _error(capsys, [*argv, "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()  # nothing written: no data, no config


def test_an_unknown_option_is_named_by_its_command(capsys, tmp_path):
    assert "mlmol sample: error: unrecognized arguments: --temperature 2" in _error(
        capsys, ["sample", str(tmp_path), "--out", "s.npz", "--temperature", "2"])


def test_report_draws_its_figures_from_the_samples_file_given(capsys, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "double-well", "--steps", "5", "--out", str(run)]) == 0
    assert main(["sample", str(run), "--n", "1234", "--out", str(tmp_path / "mine.npz")]) == 0
    assert main(["report", str(run), "--samples", str(tmp_path / "mine.npz")]) == 0
    capsys.readouterr()
    page = (run / "report.html").read_text()
    assert "Figures: 1234 samples from" in page and "mine.npz" in page
    assert "does not exist" in _error(capsys, ["report", str(run), "--samples", str(tmp_path / "none.npz")])


def test_batched_engine_options_are_checked_before_any_md(capsys, tmp_path):
    """Options of the batched engine with the OpenMM engine, or of molecules on a toy system, or an
    unknown data engine in a config, fail in one line before anything is written."""
    out = tmp_path / "a.dcd"
    common = ["simulate", "alanine-dipeptide", "--out", str(out), "--frames", "2"]
    assert "go with --engine torch" in _error(capsys, [*common, "--precision", "float64"])
    assert "go with --engine torch" in _error(capsys, [*common, "--compile"])
    assert not out.exists()
    err = _error(capsys, ["train", "double-well", "--data-engine", "torch", "--out", str(tmp_path / "r")])
    assert "--data-engine applies to molecules" in err
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"system": {"molecule": "alanine-dipeptide"}, "data": {"engine": "gromacs"}}))
    assert "unknown MD engine 'gromacs'" in _error(capsys, ["train", str(config), "--out", str(tmp_path / "r")])
    config.write_text(yaml.safe_dump({"system": {"molecule": "alanine-dipeptide"}, "data": {"ladder": [200.0, 4]}}))
    assert "data.ladder in the config must be" in _error(capsys, ["train", str(config), "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()
