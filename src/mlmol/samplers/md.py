"""Reference molecular dynamics with OpenMM (LangevinMiddleIntegrator), seeded and resumable."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import MlmolError
from ..geometry import dihedral
from ..progress import progress as progress_bar
from ..systems.molecule import Molecule
from ..systems.openmm_bridge import OpenMMEnergy, auto_platform, require_openmm

if TYPE_CHECKING:
    import openmm


class MolecularDynamics:
    """Langevin MD in OpenMM of a molecule's energy (either backend: it needs ``.system``) at its
    temperature, on its bridge's platform (or the one the bridge would pick).

    Starts from ``positions`` (default: the system's own structure), minimises, draws
    velocities and equilibrates for ``equilibration`` steps. :meth:`checkpoint` and
    :meth:`restore` save and load the full state (positions, velocities, random state), so
    a resumed run continues the same trajectory. ``bias`` is an extra OpenMM force (or a list
    of them) added to a copy of the system; ``hydrogen_mass`` (amu) repartitions the masses of a copy
    (:meth:`Molecule.repartitioned_masses`: the configurations' distribution is unchanged).
    """

    def __init__(self, system: Molecule, timestep_fs: float = 1.0, friction_per_ps: float = 1.0, seed: int = 0,
                 positions: np.ndarray | None = None, minimize: bool = True, equilibration: int = 5_000,
                 bias: openmm.Force | Sequence[openmm.Force] | None = None, hydrogen_mass: float | None = None):
        openmm = require_openmm()
        unit = openmm.unit
        if not isinstance(system, Molecule):
            raise MlmolError(f"MD needs a molecule (mlmol.systems.from_pdb or a built-in one); {system.name} is not one")
        start = system.positions if positions is None else positions
        self.system = system
        self.unit = unit
        integrator = openmm.LangevinMiddleIntegrator(system.temperature * unit.kelvin,
                                                     friction_per_ps / unit.picosecond, timestep_fs * unit.femtosecond)
        integrator.setRandomNumberSeed(seed + 1)  # OpenMM treats 0 as "pick a random seed"
        backend = system.backend  # the torch backend has no OpenMM platform: pick as the bridge would
        platform = backend.bridge.platform if isinstance(backend, OpenMMEnergy) else auto_platform(system.dim // 3,
                                                                                                   system.system)
        properties = {"Threads": "1"} if platform == "CPU" else {}
        openmm_system = system.system
        if bias is not None or hydrogen_mass is not None:  # extra forces or other masses: on a copy
            openmm_system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system.system))
            for force in [] if bias is None else bias if isinstance(bias, (list, tuple)) else [bias]:
                openmm_system.addForce(force)
            if hydrogen_mass is not None:
                for i, mass in enumerate(system.repartitioned_masses(hydrogen_mass)):
                    openmm_system.setParticleMass(i, mass)
        self.context = openmm.Context(openmm_system, integrator,
                                      openmm.Platform.getPlatformByName(platform), properties)
        self.integrator = integrator
        self.context.setPositions(np.asarray(start, dtype=np.float64).reshape(-1, 3))
        if minimize:
            openmm.LocalEnergyMinimizer.minimize(self.context, 1.0, 1000)
        self.context.setVelocitiesToTemperature(system.temperature * unit.kelvin, seed + 1)
        integrator.step(equilibration)

    def positions(self) -> torch.Tensor:
        """The current positions ``[1, 3N]`` (nm, float64)."""
        state = self.context.getState(getPositions=True)
        return torch.from_numpy(state.getPositions(asNumpy=True).value_in_unit(self.unit.nanometer).reshape(1, -1))

    def checked_positions(self, where: str) -> np.ndarray:
        """Current positions ``[3N]`` (nm) from one state read; raises if the simulation blew up
        (non-finite positions or an energy above 1e8 kJ/mol)."""
        state = self.context.getState(getPositions=True, getEnergy=True)
        xyz = state.getPositions(asNumpy=True).value_in_unit(self.unit.nanometer).reshape(-1)
        energy = state.getPotentialEnergy().value_in_unit(self.unit.kilojoule_per_mole)
        if not (np.all(np.isfinite(xyz)) and abs(energy) < 1e8):
            raise MlmolError(f"MD of {self.system.name} blew up at {where} (energy {energy:.3g} kJ/mol); "
                             "lower timestep_fs, minimise the structure or check the system")
        return xyz

    def run(self, n_frames: int, interval: int = 250, progress: bool = False) -> torch.Tensor:
        """``n_frames`` frames ``[n_frames, 3N]`` (nm, float64), one every ``interval`` steps."""
        if n_frames < 1 or interval < 1:
            raise MlmolError(f"n_frames and interval must be positive (got {n_frames}, {interval})")
        frames = np.empty((n_frames, self.system.dim))
        bar = None
        if progress:
            bar = progress_bar(total=n_frames, desc="MD", unit="frame")
        try:
            for i in range(n_frames):
                self.integrator.step(interval)
                frames[i] = self.checked_positions(f"frame {i}")
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return torch.from_numpy(frames)

    def checkpoint(self) -> bytes:
        """The full MD state (positions, velocities, random state) as OpenMM's checkpoint bytes."""
        return self.context.createCheckpoint()

    def restore(self, state: bytes) -> None:
        """Continue from :meth:`checkpoint` bytes."""
        try:
            self.context.loadCheckpoint(state)
        except Exception as error:
            raise MlmolError(f"the MD checkpoint does not fit this system or platform ({error}); "
                             "start the simulation again without --resume") from None


def _periodic_difference(centre: str) -> str:
    """OpenMM expression defining d, the torsion θ minus ``centre`` wrapped to [−π, π)."""
    return f"d=dt-2*pi*floor((dt+pi)/(2*pi)); dt=theta-{centre}; pi=3.141592653589793"


def torsion_restraint(name: str, atoms) -> object:
    """An OpenMM force ½ k_NAME d(θ, θ0_NAME)² on one torsion (periodic d), parameters set on the context."""
    openmm = require_openmm()
    force = openmm.CustomTorsionForce(f"0.5*k_{name}*d^2; {_periodic_difference(f'theta0_{name}')}")
    force.addGlobalParameter(f"k_{name}", 0.0)
    force.addGlobalParameter(f"theta0_{name}", 0.0)
    force.addTorsion(*[int(a) for a in atoms], [])
    return force


def flat_bottom_restraint(torsions, centre_deg: float = 180.0, half_width_deg: float = 90.0,
                          force_constant: float = 1000.0) -> object:
    """An OpenMM force ½ k (|d(θ, centre)| − w)² where |d| > w, zero inside: it holds each torsion
    within ``half_width_deg`` of ``centre_deg`` (e.g. peptide ω trans) without biasing it there."""
    openmm = require_openmm()
    force = openmm.CustomTorsionForce(f"0.5*{float(force_constant)}*max(0, abs(d)-{math.radians(half_width_deg)})^2; "
                                      f"{_periodic_difference(str(math.radians(centre_deg)))}")
    for atoms in torsions:
        force.addTorsion(*[int(a) for a in atoms], [])
    return force


def pulled_positions(system: Molecule, targets: dict[str, float], seed: int = 0, steps: int = 20_000,
                     force_constant: float = 1000.0, stages: int = 100) -> np.ndarray:
    """Positions ``[3N]`` (nm) after restrained MD pulls the named torsions to ``targets`` (degrees).

    The restraint centres move from the current torsions to the targets in ``stages`` even
    steps along the shorter arc (a sudden stiff restraint far from the structure tears it
    apart), then hold there for the last fifth of ``steps``.
    """
    torsions = system.torsions
    unknown = set(targets) - set(torsions)
    if unknown:
        raise MlmolError(f"{system.name} has no torsions named {sorted(unknown)}; known: "
                         f"{', '.join(torsions) or 'none'}")
    md = MolecularDynamics(system, seed=seed, equilibration=0,
                           bias=[torsion_restraint(name, torsions[name]) for name in targets])
    now = {name: float(dihedral(md.positions(), *torsions[name])[0]) for name in targets}
    arc = {name: (np.radians(degrees) - now[name] + np.pi) % (2 * np.pi) - np.pi for name, degrees in targets.items()}
    for name in targets:
        md.context.setParameter(f"k_{name}", force_constant)
    for stage in range(1, stages + 1):
        for name in targets:
            md.context.setParameter(f"theta0_{name}", now[name] + arc[name] * stage / stages)
        md.integrator.step(int(0.8 * steps) // stages)
    md.integrator.step(steps - int(0.8 * steps) // stages * stages)
    return md.checked_positions("the pull to the start")


ENGINES = ("openmm", "torch")


def molecular_dynamics(system: Molecule, n_frames: int, interval: int = 250, timestep_fs: float = 1.0,
                       friction_per_ps: float = 1.0, equilibration: int = 5_000, seed: int = 0,
                       positions: np.ndarray | None = None, minimize: bool = True, progress: bool = False,
                       starts: list[dict[str, float]] | None = None, engine: str = "openmm", replicas: int = 96,
                       hydrogen_mass: float | None = None, compile: bool = True,
                       ladder: tuple[float, int] | None = None, rungs: int = 1) -> torch.Tensor:
    """``n_frames`` frames ``[n_frames, 3N]`` (nm, float64) of Langevin MD.

    ``starts`` (e.g. ``[{"phi": -80, "psi": 150}, {"phi": 60, "psi": 40}]``, degrees of the
    system's named torsions) runs unbiased MD from each start, pulled there first by restrained
    MD, and splits the frames equally: data from metastable states that one plain trajectory would
    not reach.

    ``engine="openmm"``: one OpenMM trajectory per start (:class:`MolecularDynamics`).
    ``engine="torch"``: ``replicas`` independent replicas shared out among the starts, stepped
    together on the torch force field (:class:`~mlmol.samplers.batched.BatchedLangevin`, float32,
    through ``torch.compile`` unless ``compile=False``); frames are taken time-major, every replica's
    frame t before any frame t + 1.
    ``hydrogen_mass`` (amu, e.g. 3.024 for 4 fs steps) repartitions the masses for either engine.
    ``ladder=(HIGH, COUNT)`` (torch engine) makes each replica a parallel-tempering chain of COUNT
    temperatures from the system's up to HIGH kelvin and keeps the frames of the system's own
    temperature: equilibrium data, where plain replicas stay near the basin they started in; ``rungs=K``
    keeps the frames of the ladder's K lowest temperatures instead (the same MD gives K times the frames,
    and a generator trained on them is broader than the target: lighter-tailed importance weights). The
    torch engine holds every peptide bond within 90° of its isomer in ``positions`` (default: the
    molecule's structure) (:class:`~mlmol.systems.restraints.FlatBottomRestrained`, zero force there), as the umbrella
    reference holds them trans: hot replicas could otherwise flip one, which MD at the molecule's
    own temperature does not do on these time scales.
    """
    if engine not in ENGINES:
        raise MlmolError(f"unknown MD engine {engine!r}; choose {' or '.join(ENGINES)}")
    if engine == "torch":
        return _batched_md(system, n_frames, interval, timestep_fs, friction_per_ps, equilibration, seed, positions,
                           minimize, progress, starts, replicas, hydrogen_mass, compile, ladder, rungs)
    if ladder is not None or rungs != 1:
        raise MlmolError("a temperature ladder for the training data needs the torch engine (data.engine: torch)")
    options = {"hydrogen_mass": hydrogen_mass}
    if not starts:
        md = MolecularDynamics(system, timestep_fs, friction_per_ps, seed, positions, minimize, equilibration, **options)
        return md.run(n_frames, interval, progress)
    counts = [n_frames // len(starts) + (j < n_frames % len(starts)) for j in range(len(starts))]
    parts = []
    for j, (targets, count) in enumerate(zip(starts, counts)):
        start = pulled_positions(system, targets, seed=seed + 1000 * j)
        md = MolecularDynamics(system, timestep_fs, friction_per_ps, seed + 1000 * j, start, False, equilibration,
                               **options)
        parts.append(md.run(count, interval, progress))
    return torch.cat(parts)


def _batched_md(system: Molecule, n_frames: int, interval: int, timestep_fs: float, friction_per_ps: float,
                equilibration: int, seed: int, positions: np.ndarray | None, minimize: bool, progress: bool,
                starts: list[dict[str, float]] | None, replicas: int, hydrogen_mass: float | None,
                compile: bool, ladder: tuple[float, int] | None, rungs: int = 1) -> torch.Tensor:
    """:func:`molecular_dynamics` on the batched torch engine."""
    from ..systems.molecules import peptide_bonds
    from ..systems.restraints import FlatBottomRestrained, isomers
    from .exchange import ReplicaExchange, temperature_ladder

    if n_frames < 1 or interval < 1 or replicas < 1:
        raise MlmolError(f"n_frames, interval and replicas must be positive (got {n_frames}, {interval}, {replicas})")
    # raises for a system on the OpenMM bridge; hot replicas could flip a peptide bond to the other isomer,
    # which MD at the molecule's own temperature does not do: each bond is held within 90° of its isomer in
    # the given structure (trans, or cis as in a cis-proline), with no force there
    bonds = peptide_bonds(system.topology)
    structure = torch.as_tensor(system.positions if positions is None else positions).reshape(-1)
    torch_system = FlatBottomRestrained(system.evaluated_in(None, compile=compile), bonds, isomers(structure, bonds))
    if starts:
        structures = [pulled_positions(system, targets, seed=seed + 1000 * j) for j, targets in enumerate(starts)]
    else:
        structures = [MolecularDynamics(system, seed=seed, positions=positions, minimize=minimize,
                                        equilibration=0).positions()[0].numpy()]
    replicas = max(replicas, len(structures))
    share = [replicas // len(structures) + (j < replicas % len(structures)) for j in range(len(structures))]
    x = torch.cat([torch.tensor(xyz, dtype=torch.float32).reshape(1, -1).repeat(k, 1)
                   for xyz, k in zip(structures, share)])
    masses = system.masses if hydrogen_mass is None else system.repartitioned_masses(hydrogen_mass)
    high, count = (system.temperature, 1) if ladder is None else (float(ladder[0]), int(ladder[1]))
    if not 1 <= rungs <= count:
        raise MlmolError(f"data.rungs must be between 1 and the ladder's {count} temperatures, got {rungs}")
    states = temperature_ladder(system.temperature, high, count)
    md = ReplicaExchange(torch_system, x[:, None].repeat(1, count, 1), states, timestep_fs / 1000, friction_per_ps,
                         masses=torch.tensor(masses, dtype=torch.float32), seed=seed)
    md.step(equilibration)
    n_times = -(-n_frames // (replicas * rungs))
    what = f"{replicas} replicas" + (f" × {count} temperatures" if count > 1 else "")
    bar = progress_bar(total=n_times, desc=f"MD (torch, {what})", unit="frame", enabled=progress)
    frames = []
    for _ in range(n_times):
        md.step(interval)
        # the system's own temperature (and the next rungs - 1 above it): frame t, replica r, rung k
        frames.append(md.md.x.reshape(replicas, count, -1)[:, :rungs].reshape(replicas * rungs, -1).double())
        if count > 1:
            bar.set_postfix(swaps=f"{float(md.acceptance().nan_to_num(1.0).min()):.2f}", refresh=False)
        bar.update(1)
    bar.close()
    if count > 1:
        _warn_rare_swaps(md.acceptance(), states.scales * system.temperature)
    return torch.cat(frames)[:n_frames]


RARE_SWAPS = 0.1  # swap acceptance below which a ladder's chains hardly carry states between temperatures


def _warn_rare_swaps(acceptance: torch.Tensor, kelvin: torch.Tensor) -> None:
    """A warning naming the neighbour temperatures whose swaps were accepted less than :data:`RARE_SWAPS`
    of the time (``acceptance`` ``[K − 1]``, ``kelvin`` ``[K]``)."""
    rare = [f"{kelvin[i]:.0f}–{kelvin[i + 1]:.0f} K ({float(a):.2f})" for i, a in enumerate(acceptance) if a < RARE_SWAPS]
    if rare:
        warnings.warn(f"the training data's temperature ladder rarely swapped between {', '.join(rare)}: its chains "
                      f"barely mix there; add temperatures (data.ladder: [HIGHEST_KELVIN, COUNT] with a larger COUNT)",
                      stacklevel=3)
