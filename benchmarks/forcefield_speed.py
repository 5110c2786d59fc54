"""Configurations per second with forces: the native torch force field against OpenMM.

    python benchmarks/forcefield_speed.py [--batches 1 256 4096] [--seconds 2] [--threads 2]

For alanine dipeptide in vacuum and in implicit solvent (OBC2), side by side in one run:

- OpenMM, one context looping over the configurations in this process, on the Reference and
  the CPU platforms (the fastest OpenMM path on a small molecule; the CPU platform uses
  ``--threads`` threads), energies and forces as NumPy arrays;
- the OpenMM bridge of mlmol with 2 worker processes (Reference);
- mlmol's torch force field, energy + forces by autograd, at each batch size, float32 and
  float64, eager and through ``torch.compile`` (``ForceField(system, compile=True)``; it falls
  back to eager with a warning where no C++ compiler is found).

Each rate is the batch size over the median wall time of repeated calls (at least
``--seconds`` of calls per row). Ratios are against the fastest OpenMM path of the system.
Writes benchmarks/results/forcefield_speed.json/.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import openmm
import torch
from pipeline import markdown_table, write_results

from mlmol.systems.forcefield import ForceField
from mlmol.systems.molecules import alanine_dipeptide
from mlmol.systems.openmm import OpenMMBridge


def rate(fn, batch: int, seconds: float) -> float:
    """batch / median wall time of ``fn()`` over calls filling ``seconds`` (after one warm-up call)."""
    fn()
    times, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 3:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def openmm_loop(system, x: np.ndarray, platform: str, threads: int):
    properties = {"Threads": str(threads)} if platform == "CPU" else {}
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform),
                             properties)

    def loop():
        for xyz in x:
            context.setPositions(xyz)
            state = context.getState(getEnergy=True, getForces=True)
            state.getPotentialEnergy()._value, state.getForces(asNumpy=True)._value

    return loop


def torch_call(model, x: torch.Tensor):
    def call():
        positions = x.detach().requires_grad_(True)
        energy = model(positions)
        (gradient,) = torch.autograd.grad(energy.sum(), positions)
        return energy, -gradient

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256, 4096])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--openmm-configurations", type=int, default=2000,
                        help="configurations per OpenMM loop call")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for implicit in (False, True):
        energy = alanine_dipeptide(implicit_solvent=implicit, backend="openmm", workers=1)
        system, name = energy.system, energy.name
        energy.bridge.close()
        rng = np.random.default_rng(0)
        many = energy.positions + 0.01 * rng.standard_normal((max(args.batches + [args.openmm_configurations]),
                                                              energy.dim))
        x_openmm = many[:args.openmm_configurations].reshape(args.openmm_configurations, -1, 3)
        results = []
        for platform in ("Reference", "CPU"):
            results.append((f"OpenMM context loop ({platform})", "float64", args.openmm_configurations,
                            rate(openmm_loop(system, x_openmm, platform, args.threads), len(x_openmm),
                                 args.seconds)))
        with OpenMMBridge(system, platform="Reference", workers=2) as bridge:
            results.append(("OpenMM bridge, 2 workers (Reference)", "float64", args.openmm_configurations,
                            rate(lambda x=x_openmm: bridge.compute(x), len(x_openmm), args.seconds)))
        for dtype in (torch.float32, torch.float64):
            for label in ("torch eager",) + (() if args.no_compile else ("torch.compile",)):
                model = ForceField(system, compile=label == "torch.compile").to(dtype)
                for batch in args.batches:
                    x = torch.tensor(many[:batch], dtype=dtype)
                    started = time.perf_counter()
                    torch_call(model, x)()  # compiles, for a compiled model's first batch
                    first = time.perf_counter() - started
                    value = rate(torch_call(model, x), batch, args.seconds)
                    if label == "torch.compile" and model._compiled is None:
                        label = "torch.compile failed: eager"
                    results.append((label, str(dtype).removeprefix("torch."), batch, value))
                    print(f"{name:28s} {label:14s} {results[-1][1]:8s} batch {batch:5d}: {value:12,.0f} /s "
                          f"(first call {first:.1f} s)", flush=True)
        fastest = max(r[3] for r in results if r[0].startswith("OpenMM context"))
        for method, dtype, batch, value in results:
            rows.append({"system": name, "method": method, "dtype": dtype, "batch": batch,
                         "configurations_per_s": value, "vs_fastest_openmm": value / fastest,
                         "threads": args.threads})
    caption = (f"Energy + forces, configurations per second on {args.threads} CPU thread(s) "
               f"(`python benchmarks/forcefield_speed.py`; openmm {openmm.__version__}, torch {torch.__version__}). "
               "Ratio against the fastest OpenMM context loop of the same system.")
    table = markdown_table(caption, ["system", "method", "dtype", "batch", "configurations/s", "vs fastest OpenMM"],
                           [[r["system"], r["method"], r["dtype"], str(r["batch"]),
                             f"{r['configurations_per_s']:,.0f}", f"{r['vs_fastest_openmm']:.2f}×"] for r in rows],
                           text_columns=3)
    write_results("forcefield_speed", rows, table)


if __name__ == "__main__":
    main()
