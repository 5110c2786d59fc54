"""Reference molecular dynamics with OpenMM (Langevin, BAOAB-type LangevinMiddleIntegrator)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import MlmolError
from ..systems.openmm import OpenMMEnergy, require_openmm


def molecular_dynamics(system: OpenMMEnergy, n_frames: int, interval: int = 250, timestep_fs: float = 1.0,
                       friction_per_ps: float = 1.0, equilibration: int = 5_000, seed: int = 0,
                       positions=None, minimize: bool = True, progress: bool = False) -> torch.Tensor:
    """``n_frames`` frames ``[n_frames, 3N]`` (nm, float64), one every ``interval`` steps.

    Runs at the system's temperature on its bridge's platform, from ``positions`` (default:
    the system's own structure), after an energy minimisation and ``equilibration`` steps.
    Seeded: the same seed gives the same trajectory on the Reference and CPU platforms.
    """
    openmm = require_openmm()
    unit = openmm.unit
    if n_frames < 1 or interval < 1:
        raise MlmolError(f"n_frames and interval must be positive (got {n_frames}, {interval})")
    start = getattr(system, "positions", None) if positions is None else positions
    if start is None:
        raise MlmolError(f"{system.name} has no starting structure; pass positions=")
    start = np.asarray(start, dtype=np.float64).reshape(-1, 3)
    integrator = openmm.LangevinMiddleIntegrator(system.temperature * unit.kelvin, friction_per_ps / unit.picosecond,
                                                 timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed + 1)  # OpenMM treats 0 as "pick a random seed"
    platform = openmm.Platform.getPlatformByName(system.bridge.platform)
    properties = {"Threads": "1"} if system.bridge.platform == "CPU" else {}
    context = openmm.Context(system.system, integrator, platform, properties)
    context.setPositions(start)
    if minimize:
        openmm.LocalEnergyMinimizer.minimize(context, 1.0, 1000)
    context.setVelocitiesToTemperature(system.temperature * unit.kelvin, seed + 1)
    integrator.step(equilibration)
    frames = np.empty((n_frames, start.size))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_frames, desc="MD", unit="frame", disable=None)
    try:
        for i in range(n_frames):
            integrator.step(interval)
            xyz = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            if not np.all(np.isfinite(xyz)):
                raise MlmolError(f"MD of {system.name} blew up at frame {i} (non-finite positions); "
                                 "lower timestep_fs or check the system")
            frames[i] = xyz.reshape(-1)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return torch.from_numpy(frames)
