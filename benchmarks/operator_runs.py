"""Fourier neural operator results: Burgers (the released generator's ν = 1/1000 with shocks, the
headline against the paper's 0.016, and the paper text's ν = 0.1), Darcy, zero-shot super-resolution
and the Smoluchowski propagator, each row a run directory made by the ``mlmol operator`` command
in ``RUNS``.

    python benchmarks/operator_runs.py [--runs NAME ...] [--run]

``--runs`` picks rows by name (default: all of ``RUNS``); ``--run`` first makes those of them whose
run directory has no metrics.json, in order (Burgers ν = 0.1 and Darcy share their data files with
benchmarks/fno_comparison.py). Rows are merged into benchmarks/results/operator_runs.json/.md by
name: rows not picked, or picked but not run, keep what the JSON held. Rows made before the
validation split (their test pairs were also the validation pairs watched while choosing
schedules) are marked stale.

Every run trains on its training pairs, watches its validation pairs (``val_l2`` in
metrics.jsonl) and is evaluated once, at the end, on test pairs drawn from their own random
stream. Besides the FNO's test error, cheap reference predictors on the same test pairs say how
hard each map is: the zero function (relative error 1); for Burgers the heat equation (the linear
part alone, exact in Fourier space); for Smoluchowski p(t) = p₀ and the Boltzmann density; for
Darcy the exact solution for the constant coefficient exp(mean log a).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pipeline import RESULTS, markdown_table, write_results

DATA = "runs/operators/{}.npz"
OUT = "runs/operators/heldout/{}"  # new directories: the runs made before the validation split stay as they were
RUNS = {  # name: mlmol operator arguments, in the order --run makes them
    # the released generator's setting; 450 epochs at 256 points (4 × cheaper, the data are resolved
    # there), then 50 at 1024, as the paper's 500; about 30 min on one thread
    "burgers-shock": ["burgers-shock", "--out", OUT.format("burgers-shock"), "--data",
                      DATA.format("burgers-shock-8192-seed0"), "--coarse-epochs", "450", "--epochs", "50",
                      "--eval-resolutions", "256", "2048", "8192", "--threads", "1"],
    "burgers": ["burgers", "--out", OUT.format("burgers"), "--data", DATA.format("burgers-8192-1200-seed0"),
                "--eval-resolutions", "256", "4096", "8192", "--threads", "1"],
    "burgers-256": ["burgers", "--out", OUT.format("burgers-256"), "--data",
                    DATA.format("burgers-8192-1200-seed0"), "--resolution", "256", "--eval-resolutions", "1024",
                    "4096", "8192", "--threads", "1"],
    "darcy": ["darcy", "--out", OUT.format("darcy"), "--data", DATA.format("darcy-85-1200-seed0"), "--threads", "2"],
    "smoluchowski": ["smoluchowski", "--out", OUT.format("smoluchowski"), "--data",
                     DATA.format("smoluchowski-256-1200-seed0"), "--threads", "1"],
}
BARS = {"burgers-shock": ("≤ 0.02 in ≤ 60 min (paper 0.016)", 0.02, 60),
        "burgers": ("≤ 0.02 in ≤ 30 min", 0.02, 30), "darcy": ("≤ 0.015 in ≤ 60 min", 0.015, 60)}
STALE = ("made before the validation split: its test pairs were also the validation pairs watched during "
         "training and while choosing the schedule")


def row_of(name: str, arguments: list[str], result: dict) -> dict:
    """A results row: the run's metrics.json with its name and exact command."""
    return {"run": name, "command": "mlmol operator " + " ".join(arguments), **result}


def is_stale(row: dict) -> bool:
    """Made before the validation split: no ``validation`` size, so its test set was its validation set."""
    return "validation" not in row


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` rows with those of the same name replaced by ``new``; rows only in ``new`` appended;
    ordered as ``RUNS``, then any others as they came. Stale rows get their ``stale`` note."""
    rows = {row["run"]: row for row in old}
    rows.update({row["run"]: row for row in new})
    order = [name for name in RUNS if name in rows] + [name for name in rows if name not in RUNS]
    merged = []
    for name in order:
        row = dict(rows[name])
        if is_stale(row):
            row["stale"] = STALE
        else:
            row.pop("stale", None)
        merged.append(row)
    return merged


def references(row: dict) -> str:
    """The reference predictors' test errors at the training resolution, as text."""
    if "reference_l2" in row:
        values = {k: v for k, v in row["reference_l2"].items() if k != "zero"}
    elif "heat_equation_l2" in row:  # stale rows: the heat equation, on their old test pairs
        values = {"heat_equation": row["heat_equation_l2"][str(row["resolution"])]}
    else:
        values = {}
    text = "; ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in values.items())
    if "mass_error" in row:
        text += f"{'; ' if text else ''}probability conserved to {row['mass_error']:.0e}"
    return text


def table(rows: list[dict]) -> list[str]:
    cells = []
    for row in rows:
        stale = is_stale(row)
        bar = BARS.get(row["run"])
        errors = "; ".join(f"{e:.4f} at {n}" for n, e in row["test_l2"].items())
        check = ""
        if bar:
            error, minutes = row["test_l2"][str(row["resolution"])], row["train_seconds"] / 60
            met = "not held out" if stale else "✓" if error <= bar[1] and minutes <= bar[2] else "✗"
            check = f"{bar[0]}: {met}"
        validation = "—" if stale else f"{row['validation_l2'][str(row['resolution'])]:.4f}"
        sizes = f"{row['train']} / {'—' if stale else row['validation']} / {row['test']}"
        cells.append([row["run"] + (" (stale)" if stale else ""), sizes, str(row["resolution"]), validation, errors,
                      f"{row['train_seconds'] / 60:.1f} min × {row['threads']} thread(s)",
                      f"{row['seconds_per_epoch']:.1f}", references(row), check])
    lines = markdown_table(
        "Fourier neural operator errors (relative L2; `python benchmarks/operator_runs.py`, each run's command "
        "in the JSON). Validation: the pairs watched during training; test: held-out pairs from their own "
        "random stream, evaluated once at the end; references: cheap predictors on the same test pairs "
        "(predicting zero gives 1)",
        ["run", "train / validation / test", "trained at", "validation error", "test error at each resolution",
         "training", "s / epoch", "references", "bar"], cells, text_columns=5)
    if any(is_stale(row) for row in rows):
        lines += ["", f"(stale): {STALE}. Rerun: `python benchmarks/operator_runs.py --run --runs NAME`."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS), metavar="NAME",
                        help=f"rows to (re)tabulate: {', '.join(RUNS)} (default all)")
    parser.add_argument("--run", action="store_true",
                        help="make the picked runs that have no metrics.json first (all five: about 2.5 hours)")
    args = parser.parse_args()
    new = []
    for name in args.runs:
        arguments = RUNS[name]
        out = Path(arguments[arguments.index("--out") + 1])
        if not (out / "metrics.json").is_file():
            if not args.run:
                print(f"skipping {name}: {out}/metrics.json is missing (--run makes it)")
                continue
            subprocess.run([sys.executable, "-m", "mlmol", "operator", *arguments], check=True)
        new.append(row_of(name, arguments, json.loads((out / "metrics.json").read_text())))
    file = RESULTS / "operator_runs.json"
    old = json.loads(file.read_text()) if file.is_file() else []
    rows = merge(old, new)
    write_results("operator_runs", rows, table(rows))


if __name__ == "__main__":
    main()
