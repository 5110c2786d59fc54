"""Parity of the batched Langevin engine with OpenMM MD on alanine dipeptide (vacuum and OBC2).

    python benchmarks/batched_md_parity.py [--ns 100] [--replicas 256]

Both engines run the same force field (amber99sbildn, + OBC2 implicit solvent) at 300 K with the
same masses (hydrogens repartitioned to 3.024 amu), the same 4 fs step, friction 1/ps and no
constraints, from the same minimised structure; OpenMM's LangevinMiddleIntegrator (the BAOAB
splitting) on the Reference platform as ``--processes`` independent trajectories, mlmol's
BatchedLangevin (float32) as ``--replicas`` independent replicas, ``--ns`` ns of frames in all for
each engine (after 50 ps of equilibration), one frame per ps. Compared:

- the mean and the variance of the potential energy (kJ/mol); errors by the jackknife over
  independent units (a replica of mlmol; a 1 ns block of an OpenMM trajectory, about 100 times the
  energy's correlation time);
- the kinetic temperature: mlmol from the velocities right after the friction-and-noise update
  (BAOAB's thermal ones) over 3N degrees of freedom; OpenMM from its reported kinetic energy over
  3N − 3 (its system removes the centre-of-mass motion; the torch force field ignores that force);
- the Ramachandran free-energy surface: (φ, ψ) histograms on 30° bins; each bin's z-score
  (p_mlmol − p_OpenMM) / √(σ² + σ²) with jackknife errors, over bins holding at least 0.1% of both;
  summarised as χ² = Σz² against its number of bins (≈ 1 per bin when the surfaces agree within
  their noise) and the largest |z|, and the KL divergence with its bootstrap spread over units.

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
STEPS_PER_FRAME = 250  # 1 ps
EQUILIBRATION_STEPS = 12_500  # 50 ps
BINS = np.linspace(-180, 180, 13)


def torsions(xyz: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(xyz)
    return torch.rad2deg(torch.stack([dihedral_of(x, PHI), dihedral_of(x, PSI)], -1)).numpy()


def openmm_trajectory(xml: str, masses: list[float], positions: np.ndarray, frames: int, seed: int, queue) -> None:
    """One OpenMM trajectory: per frame the potential and kinetic energies (kJ/mol) and (φ, ψ)."""
    context, integrator = langevin_context(xml, masses, positions, "Reference", TIMESTEP_FS, seed=seed + 1,
                                           temperature=TEMPERATURE, friction=FRICTION)
    system = context.getSystem()
    integrator.step(EQUILIBRATION_STEPS)
    potential, kinetic, xyz = np.empty(frames), np.empty(frames), np.empty((frames, positions.size))
    kj = openmm.unit.kilojoule_per_mole
    for i in range(frames):
        integrator.step(STEPS_PER_FRAME)
        state = context.getState(getEnergy=True, getPositions=True)
        potential[i], kinetic[i] = state.getPotentialEnergy().value_in_unit(kj), state.getKineticEnergy().value_in_unit(kj)
        xyz[i] = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer).reshape(-1)
    dof = 3 * system.getNumParticles() - 3 * any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces())
    queue.put((seed, potential, 2 * kinetic / (dof * BOLTZMANN_KJ_MOL_K), torsions(xyz)))


def run_openmm(molecule, positions: np.ndarray, frames: int, processes: int) -> list[tuple]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    xml = openmm.XmlSerializer.serialize(molecule.system)
    masses = molecule.repartitioned_masses(HYDROGEN_MASS).tolist()
    workers = [ctx.Process(target=openmm_trajectory, args=(xml, masses, positions, frames, seed, queue))
               for seed in range(processes)]
    for worker in workers:
        worker.start()
    results = sorted(queue.get() for _ in workers)
    for worker in workers:
        worker.join()
    return results


def run_torch(molecule, positions: np.ndarray, replicas: int, frames: int) -> tuple[np.ndarray, ...]:
    """[frames, replicas] potential energies (kJ/mol), kinetic temperatures (K) and [frames, replicas, 2] (φ, ψ)."""
    x = torch.tensor(positions, dtype=torch.float32)[None].repeat(replicas, 1)
    masses = torch.tensor(molecule.repartitioned_masses(HYDROGEN_MASS), dtype=torch.float32)
    md = BatchedLangevin(molecule.evaluated_in(None, compile=True), x, TIMESTEP_FS / 1000, FRICTION, masses=masses,
                         seed=12345)
    md.step(EQUILIBRATION_STEPS)
    potential, temperature, angles = [], [], []
    for _ in range(frames):
        md.step(STEPS_PER_FRAME)
        v = md.v - 0.5 * md.dt * md.force / md.masses  # after the friction-and-noise update
        temperature.append((md.masses * v**2).sum(-1) / (molecule.dim * BOLTZMANN_KJ_MOL_K))
        potential.append(md.u * md.kT)
        angles.append(torsions(md.x.double().numpy().reshape(-1, molecule.dim)))
    return (torch.stack(potential).double().numpy(), torch.stack(temperature).double().numpy(), np.stack(angles))


def jackknife(statistic, units: list[np.ndarray]) -> tuple:
    """The statistic of all units pooled and its jackknife standard error over units (scalars or arrays)."""
    full = statistic(np.concatenate(units))
    n = len(units)
    leave_one_out = np.array([statistic(np.concatenate(units[:i] + units[i + 1:])) for i in range(n)])
    return full, np.sqrt((n - 1) / n * ((leave_one_out - leave_one_out.mean(0)) ** 2).sum(0))


def histogram(angles: np.ndarray) -> np.ndarray:
    counts, _, _ = np.histogram2d(angles[:, 0], angles[:, 1], bins=[BINS, BINS])
    return counts.ravel() / len(angles)


def compare(name: str, torch_units: dict, openmm_units: dict) -> dict:
    row = {"system": name}
    for key, statistic in (("potential_mean", np.mean), ("potential_variance", lambda a: np.var(a, ddof=1)),
                           ("kinetic_temperature", np.mean)):
        source = "temperature" if key == "kinetic_temperature" else "potential"
        a, da = jackknife(statistic, torch_units[source])
        b, db = jackknife(statistic, openmm_units[source])
        row[key] = {"mlmol": float(a), "mlmol_stderr": float(da), "openmm": float(b), "openmm_stderr": float(db),
                    "z": float((a - b) / math.hypot(da, db))}
    p, dp = jackknife(histogram, torch_units["angles"])
    q, dq = jackknife(histogram, openmm_units["angles"])
    used = (p > 1e-3) & (q > 1e-3)
    z = (p - q)[used] / np.sqrt(dp**2 + dq**2)[used]
    kl = float((p[used] * np.log(p[used] / q[used])).sum())
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(50):
        pu = [torch_units["angles"][i] for i in rng.integers(0, len(torch_units["angles"]), len(torch_units["angles"]))]
        qu = [openmm_units["angles"][i] for i in rng.integers(0, len(openmm_units["angles"]), len(openmm_units["angles"]))]
        pb, qb = histogram(np.concatenate(pu)), histogram(np.concatenate(qu))
        ok = (pb > 1e-3) & (qb > 1e-3)
        boot.append(float((pb[ok] * np.log(pb[ok] / qb[ok])).sum()))
    row["ramachandran"] = {"bins_compared": int(used.sum()), "chi2": float((z**2).sum()), "max_abs_z": float(np.abs(z).max()),
                           "kl": kl, "kl_bootstrap_sd": float(np.std(boot, ddof=1)),
                           "kl_bootstrap_median": float(np.median(boot)),
                           "mass_compared_mlmol": float(p[used].sum()), "mass_compared_openmm": float(q[used].sum())}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ns", type=float, default=100.0, help="ns of frames per engine (all replicas or processes)")
    parser.add_argument("--replicas", type=int, default=256)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, cells = [], []
    for implicit in (False, True):
        molecule = alanine_dipeptide(implicit_solvent=implicit, backend="torch")
        positions = MolecularDynamics(molecule, equilibration=0).positions()[0].numpy()
        frames_total = int(args.ns * 1000)
        started = time.perf_counter()
        runs = run_openmm(molecule, positions, frames_total // args.processes, args.processes)
        openmm_s = time.perf_counter() - started
        block = 1000  # frames (1 ns) per OpenMM unit
        openmm_units = {key: [run[i][b:b + block] for run in runs for b in range(0, len(run[i]) - block + 1, block)]
                        for i, key in ((1, "potential"), (2, "temperature"), (3, "angles"))}
        started = time.perf_counter()
        potential, temperature, angles = run_torch(molecule, positions, args.replicas, frames_total // args.replicas)
        torch_s = time.perf_counter() - started
        torch_units = {"potential": list(potential.T), "temperature": list(temperature.T),
                       "angles": list(angles.transpose(1, 0, 2))}
        row = compare(molecule.name, torch_units, openmm_units)
        row.update({"ns_per_engine": args.ns, "replicas": args.replicas, "openmm_processes": args.processes,
                    "openmm_units": len(openmm_units["potential"]), "openmm_wall_s": openmm_s, "mlmol_wall_s": torch_s})
        rows.append(row)
        print(row, flush=True)
        for key, label in (("potential_mean", "mean potential energy (kJ/mol)"),
                           ("potential_variance", "variance of the potential energy ((kJ/mol)²)"),
                           ("kinetic_temperature", "kinetic temperature (K)")):
            r = row[key]
            cells.append([molecule.name, label, f"{r['mlmol']:.3f} ± {r['mlmol_stderr']:.3f}",
                          f"{r['openmm']:.3f} ± {r['openmm_stderr']:.3f}", f"{r['z']:+.2f}"])
        r = row["ramachandran"]
        cells.append([molecule.name, f"Ramachandran, {r['bins_compared']} bins of 30°: χ² (max |z|); KL ± bootstrap sd",
                      f"χ² = {r['chi2']:.1f} over {r['bins_compared']} bins (max |z| {r['max_abs_z']:.2f})",
                      f"KL = {r['kl']:.4f} ± {r['kl_bootstrap_sd']:.4f}", "—"])
    table = markdown_table(
        f"Batched engine against OpenMM MD (`python benchmarks/batched_md_parity.py --ns {args.ns:g} --replicas "
        f"{args.replicas}`): alanine dipeptide, 300 K, {TIMESTEP_FS:g} fs, hydrogens at {HYDROGEN_MASS} amu, "
        f"{args.ns:g} ns of 1-ps frames per engine; errors by the jackknife over independent units; z is the "
        "difference over its combined error.", ["system", "quantity", "mlmol batched", "OpenMM", "z"], cells, 2)
    write_results("batched_md_parity", rows, table)


if __name__ == "__main__":
    main()
