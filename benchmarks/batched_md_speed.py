"""Aggregate MD throughput: mlmol's batched Langevin engine against OpenMM's fastest MD paths.

    python benchmarks/batched_md_speed.py [--replicas 1 4 16 64 256 1024 4096] [--seconds 5] [--threads 2]

For alanine dipeptide in vacuum and in implicit solvent (amber99sbildn + OBC2), side by side in one
run, every row on at most ``--threads`` cores, all with the same masses (hydrogen mass
repartitioning to 3.024 amu) and the same 4 fs step, no constraints, so that both sample the
same configurational distribution:

- OpenMM's LangevinMiddleIntegrator stepping in C++ (``integrator.step``), as one process per
  core on the Reference platform, one single-thread CPU-platform process per core, and one
  CPU-platform process with ``--threads`` threads; the processes of a row run at the same time
  and their step rates add up;
- mlmol's :class:`~mlmol.samplers.batched.BatchedLangevin` (BAOAB) over R replicas, float32, the
  force field through ``torch.compile`` (and eager at the largest R), ``--threads`` torch threads.

Each row runs ``--rounds`` times round-robin (a shared VM has slow spells); a row reports its best
round. ns/day is the aggregate simulated time: steps per second × 4 fs; the ratio is against the
fastest OpenMM row of the system (equal time steps, so it is the ratio of step rates). The 1 fs
column is what the same step rates give at OpenMM's usual unconstrained step without
repartitioning. Writes benchmarks/results/batched_md_speed.json/.md and a one-row-per-system
summary, batched_md_speed_summary.md; ``--tabulate`` rewrites both tables from the stored JSON.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from functools import partial

import numpy as np
import openmm
import torch
from pipeline import RESULTS, langevin_context, markdown_table, read_results, write_results

from mlmol.data import atomic_write
from mlmol.samplers import MolecularDynamics
from mlmol.samplers.batched import BatchedLangevin
from mlmol.systems.molecules import alanine_dipeptide

HYDROGEN_MASS = 3.024  # amu: 4 fs is stable without constraints (tests/test_batched_md.py)
TIMESTEP_FS = 4.0


def ns_per_day(steps_per_second: float, timestep_fs: float) -> float:
    return steps_per_second * timestep_fs * 1e-6 * 86400


def openmm_worker(xml: str, masses: list[float], positions: np.ndarray, platform: str, threads: int,
                  seconds: float, start, queue) -> None:
    """Steps one OpenMM context for ``seconds`` after everyone reached ``start``; puts its steps/s."""
    context, integrator = langevin_context(xml, masses, positions, platform, TIMESTEP_FS, seed=1, threads=threads)
    integrator.step(200)
    start.wait()
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        integrator.step(100)
        steps += 100
    rate = steps / (time.perf_counter() - started)
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    queue.put(rate if np.isfinite(energy) and abs(energy) < 1e6 else float("nan"))


def openmm_rate(molecule, positions: np.ndarray, platform: str, processes: int, threads: int, seconds: float) -> float:
    """Aggregate steps/s of ``processes`` OpenMM processes running at once."""
    ctx = mp.get_context("spawn")
    start, queue = ctx.Barrier(processes), ctx.Queue()
    xml = openmm.XmlSerializer.serialize(molecule.system)
    masses = molecule.repartitioned_masses(HYDROGEN_MASS).tolist()
    workers = [ctx.Process(target=openmm_worker, args=(xml, masses, positions, platform, threads, seconds, start, queue))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    rates = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    return float(sum(rates))


def torch_rate(molecule, positions: np.ndarray, replicas: int, seconds: float) -> float:
    """Replica-steps/s of the batched engine on ``molecule`` (already compiled or not)."""
    x = torch.tensor(positions, dtype=torch.float32)[None].repeat(replicas, 1)
    masses = torch.tensor(molecule.repartitioned_masses(HYDROGEN_MASS), dtype=torch.float32)
    md = BatchedLangevin(molecule, x, TIMESTEP_FS / 1000, 1.0, masses=masses, seed=0)
    md.step(20)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or steps < 20:
        md.step(10)
        steps += 10
    return replicas * steps / (time.perf_counter() - started)


def tabulate(results: list[dict]) -> None:
    """The full table (batched_md_speed.md) and the summary (batched_md_speed_summary.md) from the rows."""
    threads, rounds = results[0]["threads"], results[0].get("rounds", 2)
    cells = [[r["system"], r["row"], f"{r['steps_per_s']:,.0f}", f"{r['ns_per_day']:,.0f}",
              f"{r['ns_per_day_at_1fs']:,.1f}", f"{r['ratio_to_fastest_openmm']:.2f}×"] for r in results]
    table = markdown_table(
        f"Aggregate MD throughput on {threads} cores (`python benchmarks/batched_md_speed.py`): alanine dipeptide, "
        f"300 K, {TIMESTEP_FS:g} fs with hydrogens at {HYDROGEN_MASS} amu, no constraints, best of {rounds} "
        "round-robin rounds; the ratio is against the fastest OpenMM row of the system.",
        ["system", "engine", "(replica-)steps/s", f"ns/day at {TIMESTEP_FS:g} fs", "ns/day at 1 fs", "ratio"],
        cells, text_columns=2)
    write_results("batched_md_speed", results, table)
    summary = []
    for system in dict.fromkeys(r["system"] for r in results):
        rows = [r for r in results if r["system"] == system]
        openmm_best = max((r for r in rows if r["engine"] == "openmm"), key=lambda r: r["steps_per_s"])
        torch_best = max((r for r in rows if r["engine"] == "torch"), key=lambda r: r["steps_per_s"])
        summary.append([system, f"{openmm_best['ns_per_day'] / 1000:,.1f} ({openmm_best['row']})",
                        f"{torch_best['ns_per_day'] / 1000:,.1f} ({torch_best['row'].removeprefix('mlmol batched, ')})",
                        f"{torch_best['ratio_to_fastest_openmm']:.1f}×"])
    lines = markdown_table(
        f"Aggregate µs/day of MD on {threads} CPU cores, both engines at {TIMESTEP_FS:g} fs with the same repartitioned "
        "masses (`python benchmarks/batched_md_speed.py`; every row is in benchmarks/results/batched_md_speed.md):",
        ["system", "OpenMM, fastest path", "mlmol batched engine, best replica count", "ratio"], summary)
    atomic_write(RESULTS / "batched_md_speed_summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024, 4096])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of stepping per row and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tabulate", action="store_true", help="measure nothing: rewrite the tables from the JSON")
    args = parser.parse_args()
    if args.tabulate:
        tabulate(read_results("batched_md_speed"))
        return
    torch.set_num_threads(args.threads)
    results = []
    for implicit in (False, True):
        molecule = alanine_dipeptide(implicit_solvent=implicit, backend="torch")
        positions = MolecularDynamics(molecule, equilibration=0).positions()[0].numpy()  # minimised
        compiled = molecule.evaluated_in(None, compile=True)
        eager = molecule.evaluated_in(None, compile=False)
        started = time.perf_counter()
        torch_rate(compiled, positions, max(args.replicas), 0.0)  # compiles
        print(f"{molecule.name}: compiled in {time.perf_counter() - started:.0f} s", flush=True)
        rows = [(f"OpenMM Reference, {args.threads} processes", "openmm",
                 partial(openmm_rate, molecule, positions, "Reference", args.threads, 1, args.seconds)),
                (f"OpenMM CPU 1 thread, {args.threads} processes", "openmm",
                 partial(openmm_rate, molecule, positions, "CPU", args.threads, 1, args.seconds)),
                (f"OpenMM CPU {args.threads} threads, 1 process", "openmm",
                 partial(openmm_rate, molecule, positions, "CPU", 1, args.threads, args.seconds))]
        rows += [(f"mlmol batched, torch.compile f32, {r:,} replicas", "torch",
                  partial(torch_rate, compiled, positions, r, args.seconds)) for r in args.replicas]
        rows.append((f"mlmol batched, eager f32, {max(args.replicas):,} replicas", "torch",
                     partial(torch_rate, eager, positions, max(args.replicas), args.seconds)))
        best = {label: 0.0 for label, _, _ in rows}
        for round_ in range(args.rounds):
            for label, _, measure in rows:
                rate = measure()
                best[label] = max(best[label], rate)
                print(f"{molecule.name} round {round_}: {label}: {rate:,.0f} steps/s", flush=True)
        fastest = max(best[label] for label, engine, _ in rows if engine == "openmm")
        for label, engine, _ in rows:
            rate = best[label]
            results.append({"system": molecule.name, "row": label, "engine": engine, "steps_per_s": rate,
                            "ns_per_day": ns_per_day(rate, TIMESTEP_FS), "ns_per_day_at_1fs": ns_per_day(rate, 1.0),
                            "ratio_to_fastest_openmm": rate / fastest, "threads": args.threads,
                            "timestep_fs": TIMESTEP_FS, "hydrogen_mass_amu": HYDROGEN_MASS, "rounds": args.rounds})
    tabulate(results)

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the OpenMM worker processes inherit it
    main()
