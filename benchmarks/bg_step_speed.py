"""Seconds per Boltzmann-generator training step for alanine dipeptide, on the CPU and on a GPU.

    python benchmarks/bg_step_speed.py [--devices cpu cuda] [--batches 256 4096] [--steps 20]

The molecular flow of `mlmol train alanine-dipeptide` (internal coordinates, 4 spline blocks)
trained with the torch force field: ``--steps`` maximum-likelihood steps, then ``--steps``
steps of ML + reverse KL (each samples the flow and evaluates energies and forces), at each
batch size, on each device, in one run. The data are the PDB structure perturbed by 0.01 nm
(a timing needs no equilibrium data). A step's time is the median of the training loop's
clock over the stage, after its first 3 steps (warm-up). Writes
benchmarks/results/bg_step_speed.json/.md.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys

import torch
from pipeline import markdown_table, read_results, write_results

from mlmol import fit
from mlmol.experiments import noe2019
from mlmol.flows import MolecularFlow
from mlmol.config import MOLECULE_DEFAULTS
from mlmol.systems.molecules import alanine_dipeptide


def step_seconds(device: str, batch: int, steps: int, data: torch.Tensor, system) -> dict[str, float]:
    """Median seconds per step of the ML stage and of the ML + KL stage."""
    options = {k: v for k, v in MOLECULE_DEFAULTS["flow"].items() if k != "kind"}
    bonds = [(a.index, b.index) for a, b in system.topology.bonds()]
    torch.manual_seed(0)
    flow = MolecularFlow(system.dim // 3, bonds, data=data.float(), **options).to(device)
    recipe = noe2019(system.to(device), data.float(), losses="ml+kl", steps=2 * steps, ml_fraction=0.5,
                     ml_batch=batch, batch=batch)
    history = fit(flow, recipe, seed=0, log_every=1)
    times = [r["time_s"] for r in history.records]
    per_step = [b - a for a, b in itertools.pairwise(times)]
    return {"ml": statistics.median(per_step[3:steps - 1]), "ml+kl": statistics.median(per_step[steps + 3:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--steps", type=int, default=20, help="steps per stage (ML, then ML + KL)")
    parser.add_argument("--tabulate", action="store_true", help="measure nothing: redraw from the stored rows")
    args = parser.parse_args()
    if args.tabulate:
        render(read_results("bg_step_speed"))
        return
    system = alanine_dipeptide(backend="torch")
    g = torch.Generator().manual_seed(0)
    data = torch.as_tensor(system.positions, dtype=torch.float64).reshape(1, -1) + 0.01 * torch.randn(
        10_000, system.dim, dtype=torch.float64, generator=g)
    command = " ".join(["python benchmarks/bg_step_speed.py", *sys.argv[1:]])
    rows = []
    for batch in args.batches:
        for device in args.devices:
            seconds = step_seconds(device, batch, args.steps, data, system)
            name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
            rows.append({"device": name, "batch": batch, **{f"{k}_s": v for k, v in seconds.items()},
                         "command": command, "torch": torch.__version__})
            print(rows[-1], flush=True)
    render(rows)


def render(rows: list[dict]) -> None:
    """The results table (and JSON) from the rows; rows without a ``command`` are from an earlier
    version of this script, which recorded none (nor the torch version)."""
    cells = []
    for r in rows:
        base = next(b for b in rows if b["batch"] == r["batch"])
        cells.append([r["device"], str(r["batch"]), f"{r['ml_s'] * 1e3:.1f}", f"{r['ml+kl_s'] * 1e3:.1f}",
                      f"{base['ml+kl_s'] / r['ml+kl_s']:.1f}×"])
    made_by = (f"`{rows[0]['command']}`; torch {rows[0]['torch']}" if "command" in rows[0] else
               "an earlier version of `python benchmarks/bg_step_speed.py`, which recorded neither its command "
               "nor its versions; `bash benchmarks/gpu_checks.sh` reruns it")
    table = markdown_table(
        f"Alanine dipeptide BG training step with the torch force field ({made_by}): median milliseconds per step, "
        "and the ML + KL step's speed-up over the first device listed at the same batch:",
        ["device", "batch", "ML step (ms)", "ML + KL step (ms)", "ML + KL speed-up"], cells, text_columns=1)
    write_results("bg_step_speed", rows, table)


if __name__ == "__main__":
    main()
