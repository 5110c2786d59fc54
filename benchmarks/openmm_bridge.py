"""Energy+force evaluations per second: the OpenMM bridge against one in-process context.

    python benchmarks/openmm_bridge.py [--batch 2000] [--repeats 5]

For alanine dipeptide in vacuum and in implicit solvent: a single OpenMM context looping
over the configurations in this process (Reference and CPU platforms), and the bridge
with 1 and 2 worker processes (Reference, the "auto" choice at 22 atoms). Writes
benchmarks/results/openmm_bridge.json and .md.
"""

from __future__ import annotations

import argparse

import numpy as np
import openmm
from pipeline import markdown_table, median_time, write_results

from mlmol.systems.molecules import alanine_dipeptide
from mlmol.systems.openmm_bridge import OpenMMBridge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for implicit in (False, True):
        energy = alanine_dipeptide(implicit_solvent=implicit, workers=1, backend="openmm")
        system, name = energy.system, energy.name
        energy.close()
        rng = np.random.default_rng(0)
        x = (energy.positions + 0.01 * rng.standard_normal((args.batch, energy.dim))).reshape(args.batch, -1, 3)
        results = {}
        for platform in ("Reference", "CPU"):
            properties = {"Threads": "1"} if platform == "CPU" else {}
            context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                                     openmm.Platform.getPlatformByName(platform), properties)

            def loop():  # the same work as a worker: energies and forces as numbers
                for xyz in x:
                    context.setPositions(xyz)
                    state = context.getState(getEnergy=True, getForces=True)
                    state.getPotentialEnergy()._value, state.getForces(asNumpy=True)._value

            results[f"single context in process ({platform})"] = args.batch / median_time(loop, args.repeats)
        for workers in (1, 2):
            with OpenMMBridge(system, platform="Reference", workers=workers) as bridge:
                results[f"bridge, {workers} worker(s) (Reference)"] = args.batch / median_time(
                    lambda: bridge.compute(x), args.repeats)
        base = results["single context in process (Reference)"]
        for method, rate in results.items():
            rows.append({"system": name, "method": method, "evaluations_per_s": rate, "ratio": rate / base,
                         "batch": args.batch})
            print(f"{name:28s} {method:40s} {rate:10.0f} /s  ({rate / base:.2f}x)", flush=True)
    caption = (f"Energy+force evaluations per second, batches of {args.batch} configurations "
               f"(`python benchmarks/openmm_bridge.py --batch {args.batch} --repeats {args.repeats}`; "
               f"openmm {openmm.__version__}). Ratio against one in-process Reference context.")
    table = markdown_table(caption, ["system", "method", "evaluations/s", "ratio"],
                           [[r["system"], r["method"], f"{r['evaluations_per_s']:,.0f}", f"{r['ratio']:.2f}x"]
                            for r in rows], text_columns=2)
    write_results("openmm_bridge", rows, table)


if __name__ == "__main__":
    main()
