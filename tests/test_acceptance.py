"""The acceptance bars of the first Boltzmann-generator release, through the command line (slow: minutes each).

`mlmol train SYSTEM --out R --seed 0`, `mlmol sample R --n 100000`, then the reweighted
profile RMSE < 0.2 kT (bins with F < 5 kT) and |ΔF − exact| < 0.1 kT.
"""

import json
from pathlib import Path

import pytest

from mlmol.cli import main

# A potential no built-in system defines: three wells along a ring, unequal depths.
RING = '''
import torch

def ring(x):
    r = torch.sqrt((x ** 2).sum(-1) + 1e-12)
    angle = torch.atan2(x[:, 1], x[:, 0])
    return 4.0 * (r - 1.5) ** 2 + 2.0 * torch.cos(3 * angle) + 0.8 * x[:, 0]
'''


def _accept(tmp_path, train_args, name):
    run = tmp_path / name
    assert main(["train", *train_args, "--out", str(run), "--seed", "0"]) == 0
    assert main(["sample", str(run), "--n", "100000", "--out", str(run / "s.npz")]) == 0
    assert main(["evaluate", str(run), "--samples", str(run / "s.npz")]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["ess"] >= 100, metrics  # a run with fewer effective samples does not count toward a bar
    assert abs(metrics["delta_f"]["error"]) < 0.1, metrics
    for profile in metrics["profiles"].values():
        assert profile["rmse"] < 0.2 and profile["bins_compared"] >= 10, metrics
    return metrics


@pytest.mark.slow
@pytest.mark.smoke
def test_double_well_meets_the_bars(tmp_path):
    _accept(tmp_path, ["double-well"], "dw")


@pytest.mark.slow
def test_mueller_brown_meets_the_bars(tmp_path):
    metrics = _accept(tmp_path, ["mueller-brown"], "mb")
    assert set(metrics["profiles"]) == {"x0", "x1"}


@pytest.mark.slow
def test_user_energy_meets_the_bars(tmp_path):
    path = tmp_path / "ring.py"
    path.write_text(RING)
    _accept(tmp_path, ["--energy", f"{path}:ring", "--dim", "2"], "ring")


@pytest.mark.slow
def test_a_second_molecule_given_only_as_a_pdb_runs_end_to_end(tmp_path):
    """Glycine dipeptide, heavy atoms only: hydrogens added, MD, internal coordinates, train, sample, report."""
    pytest.importorskip("openmm")
    import numpy as np
    import torch
    import yaml

    from mlmol.run import load

    pdb = str(Path(__file__).parent / "data" / "glycine-dipeptide.pdb")
    config = tmp_path / "short.yaml"
    config.write_text(yaml.safe_dump({"data": {"n": 3000, "interval": 100, "equilibration": 2000},
                                      "flow": {"blocks": 2, "hidden": [64, 64]},
                                      "recipe": {"steps": 600, "ml_batch": 256, "ml_lr": 2e-3},
                                      "evaluate": {"n": 5000}}))
    run = tmp_path / "gly"
    assert main(["train", str(config), "--pdb", pdb, "--forcefield", "amber14-all.xml", "--implicit-solvent",
                 "obc2", "--out", str(run)]) == 0
    assert main(["simulate", "--pdb", pdb, "--forcefield", "amber14-all.xml", "--implicit-solvent", "obc2",
                 "--out", str(tmp_path / "md.dcd"), "--frames", "300", "--interval", "100"]) == 0
    assert main(["sample", str(run), "--n", "5000", "--out", str(run / "s.npz")]) == 0
    assert main(["evaluate", str(run), "--samples", str(run / "s.npz")]) == 0
    assert main(["report", str(run), "--n", "2000"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    trained = load(run)
    assert trained.system.dim == 19 * 3  # 9 heavy atoms in the PDB, 10 hydrogens added
    assert metrics["chiral_centres"] == 0 and metrics["delta_f"]["states"] == ["phi > 0", "phi < 0"]
    assert "Ramachandran" in (run / "report.html").read_text()
    # the generator learned the molecule: its energies overlap those of MD (reduced units)
    with np.load(run / "s.npz") as f:
        u_flow = trained.system.energy(torch.from_numpy(f["x"]))
    u_md = trained.system.energy(trained.data)
    assert abs(float(u_flow.median() - u_md.median())) < 25, (u_flow.median(), u_md.median())
    assert metrics["ess_fraction"] > 1e-3, metrics
    # and it is a bijection: data → latent → data returns the configurations up to a rigid motion (nm)
    x = trained.data[:200].float()
    with torch.no_grad():
        z, _ = trained.flow.transform.inverse(x)
        back, _ = trained.flow.transform.forward(z)
    distances = [torch.cdist(c.reshape(-1, 19, 3), c.reshape(-1, 19, 3)) for c in (x, back)]
    assert torch.allclose(*distances, atol=1e-4)
    trained.system.close()


@pytest.mark.slow
def test_a_peptide_from_its_sequence_runs_end_to_end(tmp_path):
    """mlmol build AAA → train (OBC1, 310 K, short) → sample → evaluate → report: every residue's φ basins
    in the metrics and the report, on the native force field."""
    pytest.importorskip("openmm")
    import yaml

    from mlmol.run import load

    pdb = tmp_path / "ala3.pdb"
    assert main(["build", "AAA", "--out", str(pdb)]) == 0
    config = tmp_path / "short.yaml"
    config.write_text(yaml.safe_dump({"data": {"n": 2000, "interval": 50, "equilibration": 1000},
                                      "flow": {"blocks": 2, "hidden": [64, 64]},
                                      "recipe": {"steps": 300, "ml_batch": 256, "ml_lr": 2e-3},
                                      "evaluate": {"n": 4000}}))
    run = tmp_path / "ala3"
    assert main(["train", str(config), "--pdb", str(pdb), "--implicit-solvent", "obc1", "--temperature", "310",
                 "--out", str(run)]) == 0
    trained = load(run)
    assert type(trained.system.backend).__name__ == "TorchEnergy" and trained.system.temperature == 310.0
    assert main(["sample", str(run), "--n", "4000", "--out", str(run / "s.npz")]) == 0
    assert main(["evaluate", str(run), "--samples", str(run / "s.npz")]) == 0
    assert main(["report", str(run), "--n", "2000"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics["delta_f_residues"]) == ["phi2", "phi3", "phi4"] and metrics["chiral_centres"] == 3
    page = (run / "report.html").read_text()
    assert "Ramachandran free energy of every residue" in page
    assert "F(phi3 &gt; 0)" in page or "F(phi3 > 0)" in page  # each residue's ΔF in the summary table
    trained.system.close()
