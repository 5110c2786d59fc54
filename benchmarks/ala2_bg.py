"""Boltzmann generator for alanine dipeptide against the umbrella-sampling reference.

    python benchmarks/ala2_bg.py --solvent implicit [--seed 0] [--steps N]

Runs the documented commands with the built-in defaults: `mlmol train
alanine-dipeptide[-implicit] --seed S` (MD data, training), `mlmol sample --n 100000`,
`mlmol evaluate`; compares the reweighted ΔF(φ>0 − φ<0) with
benchmarks/results/ala2_reference_<solvent>.json (run benchmarks/ala2_reference.py first).
Writes benchmarks/results/ala2_bg_<solvent>.json and .md; rows of other seeds already there
(same schedule) are kept, so repeats can be added one seed at a time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline import RESULTS, markdown_table, pipeline, write_results

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solvent", choices=["vacuum", "implicit"], default="implicit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="training steps (default: the built-in schedule)")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "ala2_bg"))
    parser.add_argument("--tabulate", action="store_true",
                        help="train nothing: rewrite the table from the stored rows against the current reference")
    args = parser.parse_args()
    reference_file = RESULTS / f"ala2_reference_{args.solvent}.json"
    if not reference_file.is_file():
        raise SystemExit(f"{reference_file} is missing: run benchmarks/ala2_reference.py --solvent {args.solvent}")
    reference = json.loads(reference_file.read_text())[0]
    results_file = RESULTS / f"ala2_bg_{args.solvent}.json"
    rows = [r for r in (json.loads(results_file.read_text()) if results_file.is_file() else [])
            if r.get("steps") == args.steps]
    if not args.tabulate:
        molecule = "alanine-dipeptide" + ("-implicit" if args.solvent == "implicit" else "")
        extra = [] if args.steps is None else ["--steps", str(args.steps)]
        result = pipeline([molecule, "--seed", str(args.seed), *extra],
                          Path(args.runs) / f"{args.solvent}-{args.seed}")
        rows = [r for r in rows if r["seed"] != args.seed] + [
            {"solvent": args.solvent, "seed": args.seed, "steps": args.steps, **result}]
    if not rows:
        raise SystemExit(f"no stored rows in {results_file} for this schedule: run without --tabulate first")
    rows.sort(key=lambda r: r["seed"])
    for r in rows:  # against the current reference
        r["reference"] = reference
        r["difference"] = r["metrics"]["delta_f"]["value"] - reference["delta_f"]
    seeds = " ".join(str(r["seed"]) for r in rows)
    caption = (f"Alanine dipeptide ({args.solvent}, 300 K): Boltzmann generator with the built-in defaults "
               f"(`python benchmarks/ala2_bg.py --solvent {args.solvent} --seed S"
               f"{'' if args.steps is None else f' --steps {args.steps}'}` for S in {seeds}; "
               f"training = `mlmol train alanine-dipeptide{'-implicit' if args.solvent == 'implicit' else ''} "
               f"--seed S` including its MD data; 100,000 samples).")
    table = markdown_table(caption, ["seed", "train (min)", "ESS", "BG ΔF(φ>0 − φ<0) (kT)", "reference (kT)",
                                     "difference (kT)", "wrong-handed Cα"],
                           [[str(r["seed"]), f"{r['train_s'] / 60:.1f}", f"{100 * r['metrics']['ess_fraction']:.1f}%",
                             f"{r['metrics']['delta_f']['value']:.3f} ± {r['metrics']['delta_f']['stderr']:.3f}",
                             f"{reference['delta_f']:.3f} ± {reference['stderr']:.3f}", f"{r['difference']:+.3f}",
                             f"{100 * r['metrics']['wrong_handed_fraction']:.2f}%"] for r in rows])
    write_results(f"ala2_bg_{args.solvent}", rows, table)


if __name__ == "__main__":
    main()
