"""Configurations per second with forces: the native torch force field against OpenMM.

    python benchmarks/forcefield_speed.py [--batches 1 256 4096] [--seconds 2] [--threads 2] [--device cuda]

For alanine dipeptide in vacuum and in implicit solvent (OBC2), side by side in one run:

- OpenMM, one context looping over the configurations in this process, on the Reference and
  the CPU platforms (the fastest OpenMM path on a small molecule; the CPU platform uses
  ``--threads`` threads), energies and forces as NumPy arrays;
- the OpenMM bridge of mlmol with 2 worker processes (Reference);
- mlmol's torch force field, energy + forces by autograd, at each batch size, float32 and
  float64, eager and through ``torch.compile`` (``ForceField(system, compile=True)``; it falls
  back to eager with a warning where no C++ compiler is found).

A round's rate is the batch size over the median wall time of repeated calls (at least
``--seconds`` of calls). All rows of a system are measured in ``--rounds`` round-robin rounds, so
that the machine's slow spells (this is a shared 2-core VM, where two-thread rows sometimes run
at half speed) fall on every row alike; each row reports its best round, as timeit does, and
its median round. Ratios are between best rounds, against the fastest OpenMM path of the system.
Writes benchmarks/results/forcefield_speed.json/.md; with ``--device cuda`` the torch rows run on
the GPU (OpenMM stays on the CPU: its CUDA platform is the separate openmm[cuda12] plugin)
and the results go to forcefield_speed_cuda.json/.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
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


@contextlib.contextmanager
def openmm_loop(system, x: np.ndarray, platform: str, threads: int):
    """A call looping one context over ``x``; the context (and its threads) is gone afterwards, so
    that it cannot take a core from the rows measured after it."""
    properties = {"Threads": str(threads)} if platform == "CPU" else {}
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform),
                             properties)

    def loop():
        for xyz in x:
            context.setPositions(xyz)
            state = context.getState(getEnergy=True, getForces=True)
            state.getPotentialEnergy()._value, state.getForces(asNumpy=True)._value

    try:
        yield loop
    finally:
        context = None  # frees the context, which the closure shares


@contextlib.contextmanager
def bridge_call(system, x: np.ndarray):
    """A call of mlmol's OpenMM bridge (2 Reference workers) on ``x``; the workers stop afterwards."""
    with OpenMMBridge(system, platform="Reference", workers=2) as bridge:
        yield lambda: bridge.compute(x)


def torch_call(model, x: torch.Tensor):
    def call():
        positions = x.detach().requires_grad_(True)
        energy = model(positions)
        (gradient,) = torch.autograd.grad(energy.sum(), positions)
        if x.is_cuda:
            torch.cuda.synchronize()  # the wall time must include the queued GPU work
        return energy, -gradient

    return call


def candidates(system, many: np.ndarray, args) -> list[tuple]:
    """(method, dtype, batch, context manager giving the call, first call s) for every row of one
    system; OpenMM's contexts and workers exist only while their row runs. Compiled models
    compile in their first calls (with an empty compile cache, see main)."""
    x_openmm = many[:args.openmm_configurations].reshape(args.openmm_configurations, -1, 3)
    rows = [(f"OpenMM context loop ({platform})", "float64", len(x_openmm),
             lambda platform=platform: openmm_loop(system, x_openmm, platform, args.threads), None)
            for platform in ("Reference", "CPU")]
    rows.append(("OpenMM bridge, 2 workers (Reference)", "float64", len(x_openmm),
                 lambda: bridge_call(system, x_openmm), None))
    for dtype in (torch.float32, torch.float64):
        for label in ("torch eager",) + (() if args.no_compile else ("torch.compile",)):
            model = ForceField(system, compile=label == "torch.compile").to(dtype=dtype, device=args.device)
            for batch in args.batches:
                call = torch_call(model, torch.tensor(many[:batch], dtype=dtype, device=args.device))
                started = time.perf_counter()
                call()  # compiles, for a compiled model's first batches
                first = time.perf_counter() - started
                print(f"{label} {dtype} batch {batch}: first call {first:.1f} s", flush=True)
                if label == "torch.compile" and model._compiled is None:
                    label = "torch.compile failed: eager"
                rows.append((label, str(dtype).removeprefix("torch."), batch,
                             lambda call=call: contextlib.nullcontext(call), first))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256, 4096])
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds of calls per row and round")
    parser.add_argument("--rounds", type=int, default=5,
                        help="round-robin rounds over all rows of a system; each row reports its best round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--openmm-configurations", type=int, default=2000,
                        help="configurations per OpenMM loop call")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--device", default="cpu", help="where the torch rows run (cpu, cuda)")
    args = parser.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available():
        parser.error(f"--device {args.device} needs a CUDA GPU, and torch sees none")
    torch.set_num_threads(args.threads)
    cache = tempfile.TemporaryDirectory()  # an empty compile cache: first calls show a user's first compilation
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name
    rows = []
    for implicit in (False, True):
        energy = alanine_dipeptide(implicit_solvent=implicit, backend="openmm", workers=1)
        system, name = energy.system, energy.name
        energy.close()
        rng = np.random.default_rng(0)
        many = energy.positions + 0.01 * rng.standard_normal((max(args.batches + [args.openmm_configurations]),
                                                              energy.dim))
        calls = candidates(system, many, args)
        rates = [[] for _ in calls]
        for _ in range(args.rounds):  # round-robin: a slow spell of the machine hits every row alike
            for k, (method, dtype, batch, make, _) in enumerate(calls):
                with make() as call:
                    rates[k].append(rate(call, batch, args.seconds))
                print(f"{name:28s} {method:36s} {dtype:8s} batch {batch:5d}: {rates[k][-1]:12,.0f} /s",
                      flush=True)
        best = [max(r) for r in rates]
        fastest = max(b for (method, *_), b in zip(calls, best, strict=True) if method.startswith("OpenMM context"))
        for (method, dtype, batch, _, first), value, spread in zip(calls, best, rates, strict=True):
            rows.append({"system": name, "method": method, "dtype": dtype, "batch": batch,
                         "configurations_per_s": value, "median_round": statistics.median(spread),
                         "vs_fastest_openmm": value / fastest, "rounds": spread, "first_call_s": first,
                         "threads": args.threads, "device": args.device})
    where = f"{args.threads} CPU thread(s)" if args.device == "cpu" else (
        f"{torch.cuda.get_device_name()} (torch rows; OpenMM on {args.threads} CPU threads of the same machine)")
    command = "python benchmarks/forcefield_speed.py" + ("" if args.device == "cpu" else f" --device {args.device}")
    caption = (f"Energy + forces, configurations per second on {where} "
               f"(`{command}`; openmm {openmm.__version__}, torch {torch.__version__}). "
               f"Best of {args.rounds} round-robin rounds (timeit's convention: slower rounds are the machine's "
               "other load), the median round beside it; ratio of the best rounds against the fastest OpenMM "
               "context loop of the same system.")
    table = markdown_table(caption, ["system", "method", "dtype", "batch", "configurations/s", "median round",
                                     "vs fastest OpenMM"],
                           [[r["system"], r["method"], r["dtype"], str(r["batch"]), f"{r['configurations_per_s']:,.0f}",
                             f"{r['median_round']:,.0f}", f"{r['vs_fastest_openmm']:.2f}×"] for r in rows],
                           text_columns=3)
    write_results("forcefield_speed" + ("" if args.device == "cpu" else f"_{args.device}"), rows, table)


if __name__ == "__main__":
    main()
