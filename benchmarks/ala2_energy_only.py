"""Alanine dipeptide in implicit solvent from the energy alone (no MD data) against the umbrella reference.

    python benchmarks/ala2_energy_only.py [--seed 0] [--losses ta] [--threads 2] [--min-ess 0]
    python benchmarks/ala2_energy_only.py --tabulate    # measure nothing: redraw the table

Runs `mlmol train alanine-dipeptide-implicit --losses L --seed S --threads T` (the built-in energy-only
schedule on T cores; the bar is 2 hours on 2),
`mlmol sample --n 100000 --seed 1000 + S` and `mlmol evaluate`; compares the reweighted ΔF(φ>0 − φ<0)
with benchmarks/results/ala2_reference_implicit.json. Beside each row: the target energy evaluations of
training (from metrics.jsonl) and, for the MD-data route, the force evaluations its MD data took (each MD
step of each replica is one), computed from the data section of the stored rows of
benchmarks/results/ala2_bg_implicit.json (the batched-engine rows). Writes
benchmarks/results/ala2_energy_only.json and .md, and ala2_energy_only_rungs.md: each run's pools rung by
rung (ESS with effective samples, the weight power, and P(φ > 0) in the flow's samples, weighted to the
rung and under the weights it is fitted to).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml
from pipeline import MIN_EFFECTIVE, RESULTS, markdown_table, mean_sd, pipeline, read_results, write_results

from mlmol.annealing import ladder
from mlmol.config import ENERGY_LOSSES
from mlmol.data import atomic_write

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "alanine-dipeptide-implicit"
KELVIN = 300.0  # the system's temperature
NAMES = {"ta": "temperature annealing", "fab": "FAB", "kl": "reverse KL"}


def md_evaluations(data: dict) -> int:
    """Force evaluations of the batched engine's MD data: replicas × temperatures × steps per replica."""
    replicas = data["replicas"]
    count = 1 if data.get("ladder") is None else data["ladder"][1]
    frames_per_replica = -(-data["n"] // (replicas * data.get("rungs", 1)))
    return replicas * count * (data["equilibration"] + frames_per_replica * data["interval"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--losses", default="ta", choices=sorted(NAMES))
    parser.add_argument("--threads", type=int, default=2, help="training threads (the bar: 2 hours on 2 cores)")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "ala2_energy_only"))
    parser.add_argument("--tabulate", action="store_true", help="measure nothing: redraw the table")
    parser.add_argument("--min-ess", type=float,
                        help="temperature annealing's ESS floor instead of the default's (0: none, the schedule of "
                             "seeds 0-2); written to a config the run trains from")
    parser.add_argument("--reuse", action="store_true",
                        help="sample and evaluate the run this script already trained (its training time from "
                             "metrics.jsonl) instead of training again")
    args = parser.parse_args()
    if not args.tabulate:
        target, suffix = SYSTEM, ""
        if args.min_ess is not None:  # the recipe option through a config: mlmol train CONFIG.yaml --losses ta
            suffix = f"-min_ess{args.min_ess:g}"
            target = str(Path(args.runs) / f"{args.losses}{suffix}.yaml")
            Path(args.runs).mkdir(parents=True, exist_ok=True)
            atomic_write(target, yaml.safe_dump({"system": {"molecule": SYSTEM}, "recipe": {
                "name": ENERGY_LOSSES[args.losses], "min_ess": args.min_ess}}))
        out = Path(args.runs) / f"{args.losses}-{args.seed}{suffix}"
        result = pipeline([target, "--losses", args.losses, "--seed", str(args.seed),
                           "--threads", str(args.threads)], out,
                          sample_seed=1000 + args.seed, train=not args.reuse)
    try:  # read after the run: rows that seeds run side by side wrote meanwhile are kept
        rows = read_results("ala2_energy_only")
    except FileNotFoundError:
        rows = []
    if not args.tabulate:
        row = {"losses": args.losses, "seed": args.seed, "sample_seed": 1000 + args.seed,
               "train_time_from": "metrics.jsonl" if args.reuse else "wall clock", **result}
        rows = [r for r in rows if (r["losses"], r["seed"], _schedule(r)) != (args.losses, args.seed, _schedule(row))]
        rows.append(row)
    render(rows)


def _threads(row: dict) -> str:
    """The training threads of a row's command (1 when the command does not say)."""
    return row["command"].split("--threads ")[1].split()[0] if "--threads" in row["command"] else "1"


def _schedule(row: dict) -> str:
    """The row's temperature-annealing variant: with or without the floor on the fitted weights' ESS."""
    floor = row["recipe"].get("min_ess", 0.0)
    return f"ESS floor {100 * floor:g}%" if floor else "no ESS floor"


def _basins(metrics: dict) -> str:
    """The effective samples ΔF rests on in each basin (— where the evaluation predates them)."""
    counts = metrics["delta_f"].get("effective_samples")
    return "—" if counts is None else f"{counts[0]:,.0f} / {counts[1]:,.0f}"


def _rung_kelvin(recipe: dict) -> list[str]:
    """The temperatures of a temperature-annealing recipe's rungs, hot to cold (the ladder's top is the
    reverse-KL stage when there is one)."""
    factors = ladder(recipe["high"], recipe["temperatures"])
    return [f"{f * KELVIN:.0f} K" for f in (factors[1:] if recipe.get("kl_fraction", 0) else factors)]


def render(rows: list[dict]) -> None:
    reference = json.loads((RESULTS / "ala2_reference_implicit.json").read_text())[0]
    md_rows = [r for r in read_results("ala2_bg_implicit")
               if r.get("data_engine") == "torch" and r.get("data_config", {}).get("ladder")]
    order = sorted(rows, key=lambda r: (r["losses"], _schedule(r) == "no ESS floor", r["seed"]))
    cells = []
    for r in order:
        m = r["metrics"]
        r["difference"] = m["delta_f"]["value"] - reference["delta_f"]
        cells.append([f"from the energy alone: {NAMES[r['losses']]}, {_schedule(r)} (`--threads {_threads(r)}`)",
                      str(r["seed"]), f"{r['energy_evaluations']:,}",
                      f"{r['train_s'] / 60:.1f}" + ("†" if r.get("train_time_from") == "metrics.jsonl" else ""),
                      f"{100 * m['ess_fraction']:.1f}% ({m['ess']:,.0f})" + ("" if m["ess"] >= MIN_EFFECTIVE else " *"),
                      f"{m['delta_f']['value']:.3f} ± {m['delta_f']['stderr']:.3f}", f"{r['difference']:+.3f}",
                      _basins(m), f"{100 * m['wrong_handed_fraction']:.2f}%"])
    for key in dict.fromkeys((r["losses"], _schedule(r)) for r in order):
        group = [r for r in order if (r["losses"], _schedule(r)) == key]
        if len(group) > 1:
            cells.append([f"**from the energy alone: {NAMES[key[0]]}, {key[1]}, mean ± sd**",
                          ", ".join(str(r["seed"]) for r in group),
                          f"{np.mean([r['energy_evaluations'] for r in group]):,.0f}",
                          mean_sd([r["train_s"] / 60 for r in group], 1)
                          if len({_threads(r) for r in group}) == 1 else "per seed (threads differ)",
                          mean_sd([r["metrics"]["ess_fraction"] for r in group], 1, percent=True) + " (min "
                          f"{min(r['metrics']['ess'] for r in group):,.0f})",
                          mean_sd([r["metrics"]["delta_f"]["value"] for r in group], 3),
                          mean_sd([r["difference"] for r in group], 3, sign=True)
                          + f" (largest {max(abs(r['difference']) for r in group):.3f})", "",
                          f"{100 * max(r['metrics']['wrong_handed_fraction'] for r in group):.2f}% (largest)"])
    for r in md_rows:
        m = r["metrics"]
        cells.append([f"MD data (batched engine) + ML: {r['command'].split(' --out')[0]}", str(r["seed"]),
                      f"{md_evaluations(r['data_config']):,} (MD force evaluations)", f"{r['train_s'] / 60:.1f}",
                      f"{100 * m['ess_fraction']:.1f}% ({m['ess']:,.0f})",
                      f"{m['delta_f']['value']:.3f} ± {m['delta_f']['stderr']:.3f}",
                      f"{m['delta_f']['value'] - reference['delta_f']:+.3f}", _basins(m),
                      f"{100 * m['wrong_handed_fraction']:.2f}%"])
    table = markdown_table(
        "Alanine dipeptide in implicit solvent (300 K) from the energy alone against the MD-data route "
        "(`python benchmarks/ala2_energy_only.py --seed S --threads T` on a 2-core machine: with 2 threads alone, with 1 "
        "thread beside one or two other 1-thread runs; 100,000 samples, sampling seed 1000 + S; ΔF(φ>0 − φ<0) "
        f"against the umbrella reference {reference['delta_f']:.3f} ± {reference['stderr']:.3f} kT; the ESS floor is "
        "the recipe's min_ess (no floor: seeds 0–2 ran before the option existed, on code that behaves as "
        "min_ess 0); the MD-data rows are "
        "those of benchmarks/results/ala2_bg_implicit.md; * fewer than 100 effective samples: does not count)",
        ["training", "seed", "target energy evaluations", "time (min)", "ESS (effective samples)",
         "ΔF (kT)", "difference (kT)", "effective samples in φ>0 / φ<0", "wrong-handed Cα"], cells, text_columns=2)
    if any(r.get("train_time_from") == "metrics.jsonl" for r in rows):
        table += ["", "† The training loop's own clock (metrics.jsonl): the run was sampled and evaluated with --reuse."]
    write_results("ala2_energy_only", rows, table)
    rungs = rung_table(order, 1 / (1 + np.exp(reference["delta_f"])))
    atomic_write(RESULTS / "ala2_energy_only_rungs.md", "\n".join(rungs) + "\n")
    print("\n".join(rungs))


def _pool_cell(key: str, stage: dict, size: int) -> str:
    """One pool metric of a rung as text; a weighted P(φ>0) from fewer than 100 effective samples is starred."""
    v = stage[key]
    if key == "pool_ess":
        return f"{100 * v:.2g}% ({v * size:,.0f})"
    if key == "pool_power":
        return f"{v:.2f}"
    text = f"{100 * v:.2g}%" if v < 0.01 else f"{100 * v:.1f}%"
    thin = key == "pool_state" and stage["pool_ess"] * size < MIN_EFFECTIVE
    return text + (" *" if thin else "")


def rung_table(rows: list[dict], reference_state: float) -> list[str]:
    """Each run's pools, rung by rung: ESS with effective samples, the weight power and P(φ > 0) (the
    reference's at 300 K: ``reference_state``)."""
    lines = {"pool_ess": "pool ESS (effective samples)", "pool_power": "weight power α",
             "pool_state_flow": "P(φ>0): flow's samples", "pool_state": "P(φ>0): weighted to the rung",
             "pool_state_fit": "P(φ>0): weights fitted to"}
    cells, rungs = [], []
    for r in rows:
        pools = [st for st in r.get("stages", []) if st.get("pool_ess") is not None]
        rungs = rungs or _rung_kelvin(r["recipe"])
        size = r["recipe"]["pool"]
        for key, label in lines.items():
            if all(st.get(key) is None for st in pools):
                continue
            cells.append([f"{_schedule(r)}, seed {r['seed']}", label, *(_pool_cell(key, st, size) for st in pools)])
    return markdown_table(
        "Alanine dipeptide from the energy alone, temperature annealing rung by rung, hot to cold "
        "(`python benchmarks/ala2_energy_only.py --seed S --threads T`; each rung's pool of "
        f"{' or '.join(f'{size:,}' for size in sorted({r['recipe']['pool'] for r in rows}))} samples of the flow "
        "trained at the rung above, weighted to this rung; the weight power α < 1 where the ESS floor applies; "
        f"P(φ>0) = {100 * reference_state:.1f}% at 300 K by the umbrella reference; * a weighted share from a "
        "pool of fewer than 100 effective samples: a rough number)",
        ["run", "pool", *rungs], cells, text_columns=2)


if __name__ == "__main__":
    main()
