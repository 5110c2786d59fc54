"""How many MD frames a molecular Boltzmann generator needs: ML training on subsets of one MD.

    python benchmarks/ala2_data_size.py --data runs/ala2_bg/implicit-0/data.npz --sizes 20000 95000
    python benchmarks/ala2_data_size.py --tabulate    # measure nothing: redraw the table from the stored rows

Takes the training frames of an alanine dipeptide run (implicit solvent; made by
`python benchmarks/ala2_bg.py --solvent implicit`), keeps a fixed random 5,000 of them out
for validation, and trains the built-in molecular flow by maximum likelihood on the first
N of the rest, for each N, with the built-in schedule (1,000 steps, batch 1,024, lr 1e-3 →
1e-4). Reports the training and validation negative log-likelihood (nats; a gap is
memorisation) and the ESS of 20,000 flow samples with its effective sample count. Writes
benchmarks/results/ala2_data_size.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from pipeline import MIN_EFFECTIVE, markdown_table, read_results, write_results

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 20_000  # the default --samples; the stored rows made before "samples" was recorded used it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "runs" / "ala2_bg" / "implicit-0" / "data.npz"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 95_000])
    parser.add_argument("--steps", type=int, default=1_000)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--tabulate", action="store_true",
                        help="measure nothing: rewrite the table from the stored rows (results/ala2_data_size.json)")
    args = parser.parse_args()
    if args.tabulate:
        render(read_results("ala2_data_size"))
        return
    torch.set_num_threads(1)

    from mlmol import estimators, flows
    from mlmol.experiments import noe2019
    from mlmol.generate import sample
    from mlmol.config import MOLECULE_DEFAULTS
    from mlmol.systems.molecules import alanine_dipeptide
    from mlmol.train import fit

    with np.load(args.data) as f:
        frames = torch.from_numpy(f["x"])
    order = torch.randperm(len(frames), generator=torch.Generator().manual_seed(1))
    validation, pool = frames[order[:5000]].float(), frames[order[5000:]].float()
    system = alanine_dipeptide(implicit_solvent=True, workers=1)
    bonds = [(a.index, b.index) for a, b in system.topology.bonds()]
    options = {k: v for k, v in MOLECULE_DEFAULTS["flow"].items() if k != "kind"}
    recipe_options = {k: v for k, v in MOLECULE_DEFAULTS["recipe"].items() if k not in ("name", "validation")}
    rows = []
    for n in args.sizes:
        if n > len(pool):
            raise SystemExit(f"--sizes {n} is more than the {len(pool)} frames left after validation")
        data = pool[:n]
        torch.manual_seed(0)
        flow = flows.MolecularFlow(system.dim // 3, bonds, data=data, **options)
        recipe = dataclasses.replace(noe2019(system, data, **{**recipe_options, "steps": args.steps}),
                                     validation=validation)  # the same held-out frames for every N
        start = time.perf_counter()
        history = fit(flow, recipe, seed=0, validate_every=args.steps)
        train_s = time.perf_counter() - start
        with torch.no_grad():
            train_nll = float(-flow.log_prob(data[:5000]).mean())
        samples = sample(flow, system, args.samples, seed=1)
        rows.append({"frames": n, "steps": args.steps, "train_nll": train_nll, "val_nll": history["val_ml"][-1],
                     "ess_fraction": estimators.ess_fraction(samples.log_weights), "train_s": train_s,
                     "samples": args.samples, "effective_samples": estimators.ess(samples.log_weights)})
        print(rows[-1], flush=True)
    system.close()
    render(rows)


def render(rows: list[dict]) -> None:
    """The table of stored rows, with each row's effective sample count (``effective_samples``)."""
    for r in rows:
        # rows stored before these keys existed: Kish count = ESS fraction × the SAMPLES flow samples
        r.setdefault("samples", SAMPLES)
        r.setdefault("effective_samples", r["ess_fraction"] * r["samples"])
    sizes = " ".join(str(r["frames"]) for r in rows)
    steps = " / ".join(str(s) for s in dict.fromkeys(r["steps"] for r in rows))
    samples = " / ".join(str(n) for n in dict.fromkeys(r["samples"] for r in rows))
    command = f"python benchmarks/ala2_data_size.py --sizes {sizes} --steps {steps} --samples {samples}"
    caption = (f"ML training of the alanine dipeptide flow (implicit solvent) on N MD frames, same schedule, "
               f"5,000 held-out frames for validation (`{command}`). Effective samples: the Kish count "
               f"(Σw)² / Σw² of the flow samples' importance weights (ESS × samples); a run counts towards a bar "
               f"only with at least {MIN_EFFECTIVE}.")
    table = markdown_table(caption, ["frames N", "train NLL (nats)", "validation NLL (nats)", "gap", "ESS",
                                     "effective samples", "counts", "train (min)"],
                           [[f"{r['frames']:,}", f"{r['train_nll']:.2f}", f"{r['val_nll']:.2f}",
                             f"{r['val_nll'] - r['train_nll']:.2f}", f"{100 * r['ess_fraction']:.2f}%",
                             f"{r['effective_samples']:,.0f}",
                             "yes" if r["effective_samples"] >= MIN_EFFECTIVE else "no",
                             f"{r['train_s'] / 60:.1f}"] for r in rows])
    write_results("ala2_data_size", rows, table)


if __name__ == "__main__":
    main()
