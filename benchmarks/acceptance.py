"""The acceptance runs of the first Boltzmann-generator bars: double well, Müller–Brown and a user energy file.

    python benchmarks/acceptance.py [--seeds 0]
    python benchmarks/acceptance.py --tabulate    # measure nothing: redraw the table from the stored rows

For each system: `mlmol train ... --seed S`, `mlmol sample --n 100000`, `mlmol evaluate`.
Writes benchmarks/results/acceptance.json and .md (training wall time, ESS with its
effective sample count, ΔF error, profile RMSE per coordinate).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import MIN_EFFECTIVE, pipeline, read_results, write_results

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = {
    "double-well": ["double-well"],
    "mueller-brown": ["mueller-brown"],
    "user energy (examples/tilted_well.py)": ["--energy", "examples/tilted_well.py:tilted", "--dim", "2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "acceptance"))
    parser.add_argument("--tabulate", action="store_true",
                        help="measure nothing: rewrite the table from the stored rows (results/acceptance.json)")
    args = parser.parse_args()
    if args.tabulate:
        render(read_results("acceptance"))
        return
    rows = []
    for name, train_args in SYSTEMS.items():
        for seed in args.seeds:
            out = Path(args.runs) / f"{train_args[0].strip('-')}-{seed}"
            result = pipeline([*train_args, "--seed", str(seed)], out)
            rows.append({"system": name, "seed": seed, **result})
            m = result["metrics"]
            print(f"{name:40s} seed {seed}: train {result['train_s']:.0f} s, ESS {100 * m['ess_fraction']:.1f}%, "
                  f"ΔF error {m['delta_f']['error']:+.3f} kT, profile RMSE "
                  + ", ".join(f"{k} {v['rmse']:.3f}" for k, v in m["profiles"].items()), flush=True)
    render(rows)


def render(rows: list[dict]) -> None:
    """The table of stored rows; each row gets its effective sample count (``effective_samples``)."""
    cells = []
    for r in rows:
        m, d = r["metrics"], r["metrics"]["delta_f"]
        r["effective_samples"] = m["ess"]  # the exact Kish count (Σw)² / Σw² that `mlmol evaluate` stored
        counted = "yes" if r["effective_samples"] >= MIN_EFFECTIVE else "no"
        profiles = ", ".join(f"{k}: {v['rmse']:.3f}" for k, v in m["profiles"].items())
        cells.append(f"| {r['system']} | {r['seed']} | {r['train_s']:.0f} | {100 * m['ess_fraction']:.1f}% "
                     f"| {r['effective_samples']:,.0f} | {counted} "
                     f"| {d['value']:.3f} ± {d['stderr']:.3f} | {d['exact']:.3f} | {d['error']:+.3f} | {profiles} |")
    samples = sorted({r["metrics"]["n"] for r in rows})
    caption = (f"{' / '.join(f'{n:,}' for n in samples)} samples per run. Effective samples: the Kish count "
               "(Σw)² / Σw² of the importance weights (ESS fraction × samples); a run counts towards a bar only "
               f"with at least {MIN_EFFECTIVE}.")
    header = ("| system | seed | train (s) | ESS | effective samples | counts | ΔF (kT) | exact ΔF | ΔF error "
              "| profile RMSE (kT, bins F < 5 kT) |")
    lines = [caption, "", header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|", *cells]
    write_results("acceptance", rows, lines)


if __name__ == "__main__":
    main()
