"""Adam against the natural gradient (stochastic reconfiguration in sample space, minSR) at equal wall time.

    python benchmarks/vmc_optimizers.py [--systems He Li] [--minutes 6] [--threads 1]

For each system, both runs start from the same FermiNet initialisation and seed and run at the same time, one
process each (so both see the same machine load), for ``--minutes`` of training; each is then
evaluated (100 sweeps of 512 walkers). Reports the energy reached, time per step and the
running energy at fixed times. Writes benchmarks/results/vmc_optimizers.json/.md/.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from pipeline import markdown_table, save_figure, write_results
from vmc_energies import evaluation

from mlmol.rundir import RunDirectory

OPTIMIZERS = ("adam", "natural-gradient")


def trace(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """Seconds since the start and the energy of each step, from RUN/metrics.jsonl."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    seconds = [r.get("time_s", r.get("elapsed_s")) for r in lines]  # elapsed_s: runs from before the shared loop
    return np.array(seconds), np.array([r["energy"] for r in lines])


def energy_at(seconds: np.ndarray, energy: np.ndarray, t: float, window: int = 50) -> float:
    """Mean energy of the ``window`` steps before time ``t`` (NaN before the run got there)."""
    last = np.searchsorted(seconds, t)
    return float(energy[max(0, last - window):last].mean()) if last >= window else float("nan")


def run_dirs(system: str) -> dict[str, Path]:
    """The run directory of each optimiser for ``system``."""
    return {name: Path("runs/vmc") / f"optimizer-{name}-{system.lower()}" for name in OPTIMIZERS}


def race(system: str, minutes: float, threads: int) -> dict[str, Path]:
    """Run Adam and the natural gradient side by side for ``minutes``; returns their run directories."""
    runs = run_dirs(system)
    processes = []
    for name, run in runs.items():
        shutil.rmtree(run, ignore_errors=True)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "mlmol", "vmc", system, "--out", str(run), "--optimizer", name,
             "--steps", "1000000", "--max-minutes", str(minutes), "--eval-steps", "100", "--threads", str(threads)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    if any(p.wait() for p in processes):
        raise SystemExit(f"a VMC run for {system} failed; run its command by hand to see why")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", default=["He", "Li"])
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tabulate", action="store_true", help="only rebuild the table and figure from the runs")
    args = parser.parse_args()
    import matplotlib.pyplot as plt

    checkpoints = [60 * f for f in (0.5, 1, 2, 4) if f < args.minutes] + [60 * args.minutes - 1]
    rows, cells = [], []
    fig, axes = plt.subplots(1, len(args.systems), figsize=(5 * len(args.systems), 4), squeeze=False)
    for system, ax in zip(args.systems, axes[0], strict=True):
        runs = run_dirs(system) if args.tabulate else race(system, args.minutes, args.threads)
        for name, run in runs.items():
            seconds, energy = trace(run)
            result = evaluation(run)
            config = RunDirectory(run).read_config()
            at = {f"{t / 60:.3g} min": energy_at(seconds, energy, t) for t in checkpoints}
            rows.append({"system": system, "optimizer": name, "lr": config["lr"], "steps": result["steps"],
                         "seconds_per_step": float(seconds[-1] / len(seconds)), "energy": result["value"],
                         "stderr": result["stderr"], "error_mha": 1e3 * result["error"], "running_energy": at})
            cells.append([system, name, f"{config['lr']:g}", f"{result['steps']:,}", f"{seconds[-1] / len(seconds):.2f}",
                          *(f"{v:.4f}" if np.isfinite(v) else "–" for v in at.values()), f"{result['value']:.6f} ± {result['stderr']:.6f}",
                          f"{1e3 * result['error']:+.2f}"])
            width = min(20, len(energy))
            smooth = np.convolve(energy, np.ones(width) / width, mode="valid")
            ax.plot(seconds[width - 1:] / 60, smooth - result["exact"], label=name)
        ax.set(xlabel="training time (min)", ylabel="E − E_exact (Ha), 20-step mean", yscale="log", title=system)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, "vmc_optimizers")
    table = markdown_table(
        f"FermiNet, {args.minutes:g} minutes of training per optimiser, the two runs of a system at once on one "
        "thread each (`python benchmarks/vmc_optimizers.py`); E at t = mean energy of the 50 steps before t (Ha; – before 50 steps):",
        ["system", "optimizer", "lr", "steps", "s/step", *(f"E at {k}" for k in rows[0]["running_energy"]),
         "final E (Ha)", "error (mHa)"], cells, text_columns=2)
    write_results("vmc_optimizers", rows, table)


if __name__ == "__main__":
    main()
