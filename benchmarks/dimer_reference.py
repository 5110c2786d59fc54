"""Reference ΔF(open − closed) of the solvated dimer at kT = 1: umbrella sampling along the dimer distance + MBAR.

    python benchmarks/dimer_reference.py [--seeds 0 1 2] [--jobs 2]

Independent of any Boltzmann generator. Windows at d = 0.7, 0.75, ..., 2.3 with K = 500 kT
per unit² (the paper's force constant), ``--chains`` Metropolis chains per window started from
the paper's lattice with the dimer at the window's distance, ``--burn`` sweeps of burn-in,
then ``--steps`` sweeps recording d every 10. A sweep moves each particle once (single-particle
moves of 0.1, about 40% accepted); ``--moves all`` runs the paper's all-particle steps instead
(0.02 per coordinate, d every 50 steps), whose repeats disagreed by far more than MBAR's error (see
docs/particles.md). MBAR (pymbar) reweights all windows; each seed
is an independent repeat and the spread of the repeats is quoted with MBAR's own error. Seeds 0 and 1
start each window's chains from the lattice with the dimer at the window's distance; seed 2 (3)
starts every window from the closed (open) lattice, ``lattice(0.7)`` (``lattice(2.3)``), and lets the
restraint pull it.
Open is d > 1.5, closed d < 1.5. Traces are cached in runs/dimer/; results go to
benchmarks/results/dimer_reference.json/.md and the profile to dimer_reference_profile.npz there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from pipeline import RESULTS, combine_repeats, markdown_table, write_results

from mlmol.data import atomic_write, save_array
from mlmol.samplers.umbrella import UmbrellaTraces, mbar_delta_f, mbar_profile, umbrella_mcmc
from mlmol.systems.particles import SolvatedDimer, dimer_distance

TRACES = Path(__file__).resolve().parent.parent / "runs" / "dimer"
CENTRES = np.round(np.arange(0.7, 2.3001, 0.05), 3)
# seed: the lattice every window starts from, SolvatedDimer.lattice(d) (which scales everything by 1.05,
# so d = 0.7 puts the dimer at 0.735, closed); the restraint pulls it to the window's centre during
# burn-in. Seeds not listed start each window from lattice(centre).
STARTS = {2: 0.7, 3: 2.3}
K = 500.0
EDGES = np.linspace(0.7, 2.3, 65)


def is_open(theta: np.ndarray) -> np.ndarray:
    return theta[:, 0] > 1.5


def repeat(seed: int, steps: int, burn: int, chains: int, step: float, moves: str) -> tuple[dict, UmbrellaTraces]:
    torch.set_num_threads(1)
    tag = ("" if moves == "all" else f"_{moves}") + (f"_from{STARTS[seed]:g}" if seed in STARTS else "")
    path = TRACES / f"umbrella{tag}_k{K:g}_steps{steps}_burn{burn}_chains{chains}_step{step:g}_seed{seed}.npz"
    wall = float("nan")
    timing = path.with_suffix(".json")  # the wall time of the run that made the cached traces
    if path.is_file():
        data = UmbrellaTraces.load(path)
        wall = json.loads(timing.read_text())["wall_s"] if timing.is_file() else wall
    else:
        system = SolvatedDimer()
        started = time.perf_counter()
        start = system.lattice if seed not in STARTS else (lambda centre, d=STARTS[seed]: system.lattice(d))
        data = umbrella_mcmc(system, dimer_distance, CENTRES, K, start, steps=steps, burn=burn,
                             interval=50 if moves == "all" else 10, chains=chains, step=step, seed=seed,
                             progress=True, moves=moves)
        wall = time.perf_counter() - started
        TRACES.mkdir(parents=True, exist_ok=True)
        data.save(path)
        atomic_write(timing, json.dumps({"wall_s": wall}))
    value, stderr, details = mbar_delta_f(data, is_open)
    start = f"lattice({STARTS[seed]:g})" if seed in STARTS else "lattice(centre)"
    return {"seed": seed, "start": start, "delta_f": value, "mbar_stderr": stderr, "wall_s": wall,
            "min_neighbour_overlap": details["min_neighbour_overlap"],
            "samples": int(sum(details["samples_per_window"]))}, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--moves", choices=["particle", "all"], default="particle",
                        help="particle: sweeps of single-particle moves (default); all: the paper's all-particle moves")
    parser.add_argument("--steps", type=int, help="sampling steps (sweeps); default 20,000 (all: 40,000)")
    parser.add_argument("--burn", type=int, help="burn-in steps (sweeps); default 2,000 (all: 10,000)")
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--step", type=float, help="move size per coordinate; default 0.1 (all: 0.02)")
    parser.add_argument("--jobs", type=int, default=1, help="repeats run in parallel (one core each)")
    args = parser.parse_args()
    particle = args.moves == "particle"
    args.steps = args.steps or (20_000 if particle else 40_000)
    args.burn = args.burn or (2_000 if particle else 10_000)
    args.step = args.step or (0.1 if particle else 0.02)
    torch.set_num_threads(1)
    settings = (args.steps, args.burn, args.chains, args.step, args.moves)
    with ProcessPoolExecutor(args.jobs) as pool:
        repeats = list(pool.map(repeat, args.seeds, *[[s] * len(args.seeds) for s in settings]))
    rows = [row for row, _ in repeats]
    profiles = [mbar_profile(data, EDGES) for _, data in repeats]
    mean, error, _, spread, mbar = combine_repeats(np.array([r["delta_f"] for r in rows]),
                                                   np.array([r["mbar_stderr"] for r in rows]))
    summary = {"seed": "mean", "delta_f": mean, "repeat_stderr": spread, "mbar_stderr": mbar,
               "settings": vars(args) | {"force_constant": K, "windows": len(CENTRES)},
               "command": " ".join(["python benchmarks/dimer_reference.py", *sys.argv[1:]])}
    f = np.nanmean([p.f for p in profiles], 0)
    save_array(RESULTS / "dimer_reference_profile.npz", edges=EDGES, f=f - np.nanmin(f),
               stderr=np.sqrt(np.nanmean([p.stderr**2 for p in profiles], 0) / len(profiles)))
    cells = [[str(r["seed"]), r["start"], f"{r['delta_f']:.3f} ± {r['mbar_stderr']:.3f}",
              f"{r['min_neighbour_overlap']:.3f}", f"{r['samples']:,}", f"{r['wall_s'] / 60:.1f}"] for r in rows]
    cells.append(["mean", "", f"{mean:.3f} ± {error:.3f}", "", "", ""])
    table = markdown_table(
        f"Solvated dimer ΔF(open − closed) at kT = 1 by umbrella sampling + MBAR "
        f"(`{summary['command']}`; {len(CENTRES)} windows, K = {K:g}); the mean's error is the larger "
        "of the repeat spread and MBAR's:",
        ["seed", "windows start at", "ΔF (kT)", "min. neighbour overlap", "samples (decorrelated)", "wall (min)"],
        cells, text_columns=2)
    write_results("dimer_reference", [*rows, summary], table)


if __name__ == "__main__":
    main()
