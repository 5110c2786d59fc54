"""Configurations per second with forces: the native torch force field against OpenMM.

    python benchmarks/forcefield_speed.py [--batches 1 256 4096] [--seconds 2] [--threads 2] [--device cuda]

For alanine dipeptide in vacuum and in implicit solvent (OBC2), side by side in one run:

- OpenMM, one context looping over the configurations in this process, on the Reference
  platform (one core) and the CPU platform with ``--threads`` threads, energies and forces as
  NumPy arrays; with ``--device cuda`` also on OpenMM's CUDA platform (the ``openmm-cuda-12``
  package; the benchmark stops if it is missing);
- the OpenMM bridge of mlmol with one Reference worker process per thread (``--threads``
  workers), OpenMM's fastest CPU path for a small molecule at equal cores;
- mlmol's torch force field, energy + forces by autograd, at each batch size, float32 and
  float64, eager and through ``torch.compile`` (``ForceField(system, compile=True)``; it falls
  back to eager with a warning where no C++ compiler is found).

A round's rate is the batch size over the median wall time of repeated calls (at least
``--seconds`` of calls). All rows of a system are measured in ``--rounds`` round-robin rounds, so
that the machine's slow spells (this is a shared 2-core VM, where two-thread rows sometimes run
at half speed) fall on every row alike; each row reports its best round, as timeit does, and
its median round. Ratios are between best rounds, against the fastest OpenMM row of the
system: every OpenMM row uses at most ``--threads`` cores (or the GPU), as the torch rows do.
Writes benchmarks/results/forcefield_speed.json/.md; with ``--device cuda`` the torch rows run on
the GPU and the results go to forcefield_speed_cuda.json/.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import openmm
import torch
from pipeline import RESULTS, markdown_table, write_results

from mlmol.data import atomic_write
from mlmol.systems.forcefield import ForceField
from mlmol.systems.molecules import alanine_dipeptide
from mlmol.systems.openmm_bridge import OpenMMBridge

# the arithmetic of each OpenMM platform as run here: Reference is double precision, CPU computes
# forces in single and accumulates in double, CUDA is set to single (its fastest)
OPENMM_PRECISION = {"Reference": "float64", "CPU": "mixed", "CUDA": "float32"}


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
    properties = {"CPU": {"Threads": str(threads)}, "CUDA": {"Precision": "single"}}.get(platform, {})
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
def bridge_call(system, x: np.ndarray, workers: int):
    """A call of mlmol's OpenMM bridge (``workers`` Reference workers) on ``x``; the workers stop afterwards."""
    with OpenMMBridge(system, platform="Reference", workers=workers) as bridge:
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
    platforms = ("Reference", "CPU") + (("CUDA",) if args.device.startswith("cuda") else ())
    rows = [(f"OpenMM context loop ({platform}{f', {args.threads} threads' if platform == 'CPU' else ''})",
             OPENMM_PRECISION[platform], len(x_openmm),
             lambda platform=platform: openmm_loop(system, x_openmm, platform, args.threads), None)
            for platform in platforms]
    rows.append((f"OpenMM bridge, {args.threads} workers (Reference)", "float64", len(x_openmm),
                 lambda: bridge_call(system, x_openmm, args.threads), None))
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
    parser.add_argument("--tabulate", type=Path, metavar="JSON",
                        help="measure nothing: redraw the tables from a stored results file")
    args = parser.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available() and not args.tabulate:
        parser.error(f"--device {args.device} needs a CUDA GPU, and torch sees none")
    known = {openmm.Platform.getPlatform(k).getName() for k in range(openmm.Platform.getNumPlatforms())}
    if args.device.startswith("cuda") and "CUDA" not in known and not args.tabulate:
        parser.error("the fair GPU baseline is OpenMM's CUDA platform, which is not installed: "
                     "pip install openmm-cuda-12 (its version must match openmm's)")
    command = "python benchmarks/forcefield_speed.py" + "".join(  # the flags that differ from the defaults
        f" --{name.replace('_', '-')}" + ("" if value is True else " " + " ".join(map(str, np.atleast_1d(value))))
        for name, value in vars(args).items() if value != parser.get_default(name) and name != "tabulate")
    if args.tabulate:
        render(json.loads(args.tabulate.read_text()))
        return
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
        for (method, dtype, batch, _, first), value, spread in zip(calls, best, rates, strict=True):
            rows.append({"system": name, "method": method, "dtype": dtype, "batch": batch,
                         "configurations_per_s": value, "median_round": statistics.median(spread),
                         "rounds": spread, "first_call_s": first, "threads": args.threads, "device": args.device,
                         "device_name": torch.cuda.get_device_name() if args.device != "cpu" else "CPU",
                         "command": command, "openmm": openmm.__version__, "torch": torch.__version__})
    render(rows)


def baselines(rows: list[dict]) -> dict[str, dict]:
    """The fastest OpenMM row of each system: the equal-core baseline."""
    openmm = [r for r in rows if r["method"].startswith("OpenMM")]
    return {system: max((r for r in openmm if r["system"] == system), key=lambda r: r["configurations_per_s"])
            for system in dict.fromkeys(r["system"] for r in openmm)}


def render(rows: list[dict]) -> None:
    """Write the JSON rows, the full table (NAME.md) and the summary at batch 4096 (NAME_summary.md)."""
    first = rows[0]
    name = "forcefield_speed" + ("" if first["device"] == "cpu" else f"_{first['device']}")
    fastest = baselines(rows)
    fair = first["device"] == "cpu" or any("(CUDA" in r["method"] for r in rows)
    for r in rows:
        r.pop("vs_fastest_openmm", None)
        if fair:
            r["vs_fastest_openmm"] = r["configurations_per_s"] / fastest[r["system"]]["configurations_per_s"]
    cores = f"{first['threads']} CPU cores"  # on a GPU machine, OpenMM's CPU platform used that many threads
    where = cores if first["device"] == "cpu" else (f"{first['device_name']} (torch rows; OpenMM's CPU rows on the "
                                                    "same machine, as many cores as each row's method names)")
    ratio_note = ("ratio of the best rounds against the fastest OpenMM row of the same system, the equal-core "
                  "baseline: no OpenMM row uses more cores than the torch rows" if fair else
                  "no ratio: OpenMM's CUDA platform was not measured, and OpenMM on the CPU (one core for the "
                  "Reference loop, one per worker for the bridge) is no fair baseline for a GPU")
    provenance = f" {first['provenance']}" if "provenance" in first else ""
    caption = (f"Energy + forces, configurations per second on {where} ({made_by(first)}; openmm "
               f"{first['openmm']}, torch {first['torch']}, {first['threads']} torch threads). Best of "
               f"{len(first['rounds'])} round-robin rounds (timeit's convention: slower rounds are the machine's "
               f"other load), the median round beside it; {ratio_note}.{provenance}")
    headers = ["system", "method", "dtype", "batch", "configurations/s", "median round"] + (
        ["vs fastest OpenMM"] if fair else [])
    table = markdown_table(caption, headers, [
        [r["system"], r["method"], r["dtype"], str(r["batch"]), f"{r['configurations_per_s']:,.0f}",
         f"{r['median_round']:,.0f}", *([f"{r['vs_fastest_openmm']:.2f}×"] if fair else [])] for r in rows],
        text_columns=3)
    write_results(name, rows, table)
    atomic_write(RESULTS / f"{name}_summary.md", "\n".join(summary(rows, fastest, fair, name)) + "\n")


def made_by(row: dict) -> str:
    """The command that made a run, or for a run of an earlier version of this script (``provenance``), that."""
    command = f"`{row['command']}`"
    return command if "provenance" not in row else f"an earlier version of this script, run as {command}"


def summary(rows: list[dict], fastest: dict[str, dict], fair: bool, name: str = "forcefield_speed") -> list[str]:
    """The docs' table: each system's OpenMM rows and the torch rows at the largest batch, with ratios
    and, on the CPU, the goal (3× in vacuum, 10× in implicit solvent) met or not by the fastest torch row."""
    on_cpu = rows[0]["device"] == "cpu"
    batch = max(r["batch"] for r in rows if r["method"].startswith("torch"))
    goals = {"alanine-dipeptide": 3.0, "alanine-dipeptide-implicit": 10.0}
    openmm_methods = list(dict.fromkeys(r["method"] for r in rows if r["method"].startswith("OpenMM")))
    cells = []
    for system, base in fastest.items():
        mine = [r for r in rows if r["system"] == system]
        rate = {(r["method"], r["dtype"], r["batch"]): r for r in mine}
        cell = [f"{r['configurations_per_s']:,.0f}" for m in openmm_methods for r in mine if r["method"] == m]

        def median_ratio(r: dict, base: dict = base) -> float:  # median round against the baseline's
            return r["median_round"] / base["median_round"]

        for method in ("torch eager", "torch.compile"):
            cell.append(" / ".join(
                f"{r['configurations_per_s']:,.0f}" + (f" ({r['vs_fastest_openmm']:.2f}×; {median_ratio(r):.2f}×)"
                                                        if fair else "")
                for dtype in ("float32", "float64") if (r := rate.get((method, dtype, batch)))))
        if fair and on_cpu and system in goals:  # met when the fastest torch row's best and median ratios both are
            torch_rows = [r for r in mine if r["batch"] == batch and r["method"].startswith("torch")]
            met = max(min(r["vs_fastest_openmm"], median_ratio(r)) for r in torch_rows) >= goals[system]
            cell.append(f"{goals[system]:g}×: {'✓' if met else '✗'}")
        cells.append([system, *cell])
    headers = ["system", *openmm_methods, f"torch eager f32 / f64, batch {batch:,}",
               f"torch.compile f32 / f64, batch {batch:,}"] + (["goal"] if fair and on_cpu else [])
    ratio = ("ratios against the fastest OpenMM row, best round against best round; median against median"
             if fair else "no ratios: see the full table's caption")
    return markdown_table(f"Configurations per second with forces ({made_by(rows[0])}; {ratio}; every row "
                          f"is in benchmarks/results/{name}.md):", headers, cells)


if __name__ == "__main__":
    main()
