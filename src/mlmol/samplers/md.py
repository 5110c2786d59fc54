"""Reference molecular dynamics with OpenMM (LangevinMiddleIntegrator), seeded and resumable."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import MlmolError
from ..systems.openmm import OpenMMEnergy, require_openmm


class MolecularDynamics:
    """Langevin MD of an :class:`OpenMMEnergy` at its temperature, on its bridge's platform.

    Starts from ``positions`` (default: the system's own structure), minimises, draws
    velocities and equilibrates for ``equilibration`` steps. :meth:`checkpoint` and
    :meth:`restore` save and load the full state (positions, velocities, random state), so
    a resumed run continues the same trajectory. ``bias`` is an extra OpenMM force added to a
    copy of the system.
    """

    def __init__(self, system: OpenMMEnergy, timestep_fs: float = 1.0, friction_per_ps: float = 1.0, seed: int = 0,
                 positions=None, minimize: bool = True, equilibration: int = 5_000, bias=None):
        openmm = require_openmm()
        unit = openmm.unit
        start = getattr(system, "positions", None) if positions is None else positions
        if start is None:
            raise MlmolError(f"{system.name} has no starting structure; pass positions=")
        self.system = system
        self.unit = unit
        integrator = openmm.LangevinMiddleIntegrator(system.temperature * unit.kelvin,
                                                     friction_per_ps / unit.picosecond, timestep_fs * unit.femtosecond)
        integrator.setRandomNumberSeed(seed + 1)  # OpenMM treats 0 as "pick a random seed"
        properties = {"Threads": "1"} if system.bridge.platform == "CPU" else {}
        openmm_system = system.system
        if bias is not None:  # an extra force (e.g. an umbrella restraint) on a copy of the system
            openmm_system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system.system))
            openmm_system.addForce(bias)
        self.context = openmm.Context(openmm_system, integrator,
                                      openmm.Platform.getPlatformByName(system.bridge.platform), properties)
        self.integrator = integrator
        self.context.setPositions(np.asarray(start, dtype=np.float64).reshape(-1, 3))
        if minimize:
            openmm.LocalEnergyMinimizer.minimize(self.context, 1.0, 1000)
        self.context.setVelocitiesToTemperature(system.temperature * unit.kelvin, seed + 1)
        integrator.step(equilibration)

    def run(self, n_frames: int, interval: int = 250, progress: bool = False) -> torch.Tensor:
        """``n_frames`` frames ``[n_frames, 3N]`` (nm, float64), one every ``interval`` steps."""
        if n_frames < 1 or interval < 1:
            raise MlmolError(f"n_frames and interval must be positive (got {n_frames}, {interval})")
        frames = np.empty((n_frames, self.system.dim))
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=n_frames, desc="MD", unit="frame", disable=None)
        try:
            for i in range(n_frames):
                self.integrator.step(interval)
                state = self.context.getState(getPositions=True)
                xyz = state.getPositions(asNumpy=True).value_in_unit(self.unit.nanometer)
                if not np.all(np.isfinite(xyz)):
                    raise MlmolError(f"MD of {self.system.name} blew up at frame {i} (non-finite positions); "
                                     "lower timestep_fs or check the system")
                frames[i] = xyz.reshape(-1)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return torch.from_numpy(frames)

    def checkpoint(self) -> bytes:
        return self.context.createCheckpoint()

    def restore(self, state: bytes) -> None:
        try:
            self.context.loadCheckpoint(state)
        except Exception as error:
            raise MlmolError(f"the MD checkpoint does not fit this system or platform ({error}); "
                             "start the simulation again without --resume") from None


def molecular_dynamics(system: OpenMMEnergy, n_frames: int, interval: int = 250, timestep_fs: float = 1.0,
                       friction_per_ps: float = 1.0, equilibration: int = 5_000, seed: int = 0,
                       positions=None, minimize: bool = True, progress: bool = False) -> torch.Tensor:
    """``n_frames`` frames ``[n_frames, 3N]`` (nm, float64) of Langevin MD; see :class:`MolecularDynamics`."""
    md = MolecularDynamics(system, timestep_fs, friction_per_ps, seed, positions, minimize, equilibration)
    return md.run(n_frames, interval, progress)
