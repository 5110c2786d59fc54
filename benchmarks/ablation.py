"""Ablation of the training losses on the double well, like Fig. 2 of Noé et al. 2019.

    python benchmarks/ablation.py [--seeds 0 1 2]
    python benchmarks/ablation.py --tabulate    # measure nothing: redraw the table from the stored rows

Runs `mlmol train double-well --losses L --seed S` for L in ml, ml+kl, ml+kl+rc (same
schedule length), samples 100,000 points and reports ESS fraction (with the smallest
effective sample count over seeds), ΔF error and the fraction of generator samples in the
transition region |x0| < 0.5 (what the RC loss buys). Writes benchmarks/results/ablation.json
and .md (mean ± sd over seeds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from pipeline import MIN_EFFECTIVE, pipeline, read_results, write_results

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 100_000  # `mlmol sample --n` of pipeline(); rows stored before "samples" was recorded used it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--losses", nargs="+", default=["ml", "ml+kl", "ml+kl+rc"])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "ablation"))
    parser.add_argument("--tabulate", action="store_true",
                        help="measure nothing: rewrite the table from the stored rows (results/ablation.json)")
    args = parser.parse_args()
    if args.tabulate:
        render(read_results("ablation"))
        return
    rows = []
    for losses in args.losses:
        for seed in args.seeds:
            out = Path(args.runs) / f"{losses}-{seed}"
            result = pipeline(["double-well", "--losses", losses, "--seed", str(seed)], out, n=SAMPLES)
            m = result["metrics"]
            with np.load(out / "samples.npz") as f:  # generator samples in the transition region
                barrier = float(np.mean(np.abs(f["x"][:, 0]) < 0.5))
            rows.append({"losses": losses, "seed": seed, "ess_fraction": m["ess_fraction"],
                         "samples": m["n"], "effective_samples": m["ess"],  # the exact Kish count
                         "barrier_fraction": barrier,
                         "delta_f_error": m["delta_f"]["error"], "delta_f_stderr": m["delta_f"]["stderr"],
                         "profile_rmse": m["profiles"]["x0"]["rmse"], "train_s": result["train_s"],
                         "command": result["command"]})
            print(f"{losses:10s} seed {seed}: ESS {100 * m['ess_fraction']:.1f}%, ΔF error "
                  f"{m['delta_f']['error']:+.3f} ± {m['delta_f']['stderr']:.3f} kT", flush=True)
    render(rows)


def render(rows: list[dict]) -> None:
    """The table (mean ± sd over seeds per loss setting) of stored rows."""
    for r in rows:
        # rows stored before these keys existed: Kish count = ESS fraction × the SAMPLES samples of every run
        r.setdefault("samples", SAMPLES)
        r.setdefault("effective_samples", r["ess_fraction"] * r["samples"])
    seeds = list(dict.fromkeys(r["seed"] for r in rows))
    samples = sorted({r["samples"] for r in rows})
    caption = (f"Double well, seeds {' '.join(map(str, seeds))}, {' / '.join(f'{n:,}' for n in samples)} samples "
               "each; mean ± sd over seeds. Effective samples: the smallest Kish count (Σw)² / Σw² over the seeds; "
               f"a setting counts towards a bar only if every seed has at least {MIN_EFFECTIVE}.")
    header = ("| losses | ESS fraction | effective samples (min over seeds) | counts | ΔF error (kT) "
              "| max \\|ΔF error\\| (kT) | profile RMSE x0 (kT) | samples with \\|x0\\| < 0.5 (barrier) | train (s) |")
    lines = [caption, "", header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for losses in dict.fromkeys(r["losses"] for r in rows):
        sel = [r for r in rows if r["losses"] == losses]

        def stat(key, fmt, sel=sel):
            v = np.array([r[key] for r in sel])
            return f"{v.mean():{fmt}} ± {v.std():{fmt.lstrip('+')}}"

        worst = max(abs(r["delta_f_error"]) for r in sel)
        fewest = min(r["effective_samples"] for r in sel)
        counted = "yes" if fewest >= MIN_EFFECTIVE else "no"
        lines.append(f"| {losses} | {stat('ess_fraction', '.3f')} | {fewest:,.0f} | {counted} "
                     f"| {stat('delta_f_error', '+.3f')} | {worst:.3f} "
                     f"| {stat('profile_rmse', '.3f')} | {stat('barrier_fraction', '.4f')} | {stat('train_s', '.0f')} |")
    write_results("ablation", rows, lines)


if __name__ == "__main__":
    main()
