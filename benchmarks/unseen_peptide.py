"""A peptide never used in development, from its sequence through the defaults: numbers as they come out.

    python benchmarks/unseen_peptide.py --sequence TGVA --seed 0

Runs ``mlmol build SEQUENCE --out runs/unseen/SEQUENCE.pdb``, then the documented pipeline with the
built-in molecule defaults (``mlmol train --pdb ... --implicit-solvent obc1 --temperature 310 --seed S
--threads T``, ``mlmol sample --n 100000 --seed 1000+S``, ``mlmol evaluate``) and ``mlmol report``;
writes benchmarks/results/unseen_peptide.json/.md with the ESS, each residue's ΔF(φ>0 − φ<0) and the
effective samples it rests on, the wrong-handed fraction, time and peak memory. Nothing is tuned for
it: the sequence is chosen after every default was fixed. Rows of other sequences or seeds are kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import RESULTS, markdown_table, pipeline, read_results, run_command, write_results

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", required=True, help="one-letter codes, capped with Ace and Nme")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--runs", default=str(ROOT / "runs" / "unseen"))
    parser.add_argument("--config", help="a config file for mlmol train (a quick check of this script; the "
                                         "stored row uses none)")
    args = parser.parse_args()
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    pdb = runs / f"{args.sequence}.pdb"
    build_s, _ = run_command(["build", args.sequence, "--out", str(pdb)])
    out = runs / f"{args.sequence}_seed{args.seed}"
    row = pipeline([*([args.config] if args.config else []), "--pdb", str(pdb), "--implicit-solvent", "obc1", "--temperature", "310", "--seed", str(args.seed),
                    "--threads", str(args.threads)], out, n=args.samples, sample_seed=1000 + args.seed)
    report_s, _ = run_command(["report", str(out)])
    row.update(sequence=args.sequence, seed=args.seed, samples=args.samples, threads=args.threads, build_s=build_s,
               report_s=report_s, benchmark_command=f"python benchmarks/unseen_peptide.py --sequence {args.sequence} "
                                                    f"--seed {args.seed} --threads {args.threads}"
                                                    + (f" --config {args.config}" if args.config else ""))
    name = "unseen_peptide"
    rows = read_results(name) if (RESULTS / f"{name}.json").is_file() else []
    rows = [r for r in rows if (r["sequence"], r["seed"]) != (args.sequence, args.seed)] + [row]
    cells = []
    for r in rows:
        m = r["metrics"]
        residues = "; ".join(
            f"{k} {v['value']:+.3f} ± {v['stderr']:.3f} ({v['effective_samples'][0]:,.0f} / "
            f"{v['effective_samples'][1]:,.0f} eff.)" if "value" in v else f"{k}: {v['unavailable']}"
            for k, v in m["delta_f_residues"].items())
        cells.append([r["sequence"], str(r["seed"]), f"`{r['benchmark_command']}`",
                      f"{100 * m['ess_fraction']:.1f}% ({m['ess']:,.0f})", residues,
                      f"{100 * m['wrong_handed_fraction']:.2f}%", f"{r['data_s'] / 60:.0f}",
                      f"{r['train_s'] / 60:.0f}", f"{r['sample_s'] / 60:.1f}", f"{r['peak_memory_gib']:.1f}"])
    table = markdown_table(
        "A peptide chosen after every default was fixed, through mlmol build → train → sample → evaluate with "
        f"the defaults (amber14-all + OBC1, 310 K, {rows[0]['samples']:,} samples, sampling seed 1000 + seed). "
        "ΔF(φ>0 − φ<0) per residue from the reweighted samples ± bootstrap (effective samples in φ>0 / φ<0); "
        "no reference was run for it. Minutes: MD data, train including data, sampling.",
        ["sequence", "seed", "command", "ESS (effective)", "ΔF per residue (kT)", "wrong-handed",
         "data (min)", "train (min)", "sample (min)", "peak memory (GiB)"], cells)
    write_results(name, rows, table)


if __name__ == "__main__":
    main()
