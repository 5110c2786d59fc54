"""Parity of the batched Langevin engine with OpenMM MD on alanine dipeptide (vacuum and OBC2).

    python benchmarks/batched_md_parity.py [--ns 100] [--ns-1fs 25] [--replicas 256]

Both engines run the same force field (amber99sbildn, + OBC2 implicit solvent) at 300 K with the
same masses (hydrogens repartitioned to 3.024 amu), friction 1/ps and no constraints, and the same
protocol: independent trajectories of the same length, each from the same minimised structure
(φ < 0), 50 ps of equilibration, then one frame per ps. mlmol's BatchedLangevin (float32, 4 fs)
runs ``--replicas`` of them stepped together (``--ns`` ns of frames in all); OpenMM's
LangevinMiddleIntegrator (the BAOAB splitting, Reference platform, ``--processes`` worker
processes) runs as many of the same length at the same 4 fs, and ``--ns-1fs`` ns of them at 1 fs,
which measures the time-step error of the 4 fs runs. Identical protocols sample the same
distribution at every time when the dynamics agree, including how far the trajectories got into
φ > 0 (400 ps from φ < 0 is too short for that basin's equilibrium weight, in either engine).
Compared, with errors by the jackknife over trajectories (independent by construction):

- the mean and the variance of the potential energy (kJ/mol);
- the kinetic temperature: mlmol from the velocities right after the friction-and-noise update
  (the ones BAOAB keeps closest to thermal; exactly thermal only for a harmonic system) over 3N
  degrees of freedom; OpenMM from its reported kinetic energy over
  3N − 3 (its system removes the centre-of-mass motion; the torch force field ignores that force);
- the fraction of frames at φ > 0;
- the Ramachandran free-energy surface: (φ, ψ) histograms on 30° bins; each bin's z-score
  (p_mlmol − p_OpenMM) / √(σ² + σ²), over bins where either engine has more than 0.1% of its frames
  (nonzero combined error); summarised as χ² = Σz² against its number of bins (≈ 1 per bin when
  the surfaces agree within their noise) and the largest |z|, and the KL divergence (empty bins
  floored at 10⁻⁵) with its bootstrap spread over trajectories.

Writes benchmarks/results/batched_md_parity.json/.md.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import time

import numpy as np
import openmm
import torch
from pipeline import langevin_context, markdown_table, write_results

from mlmol.geometry import dihedral_of
from mlmol.samplers import MolecularDynamics
from mlmol.samplers.batched import BatchedLangevin
from mlmol.systems.molecules import PHI, PSI, alanine_dipeptide
from mlmol.units import BOLTZMANN_KJ_MOL_K

HYDROGEN_MASS, TIMESTEP_FS, FRICTION, TEMPERATURE = 3.024, 4.0, 1.0, 300.0
FRAME_PS, EQUILIBRATION_PS = 1.0, 50.0
BINS = np.linspace(-180, 180, 13)
MIN_MASS = 1e-3


def torsions(xyz: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(xyz)
    return torch.rad2deg(torch.stack([dihedral_of(x, PHI), dihedral_of(x, PSI)], -1)).numpy()


def openmm_trajectories(xml: str, masses: list[float], positions: np.ndarray, timestep_fs: float, seeds: list[int],
                        frames: int, queue) -> None:
    """OpenMM trajectories, one per seed: per frame the potential and kinetic energies (kJ/mol) and (φ, ψ)."""
    steps_per_frame, equilibration = round(FRAME_PS * 1000 / timestep_fs), round(EQUILIBRATION_PS * 1000 / timestep_fs)
    kj = openmm.unit.kilojoule_per_mole
    for seed in seeds:
        context, integrator = langevin_context(xml, masses, positions, "Reference", timestep_fs, seed=seed,
                                               temperature=TEMPERATURE, friction=FRICTION)
        system = context.getSystem()
        integrator.step(equilibration)
        potential, kinetic, xyz = np.empty(frames), np.empty(frames), np.empty((frames, positions.size))
        for i in range(frames):
            integrator.step(steps_per_frame)
            state = context.getState(getEnergy=True, getPositions=True)
            potential[i] = state.getPotentialEnergy().value_in_unit(kj)
            kinetic[i] = state.getKineticEnergy().value_in_unit(kj)
            xyz[i] = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer).reshape(-1)
        dof = 3 * system.getNumParticles() - 3 * any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces())
        queue.put((seed, potential, 2 * kinetic / (dof * BOLTZMANN_KJ_MOL_K), torsions(xyz)))


def run_openmm(molecule, positions: np.ndarray, timestep_fs: float, trajectories: int, frames: int,
               processes: int) -> dict[str, list[np.ndarray]]:
    """``trajectories`` OpenMM trajectories (seeds 1, 2, ...; 0 would draw a random one) shared among
    ``processes`` workers: per trajectory its potential energies, kinetic temperatures and (φ, ψ)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    xml = openmm.XmlSerializer.serialize(molecule.system)
    masses = molecule.repartitioned_masses(HYDROGEN_MASS).tolist()
    seeds = list(range(1, trajectories + 1))
    workers = [ctx.Process(target=openmm_trajectories,
                           args=(xml, masses, positions, timestep_fs, seeds[p::processes], frames, queue))
               for p in range(processes)]
    for worker in workers:
        worker.start()
    results = sorted((queue.get() for _ in seeds), key=lambda r: r[0])
    for worker in workers:
        worker.join()
    return {key: [r[i] for r in results] for i, key in ((1, "potential"), (2, "temperature"), (3, "angles"))}


def run_torch(molecule, positions: np.ndarray, replicas: int, frames: int) -> dict[str, list[np.ndarray]]:
    """Per replica its potential energies (kJ/mol), kinetic temperatures (K) and (φ, ψ) (degrees)."""
    x = torch.tensor(positions, dtype=torch.float32)[None].repeat(replicas, 1)
    masses = torch.tensor(molecule.repartitioned_masses(HYDROGEN_MASS), dtype=torch.float32)
    md = BatchedLangevin(molecule.evaluated_in(None, compile=True), x, TIMESTEP_FS / 1000, FRICTION, masses=masses,
                         seed=12345)
    md.step(round(EQUILIBRATION_PS * 1000 / TIMESTEP_FS))
    potential, temperature, angles = [], [], []
    for _ in range(frames):
        md.step(round(FRAME_PS * 1000 / TIMESTEP_FS))
        v = md.v - 0.5 * md.dt * md.force / md.masses  # after the friction-and-noise update
        temperature.append((md.masses * v**2).sum(-1) / (molecule.dim * BOLTZMANN_KJ_MOL_K))
        potential.append(md.u * md.kT)
        angles.append(torsions(md.x.double().numpy().reshape(-1, molecule.dim)))
    potential, temperature = torch.stack(potential).double().numpy(), torch.stack(temperature).double().numpy()
    return {"potential": list(potential.T), "temperature": list(temperature.T),
            "angles": list(np.stack(angles).transpose(1, 0, 2))}


def jackknife(statistic, units: list[np.ndarray]) -> tuple:
    """The statistic of all units pooled and its jackknife standard error over units (scalars or arrays)."""
    full = statistic(np.concatenate(units))
    n = len(units)
    leave_one_out = np.array([statistic(np.concatenate(units[:i] + units[i + 1:])) for i in range(n)])
    return full, np.sqrt((n - 1) / n * ((leave_one_out - leave_one_out.mean(0)) ** 2).sum(0))


def histogram(angles: np.ndarray) -> np.ndarray:
    counts, _, _ = np.histogram2d(angles[:, 0], angles[:, 1], bins=[BINS, BINS])
    return counts.ravel() / len(angles)


def kl_divergence(p: np.ndarray, q: np.ndarray, floor: float = 1e-5) -> float:
    """KL(p ‖ q) of two histograms, each bin floored at ``floor`` and renormalised (empty bins stay finite)."""
    p, q = (np.maximum(h, floor) / np.maximum(h, floor).sum() for h in (p, q))
    return float((p * np.log(p / q)).sum())


def z_score(a: float, da: float, b: float, db: float) -> float:
    """(a − b) over the combined error; 0 where both are exactly equal with no error."""
    error = math.hypot(da, db)
    return float((a - b) / error) if error > 0 else (0.0 if a == b else math.copysign(math.inf, a - b))


STATISTICS = {"potential_mean": ("potential", np.mean),
              "potential_variance": ("potential", lambda a: np.var(a, ddof=1)),
              "kinetic_temperature": ("temperature", np.mean),
              "phi_positive": ("angles", lambda a: np.mean(a[:, 0] > 0))}


def compare(torch_units: dict, openmm_units: dict) -> dict:
    """Every statistic of both engines with its jackknife error and the z-score of the difference."""
    row = {}
    for key, (source, statistic) in STATISTICS.items():
        a, da = jackknife(statistic, torch_units[source])
        b, db = jackknife(statistic, openmm_units[source])
        row[key] = {"mlmol": float(a), "mlmol_stderr": float(da), "openmm": float(b), "openmm_stderr": float(db),
                    "z": z_score(a, da, b, db)}
    p, dp = jackknife(histogram, torch_units["angles"])
    q, dq = jackknife(histogram, openmm_units["angles"])
    used = ((p > MIN_MASS) | (q > MIN_MASS)) & (np.hypot(dp, dq) > 0)
    z = (p - q)[used] / np.hypot(dp, dq)[used]
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(50):
        pu = [torch_units["angles"][i] for i in rng.integers(0, len(torch_units["angles"]), len(torch_units["angles"]))]
        qu = [openmm_units["angles"][i] for i in rng.integers(0, len(openmm_units["angles"]), len(openmm_units["angles"]))]
        boot.append(kl_divergence(histogram(np.concatenate(pu)), histogram(np.concatenate(qu))))
    row["ramachandran"] = {"bins_compared": int(used.sum()), "chi2": float((z**2).sum()),
                           "max_abs_z": float(np.abs(z).max()), "kl": kl_divergence(p, q),
                           "kl_bootstrap_sd": float(np.std(boot, ddof=1)), "kl_bootstrap_median": float(np.median(boot)),
                           "mass_compared_mlmol": float(p[used].sum()), "mass_compared_openmm": float(q[used].sum())}
    return row


LABELS = {"potential_mean": ("mean potential energy (kJ/mol)", "{:.3f} ± {:.3f}", 1.0),
          "potential_variance": ("variance of the potential energy ((kJ/mol)²)", "{:.2f} ± {:.2f}", 1.0),
          "kinetic_temperature": ("kinetic temperature (K)", "{:.2f} ± {:.2f}", 1.0),
          "phi_positive": ("frames at φ > 0 (%)", "{:.3f} ± {:.3f}", 100.0)}


def table_rows(name: str, comparisons: dict[str, dict]) -> list[list[str]]:
    """Markdown cells: per quantity, mlmol, then each OpenMM column with its z."""
    cells = []
    first = next(iter(comparisons.values()))
    for key, (label, fmt, factor) in LABELS.items():
        row = [name, label, fmt.format(first[key]["mlmol"] * factor, first[key]["mlmol_stderr"] * factor)]
        for c in comparisons.values():
            row += [fmt.format(c[key]["openmm"] * factor, c[key]["openmm_stderr"] * factor), f"{c[key]['z']:+.2f}"]
        cells.append(row)
    row = [name, "Ramachandran, 30° bins: χ² over bins (max |z|); KL ± bootstrap sd", "—"]
    for c in comparisons.values():
        r = c["ramachandran"]
        row += [(f"χ² = {r['chi2']:.1f} over {r['bins_compared']} (max |z| {r['max_abs_z']:.2f}); "
                 f"KL = {r['kl']:.4f} ± {r['kl_bootstrap_sd']:.4f}"), "—"]
    cells.append(row)
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ns", type=float, default=100.0, help="ns of frames of mlmol and of OpenMM at 4 fs")
    parser.add_argument("--ns-1fs", type=float, default=25.0, help="ns of frames of OpenMM at 1 fs")
    parser.add_argument("--replicas", type=int, default=256, help="trajectories of mlmol and of OpenMM at 4 fs")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frames = round(args.ns * 1000 / FRAME_PS / args.replicas)  # per trajectory
    trajectories_1fs = max(2, round(args.ns_1fs * 1000 / FRAME_PS / frames))
    rows, cells = [], []
    for implicit in (False, True):
        molecule = alanine_dipeptide(implicit_solvent=implicit, backend="torch")
        positions = MolecularDynamics(molecule, equilibration=0).positions()[0].numpy()
        walls, comparisons = {}, {}
        started = time.perf_counter()
        mlmol_units = run_torch(molecule, positions, args.replicas, frames)
        walls["mlmol_4fs"] = time.perf_counter() - started
        for label, timestep, count in (("openmm_4fs", TIMESTEP_FS, args.replicas), ("openmm_1fs", 1.0, trajectories_1fs)):
            started = time.perf_counter()
            units = run_openmm(molecule, positions, timestep, count, frames, args.processes)
            walls[label] = time.perf_counter() - started
            comparisons[label] = compare(mlmol_units, units) | {"trajectories": count}
        row = {"system": molecule.name, "frames_per_trajectory": frames, "trajectory_ps": frames * FRAME_PS,
               "equilibration_ps": EQUILIBRATION_PS, "mlmol_trajectories": args.replicas,
               "openmm_processes": args.processes, "wall_s": walls, **comparisons}
        rows.append(row)
        print(row, flush=True)
        cells += table_rows(molecule.name, comparisons)
    table = markdown_table(
        f"Batched engine against OpenMM MD (`python benchmarks/batched_md_parity.py --ns {args.ns:g} --ns-1fs "
        f"{args.ns_1fs:g} --replicas {args.replicas}`): alanine dipeptide, 300 K, hydrogens at {HYDROGEN_MASS} amu; "
        f"every trajectory {frames * FRAME_PS:g} ps of 1-ps frames after {EQUILIBRATION_PS:g} ps from the same "
        f"minimised structure; mlmol {args.replicas} trajectories at {TIMESTEP_FS:g} fs, OpenMM {args.replicas} at "
        f"{TIMESTEP_FS:g} fs and {trajectories_1fs} at 1 fs; errors by the jackknife over trajectories; z is the "
        "difference from mlmol over the combined error.",
        ["system", "quantity", f"mlmol, {TIMESTEP_FS:g} fs", f"OpenMM, {TIMESTEP_FS:g} fs", "z", "OpenMM, 1 fs", "z"],
        cells, 2)
    write_results("batched_md_parity", rows, table)


if __name__ == "__main__":
    main()
