"""Reference ΔF(φ > 0 − φ < 0) of alanine dipeptide by parallel tempering on the batched engine + MBAR.

    python benchmarks/ala2_exchange_reference.py --solvent vacuum --seeds 0 1 2

Independent of the 2D umbrella reference (benchmarks/ala2_reference.py) and of any generator:
``--chains`` independent temperature ladders (``--temperatures LOW:HIGH:COUNT`` kelvin,
geometric) of BAOAB Langevin dynamics on the torch force field (float32, torch.compile), hydrogen
mass repartitioning to 3.024 amu (the configurational distribution is the same) and
``--timestep-fs`` steps (default 3 fs: hot replicas move faster than 4 fs allows), friction 1/ps,
neighbour exchanges every 10 steps. Every replica starts from the minimised shipped
structure (φ < 0): the ladder must find φ > 0 by itself. Both peptide bonds are held trans by
the same flat-bottom restraint as the umbrella reference (zero within 90° of trans), in every
state. After ``--equilibration-ps``, a frame every ``--interval`` steps for ``--production-ps``;
MBAR (pymbar) over all temperatures gives ΔF at LOW, with a bootstrap over chains (independent by
construction) for its error; ΔF from the lowest temperature's samples alone and from each half
of the run are the convergence checks. Each seed is an independent repeat (its own velocities,
noise and swap draws); the error of the mean is the larger of the repeats' standard error and
the bootstrap error of the mean. Samples go to runs/ala2_exchange_reference/; results to
benchmarks/results/ala2_exchange_reference_<solvent>.json/.md and the lowest temperature's
(φ, ψ) traces of every chain (degrees, float16) to ala2_exchange_reference_<solvent>_traces.npz.
"""

from __future__ import annotations

import argparse
import io
import math
import time
from pathlib import Path

import numpy as np
import torch
from pipeline import (
    RESULTS,
    combine_repeats,
    exchange_options,
    markdown_table,
    read_results,
    trans_exchange,
    write_results,
)

from mlmol.data import atomic_write, save_torch
from mlmol.geometry import dihedral_of
from mlmol.samplers import MolecularDynamics
from mlmol.samplers.exchange import mbar_delta_f, temperature_ladder
from mlmol.systems.molecules import PHI, PSI, alanine_dipeptide, chiral_centres, handedness, peptide_bonds

SAMPLES = Path(__file__).resolve().parent.parent / "runs" / "ala2_exchange_reference"


def c7ax(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """The C7ax basin (degrees): φ in (0°, 120°), ψ in (−150°, 0°)."""
    return (phi > 0) & (phi < 120) & (psi > -150) & (psi < 0)


def one_repeat(solvent: str, seed: int, args) -> dict:
    molecule = alanine_dipeptide(implicit_solvent=solvent == "implicit", backend="torch")
    low, high, count = (float(v) for v in args.temperatures.split(":"))
    count = int(count)
    ladder = temperature_ladder(low, high, count)
    omegas = peptide_bonds(molecule.topology)
    start = MolecularDynamics(molecule, seed=seed, equilibration=0).positions()[0].float()
    started = time.perf_counter()
    rex = trans_exchange(molecule, start[None], ladder, args, seed)
    steps_per_ps = round(1000 / args.timestep_fs)

    centres = chiral_centres(molecule.topology)
    hand = handedness(start[None], centres)[0]

    def observe(x: torch.Tensor) -> torch.Tensor:  # φ, ψ, ω1, ω2 (degrees), then 1 where a Cα changed hand
        angles = torch.rad2deg(torch.stack([dihedral_of(x, a) for a in (PHI, PSI, *omegas)], -1))
        flipped = (handedness(x, centres) != hand.to(x)).any(-1, keepdim=True).to(x)
        return torch.cat([angles, flipped], -1)

    n_frames = int(args.production_ps * steps_per_ps / args.interval)
    samples = rex.run(n_frames, args.interval, observe=observe)
    wall = time.perf_counter() - started
    SAMPLES.mkdir(parents=True, exist_ok=True)
    save_torch({"samples": vars(samples), "acceptance": rex.acceptance(), "args": vars(args)},
               SAMPLES / f"{solvent}_seed{seed}.pt")
    phi, psi, omega = (samples.observed[..., 0].double(), samples.observed[..., 1].double(),
                       samples.observed[..., 2:4].double())
    wrong_handed = samples.observed[..., 4].double().mean((0, 1))  # per temperature
    delta_f, stderr, details = mbar_delta_f(samples, phi > 0, bootstrap=args.bootstrap, seed=seed)
    halves = []
    for part in (slice(0, n_frames // 2), slice(n_frames // 2, None)):
        sub = type(samples)(samples.energies[part], samples.reduced[part], samples.observed[part])
        halves.append(mbar_delta_f(sub, phi[part] > 0, bootstrap=0)[0])
    low_phi = phi[:, :, 0].numpy()
    p = float((low_phi > 0).mean())
    per_chain = (low_phi > 0).mean(0)
    lowest_alone = -math.log(p / (1 - p))
    lowest_stderr = float(per_chain.std(ddof=1) / math.sqrt(args.chains) / (p * (1 - p)))
    omega_from_trans = 180.0 - np.abs(omega.numpy())  # |ω − 180°|
    traces = np.stack([low_phi, psi[:, :, 0].numpy()], -1).astype(np.float16)  # [frames, chains, 2]
    return {"solvent": solvent, "seed": seed, "delta_f": delta_f, "stderr": stderr,
            "mbar_stderr": details["mbar_stderr"], "effective_samples_low": details["effective_samples"],
            "delta_f_lowest_only": lowest_alone, "stderr_lowest_only": lowest_stderr,
            "delta_f_halves": halves, "fraction_phi_positive_low": p,
            "fraction_c7ax_low": float(c7ax(low_phi, psi[:, :, 0].numpy()).mean()),
            "chains_visiting_phi_positive_low": int((per_chain > 0).sum()), "chains": args.chains,
            "acceptance": rex.acceptance().tolist(), "temperatures_k": (ladder.scales * low).tolist(),
            "max_omega_from_trans_deg": float(omega_from_trans.max()),
            "wrong_handed_fraction_per_temperature": wrong_handed.tolist(),
            "start_phi_psi_deg": [float(v) for v in observe(start[None])[0, :2]],
            "frames": n_frames, "samples_per_state": n_frames * args.chains, "wall_s": wall,
            "simulated_ns": (args.equilibration_ps + args.production_ps) * args.chains * count / 1000,
            "traces": traces}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solvent", choices=["vacuum", "implicit"], required=True)
    parser.add_argument("--temperatures", default="300:1000:9", help="LOW:HIGH:COUNT kelvin")
    exchange_options(parser, chains=96, equilibration_ps=75.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        row = one_repeat(args.solvent, seed, args)
        print(f"seed {seed}: ΔF = {row['delta_f']:.3f} ± {row['stderr']:.3f} kT ({row['wall_s']:.0f} s)", flush=True)
        rows.append(row)
    traces = {f"seed{row['seed']}": row.pop("traces") for row in rows}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **traces)
    atomic_write(RESULTS / f"ala2_exchange_reference_{args.solvent}_traces.npz", buffer.getvalue())
    values, errors = np.array([r["delta_f"] for r in rows]), np.array([r["stderr"] for r in rows])
    mean, error, sd, _, _ = combine_repeats(values, errors)
    umbrella = read_results(f"ala2_reference_{args.solvent}")[0]
    difference = mean - umbrella["delta_f"]
    command = (f"python benchmarks/ala2_exchange_reference.py --solvent {args.solvent} --seeds "
               f"{' '.join(map(str, args.seeds))} --chains {args.chains} --temperatures {args.temperatures} "
               f"--equilibration-ps {args.equilibration_ps:g} --production-ps {args.production_ps:g} --timestep-fs "
               f"{args.timestep_fs:g}")
    summary = {"solvent": args.solvent, "delta_f": mean, "stderr": error, "sd": sd, "repeats": len(rows),
               "umbrella_delta_f": umbrella["delta_f"], "umbrella_stderr": umbrella["stderr"],
               "difference": difference, "within_0.15_kT": abs(difference) <= 0.15,
               "combined_sigma": math.hypot(error, umbrella["stderr"]), "command": command}
    cells = [[str(r["seed"]), f"{r['delta_f']:.3f} ± {r['stderr']:.3f}", (f"{r['delta_f_lowest_only']:.3f} ± "
                                                                            f"{r['stderr_lowest_only']:.3f}"), " / ".join(f"{h:.3f}" for h in r["delta_f_halves"]),
              f"{r['fraction_c7ax_low']:.4f}", f"{r['chains_visiting_phi_positive_low']} of {r['chains']}",
              f"{r['effective_samples_low']:,.0f}", f"{min(r['acceptance']):.2f}–{max(r['acceptance']):.2f}",
              f"{r['max_omega_from_trans_deg']:.0f}°", f"{max(r['wrong_handed_fraction_per_temperature']):.4f}",
              f"{r['simulated_ns']:.0f}", f"{r['wall_s']:.0f}"] for r in rows]
    table = markdown_table(
        f"Alanine dipeptide ({args.solvent}, 300 K, amber99sbildn): parallel tempering on the batched engine, "
        f"{args.chains} chains × {args.temperatures.split(':')[2]} temperatures ({args.temperatures} K), "
        f"{args.production_ps:g} ps per replica after {args.equilibration_ps:g} ps, MBAR over all temperatures "
        f"(`{command}`).",
        ["seed", "ΔF(φ>0 − φ<0) (kT), MBAR ± chain bootstrap", "300 K samples alone", "halves", "C7ax fraction at 300 K",
         "chains whose 300 K slot saw φ > 0", "effective samples at 300 K", "swap acceptance", "max |ω − 180°|",
         "wrong-handed Cα (highest of any temperature)",
         "simulated ns", "wall (s)"], cells)
    table += ["", (f"Parallel tempering: ΔF = {mean:.3f} ± {error:.3f} kT (mean of {len(rows)} repeats, sd {sd:.3f}); "
              f"2D umbrella reference {umbrella['delta_f']:.3f} ± {umbrella['stderr']:.3f} kT; difference "
              f"{difference:+.3f} kT ({abs(difference) / summary['combined_sigma']:.1f} combined σ; "
              f"{'within' if summary['within_0.15_kT'] else 'outside'} 0.15 kT).")]
    write_results(f"ala2_exchange_reference_{args.solvent}", [summary, *rows], table)


if __name__ == "__main__":
    main()
