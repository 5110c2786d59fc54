"""Boltzmann generator for alanine dipeptide against the umbrella-sampling reference.

    python benchmarks/ala2_bg.py --solvent implicit [--seed 0] [--steps N] [--backend torch]
        [--data-engine torch] [--kl-steps K]

Runs the documented commands with the built-in defaults: `mlmol train
alanine-dipeptide[-implicit] --seed S --energy-backend B --data-engine D` (MD data, training; B is
the energy backend, the torch force field or the OpenMM bridge; D the MD engine of the data: parallel
tempering on the batched torch engine, or one plain OpenMM trajectory per start at the same step and
masses), `mlmol sample --n 100000`,
`mlmol evaluate`; compares the reweighted ΔF(φ>0 − φ<0) with
benchmarks/results/ala2_reference_<solvent>.json (run benchmarks/ala2_reference.py first).
``--kl-steps K`` appends K steps of ML + reverse KL (the energy and its forces in the loss, batch
256) to the 1,000 ML steps, through a config file, and writes ala2_bg_<solvent>_kl.json/.md.
Writes benchmarks/results/ala2_bg_<solvent>.json and .md; rows of other seeds or backends
or data engines already there (same schedule) are kept, so repeats can be added one at a time. Rows without a
backend were made with the OpenMM bridge, before the torch force field existed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml
from pipeline import MIN_EFFECTIVE, RESULTS, markdown_table, pipeline, write_results

from mlmol.data import atomic_write
from mlmol.geometry import dihedral_of
from mlmol.systems.molecules import alanine_dipeptide, peptide_bonds

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solvent", choices=["vacuum", "implicit"], default="implicit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="training steps (default: the built-in schedule)")
    parser.add_argument("--backend", choices=["torch", "openmm"], default="torch",
                        help="energy backend for training and evaluation (--energy-backend)")
    parser.add_argument("--data-engine", choices=["torch", "openmm"], default="torch",
                        help="MD engine of the training data (--data-engine)")
    parser.add_argument("--kl-steps", type=int, help="ML + KL steps after the 1,000 ML steps")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "ala2_bg"))
    parser.add_argument("--tabulate", action="store_true",
                        help="train nothing: rewrite the table from the stored rows against the current reference")
    args = parser.parse_args()
    reference_file = RESULTS / f"ala2_reference_{args.solvent}.json"
    if not reference_file.is_file():
        raise SystemExit(f"{reference_file} is missing: run benchmarks/ala2_reference.py --solvent {args.solvent}")
    reference = json.loads(reference_file.read_text())[0]
    name = f"ala2_bg_{args.solvent}" + ("_kl" if args.kl_steps else "")
    results_file = RESULTS / f"{name}.json"

    def stored_rows() -> list[dict]:  # read when the table is written: runs of other seeds may finish meanwhile
        return [{"backend": "openmm", "data_engine": LEGACY_DATA, **r}
                for r in (json.loads(results_file.read_text()) if results_file.is_file() else [])
                if r.get("steps") == args.steps and r.get("kl_steps") == args.kl_steps]

    rows = stored_rows()
    if not args.tabulate:
        molecule = "alanine-dipeptide" + ("-implicit" if args.solvent == "implicit" else "")
        extra = [] if args.steps is None else ["--steps", str(args.steps)]
        out = Path(args.runs) / (f"{args.solvent}-{args.backend}-{args.data_engine}-{args.seed}"
                                 f"{'-kl' if args.kl_steps else ''}")
        target = molecule
        if args.kl_steps:
            ml_steps = args.steps or 1000
            target = str(Path(args.runs) / f"{args.solvent}-kl{args.kl_steps}.yaml")
            Path(args.runs).mkdir(parents=True, exist_ok=True)
            atomic_write(target, yaml.safe_dump({"system": {"molecule": molecule}, "recipe": {
                "losses": "ml+kl", "steps": ml_steps + args.kl_steps,
                "ml_fraction": ml_steps / (ml_steps + args.kl_steps)}}))
            extra = []
        result = pipeline([target, "--seed", str(args.seed), "--energy-backend", args.backend, "--data-engine",
                           args.data_engine, *extra], out)
        key = (args.seed, args.backend, args.data_engine)
        rows = [r for r in stored_rows() if (r["seed"], r["backend"], r["data_engine"]) != key] + [
            {"solvent": args.solvent, "seed": args.seed, "backend": args.backend, "data_engine": args.data_engine,
             "steps": args.steps, "kl_steps": args.kl_steps, "data_cis_fraction": cis_fraction(out / "data.npz"),
             **result}]
    if not rows:
        raise SystemExit(f"no stored rows in {results_file} for this schedule: run without --tabulate first")
    rows.sort(key=lambda r: (r["data_engine"] != LEGACY_DATA, r["data_engine"], r["backend"], r["seed"]))
    for r in rows:  # against the current reference
        r["reference"] = reference
        r["difference"] = r["metrics"]["delta_f"]["value"] - reference["delta_f"]
    seeds = " ".join(sorted({str(r["seed"]) for r in rows}))
    schedule = ("the built-in defaults" if not args.kl_steps else
                f"1,000 ML steps then {args.kl_steps} ML + reverse-KL steps (batch 256)")
    flags = (f"{'' if args.steps is None else f' --steps {args.steps}'}"
             f"{'' if not args.kl_steps else f' --kl-steps {args.kl_steps}'}")
    caption = (f"Alanine dipeptide ({args.solvent}, 300 K): Boltzmann generator with {schedule} "
               f"(`python benchmarks/ala2_bg.py --solvent {args.solvent} --seed S{flags} --backend B --data-engine D` for "
               f"S in {seeds}; training = `mlmol train ... --seed S --energy-backend B --data-engine D` including its "
               "MD data, whose wall time is its own column; sampling = 100,000 samples with their log weights).")
    table = markdown_table(caption, ["MD data", "energy backend", "seed", "MD data (min)", "train, data included (min)",
                                     "sample (s)", "ESS",
                                     "effective samples", "BG ΔF(φ>0 − φ<0) (kT)", "reference (kT)",
                                     "difference (kT)", "wrong-handed Cα", "MD data frames with a cis ω"],
                           [[r["data_engine"], r["backend"] + ("†" if predates_backend(r) else ""), str(r["seed"]),
                             "—" if r.get("data_s") is None else f"{r['data_s'] / 60:.1f}",
                             f"{r['train_s'] / 60:.1f}", f"{r['sample_s']:.0f}",
                             f"{100 * r['metrics']['ess_fraction']:.1f}%", f"{r['metrics']['ess']:,.0f}",
                             f"{r['metrics']['delta_f']['value']:.3f} ± {r['metrics']['delta_f']['stderr']:.3f}",
                             f"{reference['delta_f']:.3f} ± {reference['stderr']:.3f}", f"{r['difference']:+.3f}",
                             f"{100 * r['metrics']['wrong_handed_fraction']:.2f}%",
                             "—" if r.get("data_cis_fraction") is None else f"{100 * r['data_cis_fraction']:.2f}%"]
                            for r in rows],
                           text_columns=3)
    table += [line for label, note in DATA_NOTES.items() if any(r["data_engine"] == label for r in rows)
              for line in ("", f"{label}: {note}")]
    if any(map(predates_backend, rows)):
        table += ["", ("† Made before the `--energy-backend` option, by `mlmol train ... --seed S` (its command in "
                       "the JSON), which then always used the OpenMM bridge; `--backend openmm` is today's way to run it.")]
    write_results(name, rows, table)
    if name == "ala2_bg_implicit":
        judged = [r for r in rows if r["data_engine"] != PLAIN_REPLICAS]  # a superseded default, kept as evidence
        atomic_write(RESULTS / f"{name}_bars.md", "\n".join(bars(judged, reference)) + "\n")


LEGACY_DATA = "openmm, 1 fs"  # rows made before the batched engine became the data default
PLAIN_REPLICAS = "torch, plain replicas"  # rows made by the batched engine's data before the temperature ladder
OPENMM_4FS = "openmm, 4 fs"  # OpenMM data at the plain replicas' settings
DATA_NOTES = {  # what made the MD data of rows from superseded defaults, a footnote under the table where used
    LEGACY_DATA: ("MD data made by the earlier defaults, one OpenMM trajectory per start at 1 fs with unchanged "
                  "masses, a frame every 100 steps (its command in the JSON); `--data-engine openmm` now runs OpenMM "
                  "at the torch engine's settings (3 fs, hydrogens at 3.024 amu, a frame every 33 steps)."),
    PLAIN_REPLICAS: ("MD data from the torch engine's first default, 96 plain replicas (32 per start, 4 fs, hydrogens "
                     "at 3.024 amu, 20 ps of equilibration, about 100 ps each) without the temperature ladder; its "
                     "command in the JSON ran the defaults of that time."),
    OPENMM_4FS: ("`--data-engine openmm` at the plain replicas' settings (one OpenMM trajectory per start, 4 fs, "
                 "hydrogens at 3.024 amu, 20 ps of equilibration, a frame every 25 steps); its command in the JSON ran "
                 "the defaults of that time."),
}


def cis_fraction(data_file: Path) -> float:
    """Fraction of the MD data's frames with a peptide bond further than 90° from trans."""
    with np.load(data_file) as data:
        x = torch.from_numpy(data["x"])
    bonds = peptide_bonds(alanine_dipeptide(backend="torch").topology)
    omega = torch.stack([dihedral_of(x, atoms) for atoms in bonds], -1)
    return float((torch.pi - omega.abs() > torch.pi / 2).any(-1).double().mean())


def predates_backend(row: dict) -> bool:
    """A row made before ``--energy-backend`` existed (its stored command has no such flag)."""
    return "--energy-backend" not in row.get("command", "--energy-backend")


def bars(rows: list[dict], reference: dict) -> list[str]:
    """Each acceptance bar of the implicit-solvent generator against every row (seed, backend)."""
    runs = " / ".join(f"{r['backend']} {r['seed']} ({r['data_engine']} data)" for r in rows)
    checks = [
        ("training ≤ 60 min on 2 CPU cores, MD data included", [r["train_s"] / 60 for r in rows],
         lambda v: f"{v:.1f} min", lambda v: v <= 60),
        (f"ESS ≥ 10% on 10⁵ samples, with ≥ {MIN_EFFECTIVE} effective samples",
         [(r["metrics"]["ess_fraction"], r["metrics"]["ess"]) for r in rows],
         lambda v: f"{100 * v[0]:.1f}% ({v[1]:,.0f})", lambda v: v[0] >= 0.1 and v[1] >= MIN_EFFECTIVE),
        (f"ΔF within 0.3 kT of the reference ({reference['delta_f']:.3f} ± {reference['stderr']:.3f} kT)",
         [r["difference"] for r in rows], lambda v: f"{v:+.3f} kT", lambda v: abs(v) <= 0.3),
        ("wrong-handed Cα < 1%", [r["metrics"]["wrong_handed_fraction"] for r in rows],
         lambda v: f"{100 * v:.2f}%", lambda v: v < 0.01),
    ]
    return markdown_table(f"Against the bars (implicit solvent, 300 K, 100,000 samples; runs {runs}):",
                          ["bar", "result", "met?"],
                          [[bar, " / ".join(map(show, values)), "✓" if all(map(ok, values)) else "✗"]
                           for bar, values, show, ok in checks], text_columns=2)


if __name__ == "__main__":
    main()
