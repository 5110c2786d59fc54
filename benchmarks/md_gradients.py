"""Gradients through molecular dynamics: first- against zeroth-order variance over the horizon.

    python benchmarks/md_gradients.py [--samples 128] [--horizons 10 30 100 300 1000] [--threads 2]

Overdamped Langevin dynamics of all 22 atoms of alanine dipeptide (vacuum, amber99sbildn,
300 K) through mlmol's native torch force field (float64), with a bias θ cos φ (kT) on the
backbone torsion φ; the cost is the time average of cos φ over the second half of T steps
(`mlmol.diffsim.MoleculeLangevin`). At θ = 0 and smoothing σ = 0.1, each horizon T gets
``--samples`` perturbations w and reports the per-sample variance of the first-order terms
(backpropagation through the T steps, which differentiates the force field a second time) and
of the zeroth-order terms, the first-order mean, the wall time of the first-order batch and the
peak memory of the process. Also one row per horizon with a step beyond the stability limit
2/λ_max, where the tangent dynamics blow up. Writes benchmarks/results/md_gradients.json/.md/.png.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from pipeline import markdown_table, read_results, save_figure, write_results

from mlmol.diffsim import MoleculeLangevin
from mlmol.diffsim.gradients import first_terms, perturbations, zeroth_terms
from mlmol.systems.molecules import alanine_dipeptide

SIGMA = 0.1  # kT
STABLE = 1e-6  # the stable step (nm²), s λ_max ≈ 0.55


def peak_memory_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: kB


def largest_curvature(energy) -> float:
    """λ_max of the Hessian of u (kT/nm²) at the molecule's structure."""
    x = torch.as_tensor(energy.positions, dtype=torch.float64).reshape(-1)
    hessian = torch.autograd.functional.hessian(lambda y: energy.energy(y[None])[0], x)
    return float(torch.linalg.eigvalsh(hessian).max())


def study(energy, step: float, horizons: list[int], n: int) -> list[dict]:
    rows = []
    theta = torch.zeros(1, dtype=torch.float64)
    for steps in horizons:
        task = MoleculeLangevin(steps=steps, step=step, energy=energy, generator=torch.Generator().manual_seed(1))
        w = perturbations(theta, SIGMA, n, torch.Generator().manual_seed(2))
        started = time.perf_counter()
        first = first_terms(task, theta, w)[:, 0]
        seconds = time.perf_counter() - started
        zeroth = zeroth_terms(task, theta, w, SIGMA)[:, 0]
        rows.append({"step_nm2": step, "steps": steps, "samples": n, "first_variance": float(first.var()),
                     "zeroth_variance": float(zeroth.var()), "first_mean": float(first.mean()),
                     "first_finite": float(first.isfinite().float().mean()), "first_order_s": seconds,
                     "peak_memory_gb": peak_memory_gb()})
        print(f"s = {step:g} nm², T = {steps}: first var {rows[-1]['first_variance']:.3g}, zeroth var "
              f"{rows[-1]['zeroth_variance']:.3g}, {seconds:.1f} s", flush=True)
    return rows


def plot(rows: list[dict], stable: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for step, style in sorted({(r["step_nm2"], "o-" if r["step_nm2"] == stable else "^:") for r in rows}):
        part = [r for r in rows if r["step_nm2"] == step]
        ax.loglog([r["steps"] for r in part], [r["first_variance"] for r in part], style,
                  label=f"first order, s = {step:g} nm²")
    part = [r for r in rows if r["step_nm2"] == stable]
    ax.loglog([r["steps"] for r in part], [r["zeroth_variance"] for r in part], "s--", label="zeroth order")
    ax.set(xlabel="Langevin steps T", ylabel="per-sample variance",
           title="alanine dipeptide: variance against horizon")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, "md_gradients")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--horizons", type=int, nargs="+", default=[10, 30, 100, 300, 1000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tabulate", action="store_true", help="measure nothing: redraw from the stored rows")
    args = parser.parse_args()
    if args.tabulate:
        render(read_results("md_gradients"))
        return
    torch.set_num_threads(args.threads)
    energy = alanine_dipeptide(backend="torch")
    curvature = largest_curvature(energy)
    stable, unstable = STABLE, 5e-6  # s λ_max ≈ 0.55 and ≈ 2.7 (the limit is 2)
    print(f"λ_max = {curvature:.4g} kT/nm²: stable for s < {2 / curvature:.3g} nm²", flush=True)
    rows = study(energy, stable, args.horizons, args.samples)
    rows += study(energy, unstable, [h for h in args.horizons if h <= 30], args.samples)
    for row in rows:
        row["s_lambda_max"] = row["step_nm2"] * curvature
    render(rows)


def render(rows: list[dict]) -> None:
    """The results table (and JSON) and the figure from the rows."""
    curvature = rows[0]["s_lambda_max"] / rows[0]["step_nm2"]
    caption = (f"Per-sample variance of first- and zeroth-order gradient terms of the time-averaged cos φ "
               f"after T overdamped Langevin steps of alanine dipeptide (vacuum, torch force field, float64), "
               f"θ = 0, σ = {SIGMA} kT, {rows[0]['samples']} samples (`python benchmarks/md_gradients.py`); "
               f"λ_max = {curvature:.3g} kT/nm², stability needs s λ_max < 2.")
    table = markdown_table(caption, ["step s (nm²)", "s λ_max", "T", "first-order variance", "zeroth-order variance",
                                     "first-order mean", "finite", "first-order time (s)",
                                     "process peak memory so far (GiB)"],
                           [[f"{r['step_nm2']:g}", f"{r['s_lambda_max']:.2f}", str(r["steps"]),
                             f"{r['first_variance']:.3g}", f"{r['zeroth_variance']:.3g}", f"{r['first_mean']:.3g}",
                             f"{r['first_finite']:.0%}", f"{r['first_order_s']:.1f}", f"{r['peak_memory_gb']:.1f}"]
                            for r in rows], text_columns=0)
    write_results("md_gradients", rows, table)
    plot(rows, STABLE)


if __name__ == "__main__":
    main()
