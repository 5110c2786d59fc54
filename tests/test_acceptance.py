"""The acceptance bars of the core issue, through the command line (slow: minutes each).

`mlmol train SYSTEM --out R --seed 0`, `mlmol sample R --n 100000`, then the reweighted
profile RMSE < 0.2 kT (bins with F < 5 kT) and |ΔF − exact| < 0.1 kT.
"""

import json

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
