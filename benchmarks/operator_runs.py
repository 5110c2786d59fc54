"""Fourier neural operator results: Burgers, Darcy, zero-shot super-resolution and the Smoluchowski
propagator, each row a run directory made by the ``mlmol operator`` command in ``RUNS``.

    python benchmarks/operator_runs.py [--run] [--threads N]

``--run`` makes the missing runs first, in order (Burgers and Darcy share their data files with
benchmarks/fno_comparison.py). Besides the FNO's test error, two reference predictors show how
hard each map is: the zero function (relative error 1) and, for Burgers, the linear part of the
equation (the heat equation, exact in Fourier space). Writes benchmarks/results/operator_runs.json/.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from pipeline import markdown_table, write_results

from mlmol.operators import burgers

DATA = "runs/operators/{}.npz"
RUNS = {  # name: mlmol operator arguments
    "burgers": ["burgers", "--out", "runs/operators/burgers", "--data", DATA.format("burgers-8192-1200-seed0"),
                "--eval-resolutions", "256", "4096", "8192", "--threads", "1"],
    "burgers-256": ["burgers", "--out", "runs/operators/burgers-256", "--data",
                    DATA.format("burgers-8192-1200-seed0"), "--resolution", "256", "--eval-resolutions", "1024",
                    "4096", "8192", "--threads", "1"],
    "darcy": ["darcy", "--out", "runs/operators/darcy", "--data", DATA.format("darcy-85-1200-seed0"),
              "--threads", "2"],
    "smoluchowski": ["smoluchowski", "--out", "runs/operators/smoluchowski", "--data",
                     DATA.format("smoluchowski-256-1200-seed0"), "--threads", "1"],
}
BARS = {"burgers": ("≤ 0.02 in ≤ 30 min", 0.02, 30), "darcy": ("≤ 0.015 in ≤ 60 min", 0.015, 60)}


def heat_equation_error(inputs: np.ndarray, outputs: np.ndarray, resolution: int) -> float:
    """Relative L2 error of u(·, 1) ≈ exp(ν Δ) u₀ (Burgers without its nonlinear term) on pairs
    ``[N, 8192, 1]`` subsampled to ``resolution``."""
    stride = burgers.FINE_POINTS // resolution
    u0, u1 = inputs[:, ::stride, 0].astype(float), outputs[:, ::stride, 0].astype(float)
    k = 2 * math.pi * np.fft.rfftfreq(resolution, 1 / resolution)
    linear = np.fft.irfft(np.fft.rfft(u0) * np.exp(-burgers.VISCOSITY * k**2), n=resolution)
    return float((np.linalg.norm(linear - u1, axis=1) / np.linalg.norm(u1, axis=1)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="make the missing runs first (about 2 hours)")
    args = parser.parse_args()
    rows = []
    for name, arguments in RUNS.items():
        out = Path(arguments[arguments.index("--out") + 1])
        if not (out / "metrics.json").is_file():
            if not args.run:
                print(f"skipping {name}: {out}/metrics.json is missing (--run makes it)")
                continue
            subprocess.run([sys.executable, "-m", "mlmol", "operator", *arguments], check=True)
        result = json.loads((out / "metrics.json").read_text())
        row = {"run": name, "command": "mlmol operator " + " ".join(arguments), **result}
        if result["problem"] == "burgers":
            with np.load(arguments[arguments.index("--data") + 1]) as stored:  # the test pairs, read once
                inputs, outputs = stored["inputs"][-result["test"]:], stored["outputs"][-result["test"]:]
            row["heat_equation_l2"] = {n: heat_equation_error(inputs, outputs, int(n)) for n in result["test_l2"]}
        rows.append(row)
    cells = []
    for row in rows:
        bar = BARS.get(row["run"])
        errors = "; ".join(f"{e:.4f} at {n}" for n, e in row["test_l2"].items())
        check = ""
        if bar:
            error, minutes = row["test_l2"][str(row["resolution"])], row["train_seconds"] / 60
            check = f"{bar[0]}: {'✓' if error <= bar[1] and minutes <= bar[2] else '✗'}"
        reference = ""
        if "heat_equation_l2" in row:
            reference = f"heat equation {row['heat_equation_l2'][str(row['resolution'])]:.3f}"
        if "mass_error" in row:
            reference = f"probability conserved to {row['mass_error']:.0e}"
        cells.append([row["run"], f"{row['train']} / {row['test']}", str(row["resolution"]), errors,
                      f"{row['train_seconds'] / 60:.1f} min × {row['threads']} thread(s)",
                      f"{row['seconds_per_epoch']:.1f}", reference, check])
    table = markdown_table(
        "Fourier neural operator test errors (relative L2; `python benchmarks/operator_runs.py`, each run's command "
        "in the JSON)", ["run", "train / test", "trained at", "test error at each resolution", "training",
                         "s / epoch", "reference", "bar"], cells, text_columns=4)
    write_results("operator_runs", rows, table)


if __name__ == "__main__":
    main()
