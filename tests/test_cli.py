"""The command line: the documented workflow end to end, and clear errors for bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlmol.cli import main

ENERGY = '''
import torch

def tilted(x):
    return 2.0 * (x[:, 0] ** 2 - 1.0) ** 2 + 0.7 * x[:, 0] + 0.5 * (x[:, 1] - 0.3 * x[:, 0]) ** 2

def wrong_shape(x):
    return tilted(x)[:, None]

def nan_everywhere(x):
    return torch.full(x.shape[:1], float("nan"))

def nan_left(x):
    return torch.where(x[:, 0] < 0, torch.full_like(x[:, 0], float("nan")), tilted(x))
'''


@pytest.fixture
def energy_file(tmp_path):
    path = tmp_path / "my_energy.py"
    path.write_text(ENERGY)
    return path


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_workflow_train_sample_evaluate_report(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "double-well", "--out", str(run), "--steps", "40", "--seed", "1"]) == 0
    for name in ("config.yaml", "checkpoint.pt", "metrics.jsonl", "data.npz"):
        assert (run / name).is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["seed"] == 1 and config["recipe"]["steps"] == 40 and config["flow"]["kind"] == "realnvp"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 40

    assert main(["sample", str(run), "--n", "2000", "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as f:
        assert sorted(f.files) == ["energy", "kT", "log_weights", "x"]
        assert f["x"].shape == (2000, 2) and f["x"].dtype == np.float64
        u, lw = f["energy"], f["log_weights"]
    assert np.all(np.isfinite(u)) and lw.shape == (2000,)

    assert main(["evaluate", str(run), "--samples", str(tmp_path / "s.npz")]) == 0
    out = capsys.readouterr().out
    assert "ESS" in out and "exact -3.380" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 2000 and "rmse" in metrics["profiles"]["x0"]
    assert metrics["seed"] is None  # given samples: their seed is the sampling command's, not evaluate's

    assert main(["report", str(run), "--n", "2000"]) == 0
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4

    # a config file reruns the same run
    assert main(["train", str(run / "config.yaml"), "--out", str(tmp_path / "again")]) == 0
    assert yaml.safe_load((tmp_path / "again" / "config.yaml").read_text()) == config


def test_report_shows_the_metrics_evaluate_wrote_and_never_rewrites_them(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "double-well", "--out", str(run), "--steps", "20", "--seed", "2"]) == 0
    assert main(["sample", str(run), "--n", "3000", "--out", str(run / "samples.npz")]) == 0
    assert main(["evaluate", str(run), "--samples", str(run / "samples.npz")]) == 0
    written = (run / "metrics.json").read_bytes()
    metrics = json.loads(written)
    assert metrics["samples"] == str((run / "samples.npz").resolve())

    assert main(["report", str(run), "--n", "500"]) == 0
    assert (run / "metrics.json").read_bytes() == written
    page = (run / "report.html").read_text()
    d = metrics["delta_f"]
    assert "<td>3000</td>" in page and f"<td>{d['value']:.3f} ± {d['stderr']:.3f} kT" in page  # evaluate's numbers
    assert f"{metrics['profiles']['x0']['rmse']:.3f} kT" in page
    assert f"Figures: 3000 samples from {run.resolve() / 'samples.npz'}" in page  # evaluate's samples, not 500 new

    # without metrics.json or a samples file: fresh samples, and metrics for the page only
    (run / "metrics.json").unlink()
    (run / "samples.npz").unlink()
    assert main(["report", str(run), "--n", "500"]) == 0
    assert not (run / "metrics.json").exists()
    page = (run / "report.html").read_text()
    assert "<td>500</td>" in page and "not saved" in page and "Figures: 500 fresh samples (seed 0)" in page


def test_user_energy_run(tmp_path, energy_file):
    run = tmp_path / "mine"
    assert main(["train", "--energy", f"{energy_file}:tilted", "--dim", "2", "--out", str(run), "--steps", "30"]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["system"]["energy"].endswith("my_energy.py:tilted") and len(config["system"]["bounds"]) == 2
    assert main(["evaluate", str(run), "--n", "2000"]) == 0


def test_unknown_system(capsys, tmp_path):
    err = _error(capsys, ["train", "double-wel", "--out", str(tmp_path / "r")])
    assert "unknown system 'double-wel'" in err and "double-well" in err and "mueller-brown" in err


def test_wrong_dim(capsys, tmp_path, energy_file):
    assert "has dim 2, but --dim 3" in _error(capsys, ["train", "double-well", "--dim", "3", "--out", str(tmp_path / "r")])
    err = _error(capsys, ["train", "--energy", f"{energy_file}:tilted", "--dim", "1", "--out", str(tmp_path / "r")])
    assert "IndexError" in err and "--dim 1" in err


def test_energy_file_errors(capsys, tmp_path, energy_file):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy as np\nraise RuntimeError('boom')\n")
    assert "does not load: RuntimeError: boom" in _error(
        capsys, ["train", "--energy", f"{bad}:u", "--dim", "2", "--out", str(tmp_path / "r")])
    err = _error(capsys, ["train", "--energy", f"{energy_file}:wrong_shape", "--dim", "2", "--out", str(tmp_path / "r")])
    assert "shape (4, 1)" in err
    assert "needs --dim" in _error(capsys, ["train", "--energy", f"{energy_file}:tilted", "--out", str(tmp_path / "r")])


def test_nan_energies_at_initial_samples(capsys, tmp_path, energy_file):
    err = _error(capsys, ["train", "--energy", f"{energy_file}:nan_everywhere", "--dim", "2", "--out", str(tmp_path / "r")])
    assert "NaN or inf at all 64 random starting points" in err
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"system": {"energy": f"{energy_file}:nan_left", "dim": 2},
                                      "data": {"starts": [[-1.0, 0.0], [1.0, 0.0]]}}))
    err = _error(capsys, ["train", str(config), "--out", str(tmp_path / "r")])
    assert "NaN or inf at 1 of 2 starting points (first at x = [-1, 0]" in err


def test_resume_errors(capsys, tmp_path):
    assert "config.yaml does not exist" in _error(capsys, ["train", "--out", str(tmp_path / "none"), "--resume"])
    run = tmp_path / "run"
    assert main(["train", "double-well", "--out", str(run), "--steps", "10"]) == 0
    (run / "checkpoint.pt").write_bytes(b"\x00garbage")
    assert "corrupt" in _error(capsys, ["train", "--out", str(run), "--resume"])
    (run / "checkpoint.pt").unlink()
    assert "no checkpoint" in _error(capsys, ["train", "--out", str(run), "--resume"])
    assert "train first" in _error(capsys, ["sample", str(tmp_path / "none"), "--n", "10", "--out", "x.npz"])
    # an existing run is never overwritten without --resume
    main(["train", "double-well", "--out", str(run), "--steps", "10"])
    assert "already holds a trained run" in _error(capsys, ["train", "double-well", "--out", str(run)])


def test_resume_of_a_finished_run_says_so_and_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "double-well", "--out", str(run), "--steps", "30"]) == 0
    before = {name: (run / name).read_bytes() for name in ("checkpoint.pt", "metrics.jsonl", "config.yaml")}
    assert "already finished its 30 steps; nothing to resume" in _error(capsys, ["train", "--out", str(run),
                                                                                "--resume"])
    assert {name: (run / name).read_bytes() for name in before} == before
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [10, 20, 30]


def test_process_exit_code_and_help():
    result = subprocess.run([sys.executable, "-m", "mlmol", "train", "nope", "--out", "/tmp/x"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "Known systems" in result.stderr
    result = subprocess.run([sys.executable, "-m", "mlmol", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "mlmol train double-well" in result.stdout


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is present")
def test_cuda_request_without_cuda_is_a_clear_error(capsys, tmp_path):
    err = _error(capsys, ["train", "double-well", "--device", "cuda", "--out", str(tmp_path / "r")])
    assert "CUDA is not available" in err and "--device cpu" in err


def test_simulate_cli(capsys, tmp_path):
    pytest.importorskip("openmm")
    out = tmp_path / "md.dcd"
    assert main(["simulate", "alanine-dipeptide", "--out", str(out), "--frames", "5", "--interval", "10"]) == 0
    assert out.is_file() and (tmp_path / "md.dcd.chk").is_file()
    assert "already exists" in _error(capsys, ["simulate", "alanine-dipeptide", "--out", str(out), "--frames", "9"])
    assert main(["simulate", "alanine-dipeptide", "--out", str(out), "--frames", "8", "--interval", "10",
                 "--resume"]) == 0
    assert "wrote 8 frames" in capsys.readouterr().out
    assert "unknown molecule" in _error(capsys, ["simulate", "ala", "--out", str(tmp_path / "x.dcd"), "--frames", "2"])
    assert "does not exist" in _error(capsys, ["simulate", "--pdb", str(tmp_path / "no.pdb"), "--out",
                                               str(tmp_path / "y.dcd"), "--frames", "2"])


def test_molecule_pipeline_end_to_end(tmp_path):
    """alanine dipeptide through train (MD data, internal-coordinate flow), sample, evaluate, report."""
    pytest.importorskip("openmm")
    config = tmp_path / "ala2.yaml"
    config.write_text(yaml.safe_dump({"system": {"molecule": "alanine-dipeptide"},
                                      "data": {"n": 200, "interval": 20, "equilibration": 100, "compile": False},
                                      "flow": {"blocks": 1, "hidden": [16]}, "recipe": {"steps": 20}}))
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 0
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["system"] == {"temperature": 300.0, "workers": 1, "backend": "auto",
                                  "molecule": "alanine-dipeptide"}
    assert resolved["flow"]["kind"] == "molecular" and resolved["data"]["sampler"] == "md"
    assert main(["sample", str(run), "--n", "500", "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as f:
        assert f["x"].shape == (500, 66) and "ALA" in str(f["topology"])
        assert float(f["kT"]) == pytest.approx(0.008314462618 * 300)
    assert main(["evaluate", str(run), "--samples", str(tmp_path / "s.npz")]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["delta_f"]["states"] == ["phi > 0", "phi < 0"] and "profiles" not in metrics
    assert main(["report", str(run), "--n", "500"]) == 0
    assert "Ramachandran" in (run / "report.html").read_text()


def test_train_from_a_pdb_with_another_force_field(tmp_path):
    pytest.importorskip("openmm")
    from mlmol.systems.molecules import ALANINE_DIPEPTIDE_PDB

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"data": {"n": 100, "interval": 10, "equilibration": 50, "compile": False},
                                      "flow": {"kind": "molecular", "blocks": 1, "hidden": [8]},
                                      "recipe": {"steps": 10}}))
    run = tmp_path / "run"
    assert main(["train", str(config), "--pdb", str(ALANINE_DIPEPTIDE_PDB), "--forcefield", "amber14-all.xml",
                 "--implicit-solvent", "obc2", "--out", str(run)]) == 0
    system = yaml.safe_load((run / "config.yaml").read_text())["system"]
    assert system["forcefield"] == ["amber14-all.xml"] and system["implicit_solvent"] == "obc2"
    assert main(["evaluate", str(run), "--n", "200"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["delta_f"]["states"] == ["phi > 0", "phi < 0"]  # a peptide PDB gets the φ states
    assert "value" in metrics["delta_f"] or "no weighted samples" in metrics["delta_f"]["unavailable"]


def test_bad_molecular_inputs_leave_everything_written_intact(capsys, tmp_path):
    """Each bad input fails with a message naming the problem; trajectories, checkpoints and
    metrics already on disk keep their exact bytes."""
    pytest.importorskip("openmm")
    from mlmol.systems.molecules import ALANINE_DIPEPTIDE_PDB

    md = tmp_path / "md.dcd"
    assert main(["simulate", "alanine-dipeptide", "--out", str(md), "--frames", "4", "--interval", "10"]) == 0
    run = tmp_path / "run"
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"system": {"molecule": "alanine-dipeptide"},
                                      "data": {"n": 50, "interval": 10, "equilibration": 50, "compile": False},
                                      "flow": {"blocks": 1, "hidden": [8]}, "recipe": {"steps": 5},
                                      "evaluate": {"n": 100}}))
    assert main(["train", str(config), "--out", str(run)]) == 0
    assert main(["evaluate", str(run)]) == 0
    written = [md, md.with_name("md.dcd.chk"), run / "checkpoint.pt", run / "data.npz", run / "config.yaml",
               run / "metrics.json"]
    before = {path: path.read_bytes() for path in written}

    unknown = tmp_path / "unknown.pdb"
    unknown.write_text("HETATM    1  C1  XYZ A   1       0.000   0.000   0.000  1.00  0.00           C\n"
                       "HETATM    2  C2  XYZ A   1       1.500   0.000   0.000  1.00  0.00           C\nEND\n")
    nonfinite = tmp_path / "nonfinite.pdb"
    nonfinite.write_text(ALANINE_DIPEPTIDE_PDB.read_text().replace("   0.064   0.048", "     nan   0.048"))
    other = tmp_path / "other.dcd"
    assert main(["simulate", "--pdb", str(Path(__file__).parent / "data" / "glycine-dipeptide.pdb"), "--out",
                 str(other), "--frames", "2", "--interval", "10"]) == 0
    npz = tmp_path / "wrong.npz"
    np.savez(npz, x=np.zeros((3, 57)), log_weights=np.zeros(3), energy=np.zeros(3), kT=2.49)

    assert "XYZ" in _error(capsys, ["simulate", "--pdb", str(unknown), "--out", str(md), "--frames", "8",
                                    "--resume"])
    assert "nonfinite.pdb" in _error(capsys, ["simulate", "--pdb", str(nonfinite), "--out", str(md), "--frames",
                                              "8", "--resume"])
    assert "drop the other options --pdb" in _error(capsys, ["train", "--pdb", str(nonfinite), "--out", str(run),
                                                             "--resume"])
    assert "nonfinite.pdb" in _error(capsys, ["train", "--pdb", str(nonfinite), "--out", str(tmp_path / "new")])
    assert "already holds a trained run" in _error(capsys, ["train", "--pdb", str(unknown), "--out", str(run)])
    # a trajectory of another molecule (19 atoms) resumed as alanine dipeptide (22 atoms)
    other.with_name("other.dcd.chk").write_bytes(md.with_name("md.dcd.chk").read_bytes())
    err = _error(capsys, ["simulate", "alanine-dipeptide", "--out", str(other), "--frames", "8", "--interval",
                          "10", "--resume"])
    assert "other.dcd" in err and "atoms" in err
    assert "dim 57" in _error(capsys, ["evaluate", str(run), "--samples", str(npz)])
    for path, content in before.items():
        assert path.read_bytes() == content, f"{path} changed"


def test_particle_system_runs_the_equivariant_flow(tmp_path, capsys):
    config = tmp_path / "dw4.yaml"
    config.write_text(yaml.safe_dump({
        "system": {"name": "dw4"}, "data": {"n": 2000, "burn": 200, "thin": 5, "chains_per_start": 200},
        "flow": {"hidden": 16, "layers": 2, "basis": 8, "steps": 4}, "recipe": {"steps": 30},
        "evaluate": {"n": 500}}))
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 0
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["flow"]["kind"] == "equivariant" and resolved["recipe"]["name"] == "klein2023"
    assert main(["sample", str(run), "--n", "300", "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as f:
        x = f["x"].reshape(300, 4, 2)
        assert np.abs(x.mean(1)).max() < 1e-5 and np.isfinite(f["log_weights"]).all()  # centred, all weighted
    assert main(["evaluate", str(run)]) == 0
    # flow matching trains only the equivariant flow: a clear error otherwise, before any data
    capsys.readouterr()
    err = _error(capsys, ["train", str(config), "--out", str(tmp_path / "r2"), "--flow", "realnvp"])
    assert "needs --flow equivariant; drop --flow realnvp" in err and not (tmp_path / "r2").exists()
