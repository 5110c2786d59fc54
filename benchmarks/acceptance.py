"""The core issue's acceptance runs: double well, Müller–Brown and a user energy file.

    python benchmarks/acceptance.py [--seeds 0]

For each system: `mlmol train ... --seed S`, `mlmol sample --n 100000`, `mlmol evaluate`.
Writes benchmarks/results/acceptance.json and .md (training wall time, ESS, ΔF error,
profile RMSE per coordinate).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import pipeline, write_results

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
    args = parser.parse_args()
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
    lines = ["| system | seed | train (s) | ESS | ΔF (kT) | exact ΔF | ΔF error | profile RMSE (kT, bins F < 5 kT) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        m, d = r["metrics"], r["metrics"]["delta_f"]
        profiles = ", ".join(f"{k}: {v['rmse']:.3f}" for k, v in m["profiles"].items())
        lines.append(f"| {r['system']} | {r['seed']} | {r['train_s']:.0f} | {100 * m['ess_fraction']:.1f}% "
                     f"| {d['value']:.3f} ± {d['stderr']:.3f} | {d['exact']:.3f} | {d['error']:+.3f} | {profiles} |")
    write_results("acceptance", rows, lines)


if __name__ == "__main__":
    main()
