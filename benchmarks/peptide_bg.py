"""Boltzmann generator for a peptide against its parallel-tempering reference.

    mlmol build AAA --out runs/peptides/ala3.pdb
    python benchmarks/peptide_reference.py --pdb runs/peptides/ala3.pdb --name ala3 --seeds 0 1
    python benchmarks/peptide_bg.py --pdb runs/peptides/ala3.pdb --name ala3 --seed 0

Runs the documented commands with the built-in defaults for a molecule: ``mlmol train --pdb PDB
--forcefield FF --implicit-solvent obc1 --temperature 310 --seed S --threads T`` (MD data on the
batched engine, then training; ``--config FILE.yaml`` adds a config file), ``mlmol sample --n 100000
--seed 1000+S``, ``mlmol evaluate --reference`` against the repeats of
benchmarks/results/peptide_reference_NAME.json (their configurations and MD from
runs/peptide_reference/NAME_seed*.npz or, kept with the results,
benchmarks/results/peptide_reference_samples/, joined) and ``mlmol report`` (the run's plots). Compares each residue's reweighted ΔF(φ>0 − φ<0)
with the mean of the reference's repeats and checks the bars: ESS ≥ 5% with ≥ 100 effective samples;
every residue within 0.3 kT on ≥ 100 effective samples in each basin; reweighted torus-W2, energy-W2
and TICA-W2 within 2× the floor a perfect generator with the row's ESS gets (the plain floor, two
reference halves from disjoint chains, is shown beside it); wrong-handed Cα < 1%. Time (data,
training, sampling) and peak memory of every row. Rows of other seeds are kept, so repeats can be
added one at a time (``--tabulate`` rewrites the table from them against the current reference;
``--reuse`` samples and evaluates a run trained before).
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
    beside_marks,
    markdown_table,
    mean_sd,
    peptide_options,
    pipeline,
    read_results,
    reference_samples,
    residue_label,
    run_command,
    write_results,
)

from mlmol.data import atomic_write

ROOT = Path(__file__).resolve().parent.parent
BARS = {"ess_fraction": 0.05, "delta_f_kT": 0.3, "w2_floors": 2.0, "wrong_handed": 0.01, "hours": 2.0}
# per peptide, the seeds whose runs shaped its schedule (Ace-Ala3-Nme's, examples/peptide.yaml: 0, and 100, a second
# MD stream); the bars are for the others. Hexa-alanine's schedule and the defaults were fixed without runs of theirs
DESIGN_SEEDS = {"ala3": (0, 100)}


def joined_reference(name: str, repeats: list[dict], out: Path) -> Path:
    """The reference repeats of peptide_reference_NAME.json joined in one file: ``x`` frame-major
    [frames × chains, 3N] with the repeats' chains side by side, ``chains``, and ``md`` (every repeat's
    MD trajectories for TICA). Refuses a repeat whose configurations are missing or of another schedule."""
    x, md = [], []
    for row in repeats:
        file = reference_samples(name, row["seed"])
        if not file.is_file():
            raise SystemExit(f"{file} is missing: rerun benchmarks/peptide_reference.py --name {name} --seeds "
                             f"{row['seed']} (runs/ is not kept; --keep-samples keeps them with the results)")
        with np.load(file) as stored:
            if (int(stored["frames"]), int(stored["chains"])) != (row["frames"], row["chains"]) or "md" not in stored:
                raise SystemExit(f"{file} is not the repeat peptide_reference_{name}.json describes: rerun it")
            x.append(stored["x"].reshape(row["frames"], row["chains"], -1))
            md.append(stored["md"])
    joined = np.concatenate(x, axis=1)  # [frames, all chains, 3N]
    buffer = io.BytesIO()
    np.savez(buffer, x=joined.reshape(-1, joined.shape[-1]), chains=joined.shape[1], md=np.concatenate(md))
    path = out.parent / f"{name}_reference.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())
    return path


def schedule(row: dict) -> str:
    """The row's MD data and training as its run's config.yaml held them (a config file may change)."""
    data, recipe = row["data_config"], row["recipe"]
    rungs = data.get("rungs", 1)
    frames = f"{data['n']:,} frames" + (f" of the ladder's lowest {rungs} temperatures" if rungs > 1 else "")
    return (f"{frames} from {data.get('replicas', 1)} chains, {recipe['steps']:,} steps of "
            f"{recipe.get('losses', recipe['name'])}")


def config_source(row: dict) -> str:
    """The row's config file in backticks, or the built-in defaults it ran with."""
    return f"`{row['config']}`" if row.get("config") else "the built-in molecule defaults"


def group(row: dict) -> tuple[str, str]:
    """The table a row belongs to: its config file and the schedule its run held."""
    return str(row.get("config")), schedule(row)


def same_run(a: dict, b: dict) -> bool:
    """Whether two rows are the same seed of the same config file and schedule (the later replaces the other)."""
    return (a["seed"], group(a)) == (b["seed"], group(b))


def judged(row: dict, reference: dict) -> dict:
    """The bars of a row against the reference: ESS; every residue's ΔF within the bar of the reference's,
    on at least MIN_EFFECTIVE effective samples in each basin; each reweighted W2 within the bar's multiple
    of the floor a perfect generator with the row's ESS gets by the same resampling; wrong-handed Cα; the
    time of data, training and sampling."""
    metrics = row["metrics"]
    residues = {}
    for name, ref in reference["residues"].items():
        mine = metrics["delta_f_residues"].get(name, {})
        value, effective = mine.get("value"), mine.get("effective_samples") or [0, 0]
        entry = {"value": value, "stderr": mine.get("stderr"), "effective_samples": effective,
                 "reference": ref.get("delta_f"), "reference_stderr": ref.get("stderr")}
        if value is not None and "delta_f" in ref:
            entry.update(difference=value - ref["delta_f"], sigma=float(np.hypot(mine["stderr"], ref["stderr"])))
        entry["meets"] = ("difference" in entry and abs(entry["difference"]) <= BARS["delta_f_kT"]
                          and min(effective) >= MIN_EFFECTIVE
                          # no φ > 0 basin in the reference (proline) nor in the generator: nothing to miss
                          or ("delta_f" not in ref and value is None and not effective[0] > 0))
        residues[name] = entry
    w2 = metrics["reference"]

    def within(name: str) -> bool:
        d = w2.get(name, {})
        return "reweighted" in d and d["reweighted"] <= BARS["w2_floors"] * d["floor_reweighted"]

    checks = {"ess": metrics["ess_fraction"] >= BARS["ess_fraction"] and metrics["ess"] >= MIN_EFFECTIVE,
              "delta_f": bool(residues) and all(r["meets"] for r in residues.values()),
              **{name: within(name) for name in ("torus_w2", "energy_w2", "tica_w2")},
              "wrong_handed": metrics["wrong_handed_fraction"] < BARS["wrong_handed"],
              "time": row["train_s"] + row["sample_s"] <= row.get("hours", BARS["hours"]) * 3600}
    return {"residues": residues, "checks": checks, "meets": all(checks.values())}


def w2_cell(w2: dict, digits: int) -> str:
    """reweighted / floor at the generator's effective samples / floor (raw), or why it is missing."""
    if "reweighted" not in w2:
        return f"— ({w2.get('unavailable', 'not computed')})"
    return " / ".join(f"{w2[k]:.{digits}f}" for k in ("reweighted", "floor_reweighted", "floor")) + \
        f" ({w2['raw']:.{digits}f})"


def delta_f_cell(r: dict) -> str:
    """ΔF ± bootstrap (difference from the reference; effective samples in φ > 0)."""
    if "difference" not in r:
        return "none" + (" (nor in the reference)" if r["meets"] else "")
    return f"{r['value']:.3f} ± {r['stderr']:.3f} ({r['difference']:+.3f}; {r['effective_samples'][0]:,.0f} eff.)"


def table(name: str, rows: list[dict], reference: dict, repeats: list[int]) -> list[str]:
    """The Markdown table of one schedule's rows (one config), with the mean over its test seeds and how many
    of them meet every bar; ``repeats``: the reference's repeat seeds now (a row whose W2 were taken against
    fewer is marked)."""
    residues, design = list(reference["residues"]), DESIGN_SEEDS.get(name, ())
    names = reference.get("residue_names", {})
    marks, footnotes = beside_marks(rows)
    hours = sorted({r.get("hours", BARS["hours"]) for r in rows})  # the time bars of its rows
    stale = [r for r in rows if sorted(r.get("reference_repeats", [])) != sorted(repeats)]
    if stale:
        footnotes.append("* W2 against the reference as it was when the row was evaluated (repeats "
                         + "; ".join(f"seed {r['seed']}: {', '.join(map(str, r.get('reference_repeats', [])))}"
                                     for r in stale) + "); `--reuse` evaluates it again against all of them.")
    cells = []
    for row in rows:
        m, w2, j = row["metrics"], row["metrics"]["reference"], row["judged"]
        cells.append([f"{row['seed']}" + (" (design)" if row["seed"] in design else "")
                      + ("*" if row in stale else ""),
                      f"{row['samples']:,}", f"{100 * m['ess_fraction']:.1f}% ({m['ess']:,.0f})",
                      *(delta_f_cell(j["residues"][n]) for n in residues),
                      w2_cell(w2["torus_w2"], 3), w2_cell(w2["energy_w2"], 2), w2_cell(w2.get("tica_w2", {}), 3),
                      f"{100 * m['wrong_handed_fraction']:.2f}%", *(f"{t / 60:.0f}" + marks.get(row.get("beside"), "")
                                                                   for t in (row["data_s"], row["train_s"])),
                      f"{row['sample_s'] / 60:.1f}",
                      "—" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.1f}",
                      ", ".join(k for k, ok in j["checks"].items() if not ok) or "none"])
    tests = [r for r in rows if r["seed"] not in design]
    if len(tests) > 1:
        diffs = [[r["judged"]["residues"][n].get("difference") for r in tests] for n in residues]
        cells.append([f"mean ± sd, test seeds {', '.join(str(r['seed']) for r in tests)}", "",
                      mean_sd([r["metrics"]["ess_fraction"] for r in tests], 1, percent=True),
                      *(mean_sd(d, 3, sign=True) if None not in d else "—" for d in diffs),
                      *[""] * 9])
    ref_text = ", ".join(f"{n} {v['delta_f']:.3f} ± {v['stderr']:.3f}" if "delta_f" in v else f"{n} none"
                         for n, v in reference["residues"].items())
    command = rows[0]["benchmark_command"].replace(f"--seed {rows[0]['seed']}", "--seed S")
    source = config_source(rows[0])
    lines = markdown_table(
        f"{name}: Boltzmann generator with {source} (as its runs held it: {schedule(rows[0])}) against the parallel-tempering reference ({ref_text} kT over "
        f"{reference['repeats']} repeats; `{reference['command']}`) "
        f"(`python {command}`). ΔF per residue: reweighted ± bootstrap (difference from the reference; effective "
        "samples in φ > 0). W2: reweighted (importance resampling) / floor at the generator's effective samples "
        "(a perfect generator with this ESS, same resampling) / floor (two reference halves from disjoint "
        "chains), and the raw generator's in brackets; torus-W2 in radians, energy-W2 in kT, TICA-W2 on the two "
        "slowest TICA components of the reference's MD. Minutes: MD data, training including the data, "
        "sampling; peak memory: the largest single process. Bars: ESS ≥ 5% and ≥ 100 effective samples; every "
        "residue's |ΔF difference| ≤ 0.3 kT on ≥ 100 effective samples in each basin; reweighted W2 ≤ 2× the "
        "floor at the generator's effective samples; wrong-handed Cα < 1%; data, training and sampling ≤ "
        f"{' or '.join(f'{h:g}' for h in hours)} hours{' (each row its own)' if len(hours) > 1 else ''}.",
        ["seed", "samples", "ESS (effective)", *(f"ΔF {residue_label(n, names)} (kT)" for n in residues), "torus-W2", "energy-W2", "TICA-W2",
         "wrong-handed", "data (min)", "train (min)", "sample (min)", "peak memory (GiB)", "misses"], cells)
    lines += [""] + footnotes if footnotes else []
    missing = [str(r["seed"]) for r in tests if not r["judged"]["meets"]]
    verdict = (f"Every bar met by {len(tests) - len(missing)} of {len(tests)} test seeds"
               + (f" ({', '.join(missing)} miss)" if missing else "") + "." if tests
               else "No test seed yet (design seeds only).")
    return lines + ["", verdict]


def helix_table(name: str, rows: list[dict], residues: list[str]) -> list[str]:
    """Each residue's ΔF(helix − extended) where φ < 0 (ψ inside or outside mlmol's helical range): the
    generator's reweighted estimate against the reference frames' count, both ± bootstrap (one schedule's rows)."""
    source = config_source(rows[0])
    cells = []
    for row in rows:
        mine, theirs = row["metrics"].get("helix_residues", {}), row["metrics"]["reference"].get("helix_residues", {})
        cell = []
        for n in residues:
            m, t = mine.get(n, {}), theirs.get(n, {})
            cell.append(f"{m['value']:.3f} ± {m['stderr']:.3f} vs {t['value']:.3f} ± {t['stderr']:.3f} "
                        f"({m['value'] - t['value']:+.3f})" if "value" in m and "value" in t else "—")
        cells.append([str(row["seed"]), *cell])
    return markdown_table(f"{name} with {source} ({schedule(rows[0])}): ΔF(helix − extended) per residue where φ < 0 (kT): the generator reweighted ± bootstrap vs the "
                          "reference's frames ± chain bootstrap (difference); — where either is unavailable (a basin without samples) or a run was evaluated before this "
                          "metric existed.", ["seed", *(f"{n} (kT)" for n in residues)], cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    peptide_options(parser, "the reference's name (peptide_reference_NAME)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--config", help="a config file for mlmol train (default: the built-in molecule defaults)")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "peptide_bg"))
    parser.add_argument("--tabulate", action="store_true", help="train nothing: rewrite the table from stored rows")
    parser.add_argument("--beside", metavar="TEXT",
                        help="what else ran on the machine during the run (its times are then marked)")
    parser.add_argument("--hours", type=float, default=BARS["hours"],
                        help="the time bar for data, training and sampling (4 for hexa-alanine on the CPU)")
    parser.add_argument("--reuse", action="store_true",
                        help="sample and evaluate the run this command trained before, without training it again")
    args = parser.parse_args()
    stored = read_results(f"peptide_reference_{args.name}")
    reference, repeats = stored[0], stored[1:]
    results = f"peptide_bg_{args.name}"
    rows = read_results(results) if (RESULTS / f"{results}.json").is_file() else []
    if not args.tabulate:
        stem = Path(args.config).stem if args.config else "defaults"
        out = Path(args.runs) / f"{args.name}_{stem}_seed{args.seed}"
        reference_file = joined_reference(args.name, repeats, out)
        train_args = [*([args.config] if args.config else []), "--pdb", args.pdb, "--forcefield", *args.forcefield,
                      "--implicit-solvent", args.implicit_solvent, "--temperature", f"{args.temperature:g}",
                      "--seed", str(args.seed), "--threads", str(args.threads)]
        row = pipeline(train_args, out, n=args.samples, sample_seed=1000 + args.seed, train=not args.reuse,
                       evaluate_args=("--reference", str(reference_file)))
        row["report_s"], _ = run_command(["report", str(out)])  # Ramachandran plots per residue, energies, TICA
        previous = next((r for r in rows if same_run(r, {**row, "seed": args.seed, "config": args.config})), None)
        if args.reuse and previous is not None:  # the training's own measurements stay those of its run
            row.update({k: previous[k] for k in ("train_s", "peak_memory_gib") if k in previous})
        elif args.reuse:  # the training loop's clock plus the data's; its memory was not measured
            row.update(train_s=row["train_s"] + (row["data_s"] or 0.0), peak_memory_gib=None)
        if args.beside or (args.reuse and previous is not None and previous.get("beside")):
            row["beside"] = args.beside or previous["beside"]
        row.update(seed=args.seed, samples=args.samples, threads=args.threads, hours=args.hours,
                   reference_repeats=[r["seed"] for r in repeats],
                   benchmark_command=f"benchmarks/peptide_bg.py --pdb {args.pdb} --name {args.name} --seed "
                                     f"{args.seed} --threads {args.threads}"
                                     + (f" --config {args.config}" if args.config else "")
                                     + (f" --samples {args.samples}" if args.samples != 100_000 else "")
                                     + (f" --hours {args.hours:g}" if args.hours != BARS["hours"] else ""))
        row["config"] = args.config
        rows = [r for r in rows if not same_run(r, row)] + [row]
    for row in rows:  # against the current reference (repeats may have been added since the row was made)
        row["judged"] = judged(row, reference)
    rows.sort(key=lambda r: (group(r), r["seed"]))
    lines = [] if rows else ["No Boltzmann generator has run against this reference yet.", ""]
    helix = list(lines)
    for key in sorted({group(r) for r in rows}):
        members = [r for r in rows if group(r) == key]
        print(json.dumps({"config": key[0], "schedule": key[1], "meets": [r["judged"]["meets"] for r in members]}))
        lines += [*table(args.name, members, reference, [r["seed"] for r in repeats]), ""]
        helix += [*helix_table(args.name, members, list(reference["residues"])), ""]
    write_results(results, rows, lines[:-1])
    atomic_write(RESULTS / f"{results}_helix.md", "\n".join(helix[:-1]) + "\n")  # beside the table, in the guide


if __name__ == "__main__":
    main()
