"""Boltzmann generator for a peptide against its parallel-tempering reference.

    mlmol build AAA --out runs/peptides/ala3.pdb
    python benchmarks/peptide_reference.py --pdb runs/peptides/ala3.pdb --name ala3 --seeds 0 1
    python benchmarks/peptide_bg.py --pdb runs/peptides/ala3.pdb --name ala3 --seed 0

Runs the documented commands with the built-in defaults for a molecule: ``mlmol train --pdb PDB
--forcefield FF --implicit-solvent obc1 --temperature 310 --seed S --threads T`` (MD data on the
batched engine, then training; ``--config FILE.yaml`` adds a config file), ``mlmol sample --n 100000
--seed 1000+S`` and ``mlmol evaluate --reference`` against the target-temperature configurations of
every stored reference repeat (runs/peptide_reference/NAME_seed*.npz, joined). Compares each residue's
reweighted ΔF(φ>0 − φ<0) with benchmarks/results/peptide_reference_NAME.json (the mean of its
repeats) and checks the bars: ESS ≥ 5% with ≥ 100 effective samples, every residue within 0.3 kT,
reweighted torus-W2, energy-W2 and TICA-W2 within 2× their noise floor (two disjoint halves of the reference;
the floor at the generator's effective sample count is shown beside it), wrong-handed Cα < 1%.
Time (data, training, sampling) and peak memory of every row. Rows of other seeds are kept, so repeats
can be added one at a time (``--tabulate`` rewrites the table from them).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from pipeline import (
    MIN_EFFECTIVE,
    RESULTS,
    markdown_table,
    mean_sd,
    peptide_options,
    pipeline,
    read_results,
    write_results,
)

from mlmol.data import atomic_write

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_SAMPLES = ROOT / "runs" / "peptide_reference"
BARS = {"ess_fraction": 0.05, "delta_f_kT": 0.3, "w2_floors": 2.0, "wrong_handed": 0.01}


def joined_reference(name: str, out: Path) -> tuple[Path, list[str]]:
    """Every stored repeat's target-temperature configurations of NAME in one file: ``x`` frame-major
    [frames × chains, 3N] with the repeats' chains side by side, and ``chains`` (for TICA's time lags)."""
    files = sorted(REFERENCE_SAMPLES.glob(f"{name}_seed*.npz"))
    if not files:
        raise SystemExit(f"no reference configurations in {REFERENCE_SAMPLES}: run benchmarks/peptide_reference.py "
                         f"--name {name} first")
    x = []
    for file in files:
        with np.load(file) as stored:
            x.append(stored["x"].reshape(int(stored["frames"]), int(stored["chains"]), -1))
    x = np.concatenate(x, axis=1)  # [frames, all chains, 3N]: every repeat ran the same schedule
    buffer = io.BytesIO()
    np.savez(buffer, x=x.reshape(-1, x.shape[-1]), chains=x.shape[1])
    path = out.parent / f"{name}_reference.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())
    return path, [file.name for file in files]


def judged(row: dict, reference: dict) -> dict:
    """The bars of a row against the reference's per-residue ΔF."""
    metrics = row["metrics"]
    residues = {}
    for name, ref in reference["residues"].items():
        mine = metrics["delta_f_residues"].get(name, {})
        value = mine.get("value")
        residues[name] = {"value": value, "stderr": mine.get("stderr"), "reference": ref["delta_f"],
                          "reference_stderr": ref["stderr"], "effective_samples": mine.get("effective_samples"),
                          "difference": None if value is None else value - ref["delta_f"]}
    w2 = metrics["reference"]
    checks = {"ess": metrics["ess_fraction"] >= BARS["ess_fraction"] and metrics["ess"] >= MIN_EFFECTIVE,
              "delta_f": all(r["difference"] is not None and abs(r["difference"]) <= BARS["delta_f_kT"]
                             for r in residues.values()),
              "torus_w2": w2["torus_w2"]["reweighted"] <= BARS["w2_floors"] * w2["torus_w2"]["floor"],
              "energy_w2": w2["energy_w2"]["reweighted"] <= BARS["w2_floors"] * w2["energy_w2"]["floor"],
              "tica_w2": w2["tica_w2"]["reweighted"] <= BARS["w2_floors"] * w2["tica_w2"]["floor"],
              "wrong_handed": metrics["wrong_handed_fraction"] < BARS["wrong_handed"]}
    return {"residues": residues, "checks": checks, "meets": all(checks.values())}


def w2_cell(w2: dict, digits: int) -> str:
    """reweighted / floor / floor at the effective sample count (raw)."""
    return " / ".join(f"{w2[k]:.{digits}f}" for k in ("reweighted", "floor", "floor_reweighted")) + \
        f" ({w2['raw']:.{digits}f})"


def table(name: str, rows: list[dict], reference: dict) -> list[str]:
    """The Markdown table of one schedule's rows (one config)."""
    residues = list(reference["residues"])
    cells = []
    for row in rows:
        m, w2, j = row["metrics"], row["metrics"]["reference"], row["judged"]
        cells.append([str(row["seed"]), f"{100 * m['ess_fraction']:.1f}% ({m['ess']:,.0f})",
                      *(f"{r['value']:.3f} ± {r['stderr']:.3f} ({r['difference']:+.3f})" if r["value"] is not None
                        else "none" for r in (j["residues"][n] for n in residues)),
                      w2_cell(w2["torus_w2"], 3), w2_cell(w2["energy_w2"], 2), w2_cell(w2["tica_w2"], 3),
                      f"{100 * m['wrong_handed_fraction']:.2f}%", f"{row['data_s'] / 60:.0f}",
                      f"{row['train_s'] / 60:.0f}", f"{row['sample_s'] / 60:.1f}", f"{row['peak_memory_gb']:.1f}",
                      ", ".join(k for k, ok in j["checks"].items() if not ok) or "all"])
    if len(rows) > 1:
        diffs = [[r["judged"]["residues"][n]["difference"] for r in rows] for n in residues]
        cells.append(["mean ± sd", mean_sd([r["metrics"]["ess_fraction"] for r in rows], 1, percent=True),
                      *(mean_sd(d, 3, sign=True) if None not in d else "—" for d in diffs),
                      "", "", "", "", "", "", "", "", ""])
    ref_text = ", ".join(f"{n} {v['delta_f']:.3f} ± {v['stderr']:.3f}" for n, v in reference["residues"].items())
    command = rows[0]["benchmark_command"].replace(f"--seed {rows[0]['seed']}", "--seed S")
    return markdown_table(
        f"{name}: Boltzmann generator with {rows[0].get('config') or 'the built-in molecule defaults'} against the parallel-tempering reference "
        f"({ref_text} kT; `{reference['command']}`), {rows[0]['samples']:,} samples "
        f"(`python {command}`). ΔF per residue: reweighted ± bootstrap (difference from the reference). W2 "
        "columns: reweighted / noise floor (two reference halves) / floor at the generator's effective sample "
        "count (raw generator); torus-W2 in radians, energy-W2 in kT, TICA-W2 on the reference's two slowest TICA "
        "components. Minutes: MD data, train including "
        "data, sampling. Bars: ESS ≥ 5%, every |ΔF difference| ≤ 0.3 kT, reweighted W2 ≤ 2× floor, "
        "wrong-handed < 1%.",
        ["seed", "ESS (effective)", *(f"ΔF {n} (kT)" for n in residues), "torus-W2", "energy-W2", "TICA-W2",
         "wrong-handed",
         "data (min)", "train (min)", "sample (min)", "peak memory (GB)", "misses"], cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    peptide_options(parser, "the reference's name (peptide_reference_NAME)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--config", help="a config file for mlmol train (default: the built-in molecule defaults)")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "peptide_bg"))
    parser.add_argument("--tabulate", action="store_true", help="train nothing: rewrite the table from stored rows")
    args = parser.parse_args()
    reference = read_results(f"peptide_reference_{args.name}")[0]
    results = f"peptide_bg_{args.name}"
    rows = read_results(results) if (RESULTS / f"{results}.json").is_file() else []
    if not args.tabulate:
        out = Path(args.runs) / f"{args.name}_seed{args.seed}"
        reference_file, reference_repeats = joined_reference(args.name, out)
        train_args = [*([args.config] if args.config else []), "--pdb", args.pdb, "--forcefield", *args.forcefield,
                      "--implicit-solvent", args.implicit_solvent, "--temperature", f"{args.temperature:g}",
                      "--seed", str(args.seed), "--threads", str(args.threads)]
        row = pipeline(train_args, out, n=args.samples, sample_seed=1000 + args.seed,
                       evaluate_args=("--reference", str(reference_file)))
        row.update(seed=args.seed, samples=args.samples, threads=args.threads, reference_repeats=reference_repeats,
                   benchmark_command=f"benchmarks/peptide_bg.py --pdb {args.pdb} --name {args.name} --seed "
                                     f"{args.seed} --threads {args.threads}"
                                     + (f" --config {args.config}" if args.config else ""))
        rows = [r for r in rows if r["seed"] != args.seed or r.get("config") != args.config]
        rows.append({**row, "config": args.config})
    for row in rows:  # against the current reference (repeats may have been added since the row was made)
        row["judged"] = judged(row, reference)
    rows.sort(key=lambda r: (str(r.get("config")), r["seed"]))
    lines = []
    for config in sorted({str(r.get("config")) for r in rows}):
        group = [r for r in rows if str(r.get("config")) == config]
        print(json.dumps({"config": config, "meets": [r["judged"]["meets"] for r in group]}))
        lines += [*table(args.name, group, reference), ""]
    write_results(results, rows, lines[:-1])

if __name__ == "__main__":
    main()
