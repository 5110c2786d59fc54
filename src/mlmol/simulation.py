"""Molecular dynamics into trajectory files: resumable, written atomically in chunks."""

from __future__ import annotations

from pathlib import Path

import torch

from .data import load_torch, load_trajectory, save_torch, save_trajectory
from .errors import MlmolError
from .samplers import MolecularDynamics
from .systems.molecule import Molecule


def simulate(system: Molecule, out: str | Path, n_frames: int, interval: int = 250, seed: int = 0, resume: bool = False,
             chunk: int = 500, progress: bool = False, **md_options) -> torch.Tensor:
    """Langevin MD of an OpenMM system into a trajectory file (format by suffix), resumable.

    Every ``chunk`` frames the trajectory and ``OUT.chk`` (the MD state) are written
    atomically; ``resume=True`` continues from them to ``n_frames`` frames in total.
    An existing trajectory is never overwritten without ``resume``.
    """
    out = Path(out)
    checkpoint = out.with_name(out.name + ".chk")
    settings = {"interval": interval, "seed": seed, "system": system.name, **md_options}
    frames = torch.zeros(0, system.dim, dtype=torch.float64)
    if resume:
        state = load_torch(checkpoint, "MD checkpoint")
        if state.get("settings") != settings:
            raise MlmolError(f"{checkpoint} was written with {state.get('settings')}, not {settings}; "
                             "resume with the same options")
        frames = load_trajectory(out, system.topology)[:state["frames"]]
        if len(frames) < state["frames"]:
            raise MlmolError(f"{out} holds {len(frames)} frames but its checkpoint says {state['frames']}; "
                             "the trajectory was truncated: start again without --resume")
        md = MolecularDynamics(system, seed=seed, **{**md_options, "minimize": False, "equilibration": 0})
        md.restore(state["md"])
    elif out.exists() or checkpoint.exists():
        raise MlmolError(f"{out} already exists; pass --resume to continue it or choose another --out")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        md = MolecularDynamics(system, seed=seed, **md_options)
    while len(frames) < n_frames:
        new = md.run(min(chunk, n_frames - len(frames)), interval, progress=progress)
        frames = torch.cat([frames, new])
        save_trajectory(out, frames, system.topology)
        save_torch({"frames": len(frames), "md": md.checkpoint(), "settings": settings}, checkpoint)
    return frames
