"""Reference ΔF(φ > 0 − φ < 0) of alanine dipeptide: 2D umbrella sampling on (φ, ψ) and MBAR.

    python benchmarks/ala2_reference.py --solvent implicit --seeds 0 1 2 [--jobs 2]

Independent of any Boltzmann generator. Windows on a periodic (φ, ψ) grid (default 15°,
K = 250 kJ/mol/rad² on both torsions); restraining ψ as well as φ removes the ψ
hysteresis that made φ-only windows disagree by several kT between repeats. Both peptide
bonds are held trans by a flat-bottom restraint (zero within 90° of trans): in vacuum a
strained window flipped ω to cis and the sweep carried cis through 50 later windows. Each window:
`--equilibration` then `--steps` 1-fs Langevin steps at 300 K, torsions saved every 100
steps and subsampled by their statistical inefficiency. Each seed is an independent
repeat: seed s starts from a structure pulled to STARTS[s % 3] (C7eq, αR, C7ax) with its
own Langevin noise, and odd seeds sweep the grid in the opposite direction. The error quoted
for the mean is the larger of the repeats' standard error (sd/√n) and MBAR's own error of
the mean (√Σσ²/n). ω of both peptide bonds is recorded in every window (fraction cis must
be 0). Traces go to runs/ala2_reference/ (a repeat already run with the same settings is
reused, so repeats can be added later); results to
benchmarks/results/ala2_reference_<solvent>.json and .md, and the MBAR overlap matrix of
every repeat to ala2_reference_<solvent>_overlap.npz, the ω traces (degrees, [window, frame,
bond], float16) to ala2_reference_<solvent>_omega.npz, with the largest |ω − 180°| in the table
(the trans restraint acts only beyond 90°). The table also names each repeat's furthest window:
the largest root-mean-square distance of φ or ψ from its window's centre (the median over
windows of the same measure is in the JSON). MBAR's results are cached beside the traces (it is deterministic).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from pipeline import RESULTS, combine_repeats, markdown_table, write_results

from mlmol.data import atomic_write, save_array

TRACES = Path(__file__).resolve().parent.parent / "runs" / "ala2_reference"
# marks MBAR caches made with the current subsampling (each window thinned by the largest statistical
# inefficiency of its torsions' cos/sin and its own bias energy); older caches are recomputed
SUBSAMPLING = "subsampled_by_max_g"
# (name, φ, ψ) in degrees: the minima the independent repeats start from
STARTS = [("C7eq", -83.0, 73.0), ("alphaR", -63.0, -41.0), ("C7ax", 73.0, -60.0)]


def one_repeat(solvent: str, seed: int, step_deg: float, k: float, steps: int, equilibration: int) -> dict:
    import torch

    from mlmol.samplers.md import pulled_positions
    from mlmol.samplers.umbrella import UmbrellaTraces, mbar_delta_f, umbrella, window_centres
    from mlmol.systems.molecules import PHI, PSI, alanine_dipeptide, peptide_bonds

    torch.set_num_threads(1)
    name, phi, psi = STARTS[seed % len(STARTS)]
    reverse = seed % 2 == 1
    path = TRACES / (f"{solvent}_grid{step_deg:g}_k{k:g}_steps{steps}_eq{equilibration}_trans_"
                     f"{name}{phi:g}_{psi:g}{'_reverse' if reverse else ''}_seed{seed}.npz")
    timing = path.with_suffix(".json")  # the repeat's wall time, beside its traces
    cached = path.with_suffix(".mbar.npz")  # MBAR's results on these traces (deterministic), beside them
    if path.is_file():  # this repeat was run before with the same settings: reuse its traces
        data = UmbrellaTraces.load(path)
        wall = json.loads(timing.read_text())["wall_s"] if timing.is_file() else float("nan")
    else:
        energy = alanine_dipeptide(implicit_solvent=solvent == "implicit", workers=1)
        start = time.perf_counter()
        positions = pulled_positions(energy, {"phi": phi, "psi": psi}, seed=seed)
        data = umbrella(energy, [PHI, PSI], window_centres(step_deg, 2), k, steps=steps, equilibration=equilibration,
                        interval=100, seed=seed, progress=seed == 0, hold_trans=peptide_bonds(energy.topology),
                        positions=positions, reverse=reverse)
        wall = time.perf_counter() - start
        energy.close()
        TRACES.mkdir(parents=True, exist_ok=True)
        data.save(path)
        atomic_write(timing, json.dumps({"wall_s": wall}))
    if cached.is_file() and SUBSAMPLING in np.load(cached).files:
        with np.load(cached) as f:
            value, stderr, minimum = float(f["delta_f"]), float(f["stderr"]), float(f["min_neighbour_overlap"])
            samples, overlap = int(f["samples"]), f["overlap"]
    else:
        value, stderr, details = mbar_delta_f(data)
        minimum, samples = details["min_neighbour_overlap"], int(sum(details["samples_per_window"]))
        overlap = details["overlap"].astype(np.float32)
        save_array(cached, delta_f=value, stderr=stderr, min_neighbour_overlap=minimum, samples=samples,
                   overlap=overlap, **{SUBSAMPLING: np.array(True)})
    offsets = [np.degrees(data.difference(t, c)) for t, c in zip(data.traces, data.centres, strict=True)]
    rms = np.array([np.sqrt((o**2).mean(0)) for o in offsets])  # [W, 2]: distance from the centre (degrees)
    furthest = int(rms.max(1).argmax())
    omega = np.stack([np.degrees(h) for h in data.held])  # [W, frames, bonds]
    first = np.degrees(data.centres[data.order[0]])
    return {"seed": seed, "start": name, "start_deg": [phi, psi], "sweep": "reverse" if reverse else "forward",
            "first_window_deg": [float(first[0]), float(first[1])], "delta_f": value, "mbar_stderr": stderr,
            "wall_s": wall, "min_neighbour_overlap": minimum, "cis_fraction": data.cis_fraction(),
            "max_omega_from_trans_deg": float(np.abs((omega + 360) % 360 - 180).max()), "samples": samples,
            "frames": int(sum(len(t) for t in data.traces)),
            "windows": len(data.centres), "median_window_rms_deg": float(np.median(rms.max(1))),
            "furthest_window": {"centre_deg": np.degrees(data.centres[furthest]).round(1).tolist(),
                                "rms_deg": rms[furthest].round(1).tolist(),
                                "mean_offset_deg": offsets[furthest].mean(0).round(1).tolist()},
            "overlap": overlap, "omega_deg": omega.astype(np.float16)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solvent", choices=["vacuum", "implicit"], default="implicit")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="repeats run in parallel (one core each)")
    parser.add_argument("--step-deg", type=float, default=15.0, help="grid spacing in φ and ψ (degrees)")
    parser.add_argument("--k", type=float, default=250.0, help="force constant (kJ/mol/rad²)")
    parser.add_argument("--steps", type=int, default=20_000, help="production steps per window (1 fs)")
    parser.add_argument("--equilibration", type=int, default=5_000, help="steps per window before saving")
    args = parser.parse_args()
    settings = (args.step_deg, args.k, args.steps, args.equilibration)
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one_repeat, [args.solvent] * len(args.seeds), args.seeds,
                             *[[s] * len(args.seeds) for s in settings]))
    import io

    for kind, arrays in (("overlap", {f"seed{r['seed']}": np.where(o < 1e-4, 0, o)  # 0 below 1e-4: compresses
                                       for r in rows for o in [r.pop("overlap")]}),
                         ("omega", {f"seed{r['seed']}": r.pop("omega_deg") for r in rows})):
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write(RESULTS / f"ala2_reference_{args.solvent}_{kind}.npz", buffer.getvalue())
    values = np.array([r["delta_f"] for r in rows])
    mean, sem, sd, sem_repeats, sem_mbar = combine_repeats(values, np.array([r["mbar_stderr"] for r in rows]))
    command = (f"python benchmarks/ala2_reference.py --solvent {args.solvent} --seeds "
               f"{' '.join(map(str, args.seeds))} --step-deg {args.step_deg:g} --k {args.k:g} --steps {args.steps} "
               f"--equilibration {args.equilibration}")
    caption = (f"Alanine dipeptide ({args.solvent}, 300 K, amber99sbildn): 2D umbrella sampling on (φ, ψ) + MBAR, "
               f"{rows[0]['windows']} windows ({args.step_deg:g}° grid, K = {args.k:g} kJ/mol/rad²) x "
               f"{args.steps / 1000:g} ps (`{command}`).")
    table = markdown_table(caption, ["seed", "start", "sweep", "ΔF(φ>0 − φ<0) (kT)", "MBAR stderr",
                                     "min window overlap", "furthest window: (φ, ψ) RMS from centre",
                                     "ω: max from trans", "uncorrelated samples of frames", "wall (s)"],
                           [[str(r["seed"]), r["start"], r["sweep"], f"{r['delta_f']:.3f}", f"{r['mbar_stderr']:.3f}",
                             f"{r['min_neighbour_overlap']:.3f}",
                             "({:g}°, {:g}°): {:g}° / {:g}°".format(*r["furthest_window"]["centre_deg"],
                                                                   *r["furthest_window"]["rms_deg"]),
                             f"{r['max_omega_from_trans_deg']:.0f}° (cis {r['cis_fraction']:.0%})",
                             f"{r['samples']:,} of {r['frames']:,}",
                             "(reused traces)" if math.isnan(r["wall_s"]) else f"{r['wall_s']:.0f}"]
                            for r in rows], text_columns=3)
    table += ["", (f"Reference: ΔF = {mean:.3f} ± {sem:.3f} kT (mean of {len(values)} independent repeats; "
                   f"error the larger of their standard error {sem_repeats:.3f} (sd {sd:.3f}) and MBAR's error of "
                   f"the mean {sem_mbar:.3f}).")]
    summary = {"solvent": args.solvent, "delta_f": mean, "stderr": sem, "sd": float(sd),
               "stderr_repeats": float(sem_repeats), "stderr_mbar": sem_mbar, "repeats": len(values),
               "cis_fraction": max(r["cis_fraction"] for r in rows), "command": command}
    write_results(f"ala2_reference_{args.solvent}", [summary, *rows], table)


if __name__ == "__main__":
    main()
