"""Reference for a peptide Boltzmann generator: parallel tempering on the batched engine + MBAR.

    mlmol build AAA --out runs/peptides/ala3.pdb
    python benchmarks/peptide_reference.py --pdb runs/peptides/ala3.pdb --name ala3 --seeds 0 1 2

For the peptide of ``--pdb`` (built by ``mlmol build`` or your own, hydrogens included) with
``--forcefield`` and ``--implicit-solvent`` at ``--temperature`` kelvin: ``--chains`` independent
temperature ladders (``--temperatures HIGH:COUNT``, geometric from the target temperature) of BAOAB
Langevin dynamics on the torch force field (float32, torch.compile unless ``--no-compile``), hydrogen
mass repartitioning to 3.024 amu (the configurational distribution is the same), friction 1/ps,
neighbour exchanges every 10 steps. Every replica starts from the PDB's structure; every peptide bond
is held trans by the flat-bottom restraint (zero within 90° of trans), in every state. After
``--equilibration-ps``, a frame every ``--interval`` steps for ``--production-ps``. For each residue,
ΔF(φ > 0 − φ < 0) at the target temperature by MBAR over all temperatures, with a bootstrap over
chains for its error; the convergence checks are ΔF from each half of the run and from the target
temperature's samples alone. Each seed is an independent repeat; the error of the mean is the larger of
the repeats' standard error and the bootstrap error of the mean.

Writes benchmarks/results/peptide_reference_NAME.json/.md, the target temperature's backbone (φ, ψ)
traces of every chain (degrees, float16) to peptide_reference_NAME_traces.npz, and the target
temperature's configurations (float32, nm) to runs/peptide_reference/NAME_seedS.npz (``--keep-samples``:
benchmarks/results/peptide_reference_samples/NAME_seedS.npz, kept with the results): the reference
samples the generator's W2 metrics are measured against, with ``--tica-ps`` of plain MD at the target
temperature from every chain's last target configuration (``md``, one trajectory per chain: the
time-ordered data TICA is fitted on, which the ladder's target slot, swapped in and out, is not;
``--add-md`` adds it to stored repeats that lack it, from each chain's last stored frame). Repeats of other seeds already stored with
the same schedule are kept, so seeds can be added one run at a time.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from pipeline import (
    REFERENCE_SAMPLES,
    RESULTS,
    beside_marks,
    combine_repeats,
    exchange_options,
    markdown_table,
    peptide_options,
    read_results,
    reference_samples,
    residue_label,
    trans_exchange,
    trans_system,
    write_results,
)

from mlmol.data import atomic_write
from mlmol.errors import MlmolError
from mlmol.geometry import dihedral_of
from mlmol.samplers.batched import BatchedLangevin
from mlmol.samplers.exchange import mbar_delta_f, temperature_ladder
from mlmol.systems.molecule import Molecule
from mlmol.systems.molecules import chiral_centres, from_pdb, handedness, read_pdb, torsion_residues


def peptide(args) -> Molecule:
    """The peptide of ``--pdb`` on the torch force field, as given (no hydrogens added)."""
    return from_pdb(args.pdb, forcefield=args.forcefield, implicit_solvent=args.implicit_solvent,
                    temperature=args.temperature, backend="torch", add_hydrogens=False)


def tica_md(molecule, starts: torch.Tensor, seed: int, args) -> tuple[torch.Tensor, float]:
    """TICA needs time-ordered MD of the target ensemble, which the ladder's target slot is not (its
    configurations are swapped in and out): ``args.tica_ps`` of plain Langevin at the target temperature
    from ``starts`` ``[chains, 3N]`` (configurations of that ensemble), restrained like the ladder, a frame
    every ``args.interval`` steps. Returns the trajectories ``[chains, frames, 3N]`` and the wall seconds."""
    started = time.perf_counter()
    system, masses = trans_system(molecule, args.compile)
    md = BatchedLangevin(system, starts, args.timestep_fs / 1000, friction=1.0, masses=masses,
                         seed=int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))
    frames = md.run(round(args.tica_ps * round(1000 / args.timestep_fs) / args.interval), args.interval)
    return frames.transpose(0, 1), time.perf_counter() - started


def add_md(args) -> None:
    """``--add-md``: MD for TICA added to stored repeats that lack it, from each chain's last stored
    target-temperature frame; the repeats' ΔF rows are unchanged."""
    molecule = peptide(args)
    rows = read_results(f"peptide_reference_{args.name}")
    for row in rows[1:]:
        file = reference_samples(args.name, row["seed"])
        if row["seed"] not in args.seeds or "tica_md" in row:
            continue
        with np.load(file) as stored:
            saved = dict(stored)
        starts = torch.from_numpy(saved["x"]).reshape(row["frames"], row["chains"], -1)[-1]
        frames, wall = tica_md(molecule, starts, row["seed"], args)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **saved, md=frames.numpy().astype(np.float32))
        atomic_write(file, buffer.getvalue())
        row["tica_md"] = {"ps": args.tica_ps, "trajectories": row["chains"], "frames": int(frames.shape[1]),
                          "wall_s": wall, "from": "each chain's last stored target-temperature frame (--add-md)"}
        print(f"seed {row['seed']}: {frames.shape[1]} frames of MD for TICA on {row['chains']} chains ({wall:.0f} s)")
    atomic_write(RESULTS / f"peptide_reference_{args.name}.json", json.dumps(rows, indent=2))


def one_repeat(seed: int, args) -> dict:
    molecule = peptide(args)
    high, count = float(args.temperatures.split(":")[0]), int(args.temperatures.split(":")[1])
    ladder = temperature_ladder(args.temperature, high, count)
    phis = [name for name in molecule.torsions if name.startswith("phi")]
    torsions = [molecule.torsions[name] for name in phis] + [molecule.torsions[name.replace("phi", "psi")]
                                                             for name in phis]
    start = torch.tensor(molecule.positions, dtype=torch.float32).reshape(1, -1)
    started = time.perf_counter()
    rex = trans_exchange(molecule, start, ladder, args, seed, compile=args.compile)
    steps_per_ps = round(1000 / args.timestep_fs)
    centres = chiral_centres(molecule.topology)
    hand = handedness(start, centres)[0]
    target_frames = []

    def observe(x: torch.Tensor) -> torch.Tensor:  # φ then ψ of each residue (degrees), 1 where a Cα flipped
        target_frames.append(x[:, 0].clone())  # the target temperature's configurations [chains, 3N]
        angles = torch.rad2deg(torch.stack([dihedral_of(x, a) for a in torsions], -1))
        flipped = (handedness(x, centres) != hand.to(x)).any(-1, keepdim=True).to(x)
        return torch.cat([angles, flipped], -1)

    n_frames = int(args.production_ps * steps_per_ps / args.interval)
    samples = rex.run(n_frames, args.interval, observe=observe)
    wall = time.perf_counter() - started
    md_frames, md_wall = tica_md(molecule, rex.md.x.reshape(args.chains, len(ladder.scales), -1)[:, 0], seed, args)
    k = len(phis)
    residues = {}
    for r, name in enumerate(phis):
        phi = samples.observed[..., r].double()
        low = phi[:, :, 0].numpy() > 0
        p = float(low.mean())
        residues[name] = {"delta_f_target_only": -math.log(p / (1 - p)) if 0 < p < 1 else None,
                          "fraction_phi_positive_target": p,
                          "chains_visiting_phi_positive": int((low.mean(0) > 0).sum())}
        try:
            delta_f, stderr, details = mbar_delta_f(samples, phi > 0, bootstrap=args.bootstrap, seed=seed)
            halves = []
            for part in (slice(0, n_frames // 2), slice(n_frames // 2, None)):
                sub = type(samples)(samples.energies[part], samples.reduced[part], samples.observed[part])
                halves.append(mbar_delta_f(sub, phi[part] > 0, bootstrap=0)[0])
        except MlmolError as error:  # a basin no temperature visited (in a half): no reference for this residue
            residues[name]["unavailable"] = str(error)
            continue
        residues[name].update(delta_f=delta_f, stderr=stderr, mbar_stderr=details["mbar_stderr"],
                              effective_samples=details["effective_samples"], delta_f_halves=halves)
    folder = REFERENCE_SAMPLES["kept" if args.keep_samples else "runs"]
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=torch.cat(target_frames).numpy().astype(np.float32),  # frame t × chains + chain
                        chains=args.chains, frames=n_frames, md=md_frames.numpy().astype(np.float32))
    atomic_write(folder / f"{args.name}_seed{seed}.npz", buffer.getvalue())
    traces = samples.observed[:, :, 0, :2 * k].numpy().astype(np.float16)  # [frames, chains, 2k]
    return {"seed": seed, "residues": residues, "acceptance": rex.acceptance().tolist(),
            "temperatures_k": (ladder.scales * args.temperature).tolist(),
            "wrong_handed_fraction_per_temperature": samples.observed[..., -1].double().mean((0, 1)).tolist(),
            "frames": n_frames, "chains": args.chains, "samples_per_state": n_frames * args.chains, "wall_s": wall,
            "tica_md": {"ps": args.tica_ps, "trajectories": args.chains, "frames": int(md_frames.shape[1]),
                        "wall_s": md_wall, "from": "each chain's last target-temperature configuration"},
            "simulated_ns": (args.equilibration_ps + args.production_ps) * args.chains * count / 1000,
            "traces": traces}


def _with_stored_repeats(name: str, rows: list[dict], traces: dict) -> tuple[list[dict], dict]:
    """``rows`` and ``traces`` joined by the stored repeats of other seeds that ran the same schedule
    (temperatures, chains, frames, MD for TICA), so repeats can be added one at a time; sorted by seed."""
    if not (RESULTS / f"peptide_reference_{name}.json").is_file():
        return rows, traces
    def schedule(row: dict) -> tuple:
        return row["temperatures_k"], row["chains"], row["frames"], row.get("tica_md", {}).get("frames")

    new = {row["seed"] for row in rows}
    kept = [row for row in read_results(f"peptide_reference_{name}")[1:]
            if row["seed"] not in new and schedule(row) == schedule(rows[0])]
    with np.load(RESULTS / f"peptide_reference_{name}_traces.npz") as stored:
        traces = {**{f"seed{row['seed']}": stored[f"seed{row['seed']}"] for row in kept}, **traces}
    return sorted(rows + kept, key=lambda row: row["seed"]), traces


def wall(row: dict, marks: dict[str, str]) -> str:
    """The ladder's wall seconds, with the mark of what else ran beside the repeat, if anything."""
    return f"{row['wall_s']:.0f}" + marks.get(row.get("beside"), "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    peptide_options(parser, "results name: peptide_reference_NAME")
    parser.add_argument("--temperatures", default="800:10", help="HIGH:COUNT (kelvin; geometric from --temperature)")
    exchange_options(parser, chains=64, equilibration_ps=100.0)
    parser.add_argument("--tica-ps", type=float, default=200.0,
                        help="plain MD at the target temperature after the ladder, one trajectory per chain, for TICA")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--beside", metavar="TEXT",
                        help="what else ran on the machine during these repeats (their wall times are then marked)")
    parser.add_argument("--tabulate", action="store_true", help="run nothing: rewrite the table from the stored repeats")
    parser.add_argument("--keep-samples", action="store_true",
                        help="write the configurations to benchmarks/results/peptide_reference_samples/ (kept with the "
                             "results, so generators can be judged without rerunning the MD) instead of runs/")
    parser.add_argument("--add-md", action="store_true",
                        help="run only the MD for TICA, for stored repeats of --seeds that lack it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.add_md:
        add_md(args)
        return
    rows = []
    for seed in [] if args.tabulate else args.seeds:
        row = one_repeat(seed, args)
        print(f"seed {seed}: " + ", ".join(f"{n} {v['delta_f']:.3f} ± {v['stderr']:.3f}" if "delta_f" in v else
                                           f"{n} none" for n, v in row["residues"].items())
              + f" kT ({row['wall_s']:.0f} s)", flush=True)
        if args.beside:
            row["beside"] = args.beside
        rows.append(row)
    if args.tabulate:  # the stored repeats (of the schedule given) as they are
        rows = read_results(f"peptide_reference_{args.name}")[1:]
    else:
        traces = {f"seed{row['seed']}": row.pop("traces") for row in rows}
        rows, traces = _with_stored_repeats(args.name, rows, traces)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **traces)
        atomic_write(RESULTS / f"peptide_reference_{args.name}_traces.npz", buffer.getvalue())
    seeds = [row["seed"] for row in rows]
    command = (f"python benchmarks/peptide_reference.py --pdb {args.pdb} --name {args.name} --forcefield "
               f"{' '.join(args.forcefield)} --implicit-solvent {args.implicit_solvent} --temperature "
               f"{args.temperature:g} --seeds {' '.join(map(str, seeds))} --chains {args.chains} --temperatures "
               f"{args.temperatures} --equilibration-ps {args.equilibration_ps:g} --production-ps "
               f"{args.production_ps:g} --timestep-fs {args.timestep_fs:g}")
    names = torsion_residues(read_pdb(args.pdb).topology) if Path(args.pdb).is_file() else {}
    summary: dict = {"name": args.name, "pdb": args.pdb, "temperature": args.temperature, "repeats": len(rows),
                     "command": command, "residue_names": names, "residues": {}}
    cells = []
    marks, footnotes = beside_marks(rows)
    for name in rows[0]["residues"]:
        label = residue_label(name, names)
        for r in rows:
            v = r["residues"][name]
            if "unavailable" in v:
                why = ("proline's ring holds φ < 0 (no φ > 0 basin)" if names.get(name) == "PRO"
                       else v["unavailable"])
                cells.append([label, str(r["seed"]), f"none: {why}", "", "", "", "", "", "", "", wall(r, marks)])
                continue
            cells.append([label, str(r["seed"]), f"{v['delta_f']:.3f} ± {v['stderr']:.3f}",
                          " / ".join(f"{h:.3f}" for h in v["delta_f_halves"]),
                          "—" if v["delta_f_target_only"] is None else f"{v['delta_f_target_only']:.3f}",
                          f"{v['chains_visiting_phi_positive']} of {r['chains']}", f"{v['effective_samples']:,.0f}",
                          f"{min(r['acceptance']):.2f}–{max(r['acceptance']):.2f}",
                          f"{max(r['wrong_handed_fraction_per_temperature']):.4f}", f"{r['simulated_ns']:.0f}", wall(r, marks)])
        available = [r["residues"][name] for r in rows if "unavailable" not in r["residues"][name]]
        if len(available) < len(rows):  # a repeat without both basins: no reference for this residue
            summary["residues"][name] = {"unavailable": f"{len(rows) - len(available)} of {len(rows)} repeats lack a basin"}
            continue
        mean, error, sd, _, _ = combine_repeats(np.array([v["delta_f"] for v in available]),
                                                np.array([v["stderr"] for v in available]))
        summary["residues"][name] = {"delta_f": mean, "stderr": error, "sd": sd}
        cells.append([f"**{label}**", "mean", f"**{mean:.3f} ± {error:.3f}**" + (f" (sd {sd:.3f})" if len(available) > 1 else ""), "", "", "", "", "", "",
                      "", ""])
    table = markdown_table(
        f"{args.name} ({args.implicit_solvent}, {args.temperature:g} K, {' '.join(args.forcefield)}): parallel "
        f"tempering on the batched engine, {args.chains} chains × {args.temperatures.split(':')[1]} temperatures "
        f"({args.temperature:g}–{args.temperatures.split(':')[0]} K), {args.production_ps:g} ps per replica after "
        f"{args.equilibration_ps:g} ps, MBAR over all temperatures (`{command}`)",
        ["residue", "seed", "ΔF(φ>0 − φ<0) (kT), MBAR ± chain bootstrap", "halves", "target temperature alone",
         "chains that saw φ > 0", "effective samples", "swap acceptance", "wrong-handed Cα (highest)", "simulated ns",
         "wall (s)"], cells)
    table += [""] + footnotes if footnotes else []
    write_results(f"peptide_reference_{args.name}", [summary, *rows], table)


if __name__ == "__main__":
    main()
