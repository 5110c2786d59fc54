"""Molecular dynamics into trajectory files: resumable, written atomically in chunks; one OpenMM
trajectory, or many replicas (and a temperature ladder) stepped together on the torch force field."""

from __future__ import annotations

from pathlib import Path

import torch

from .data import load_torch, load_trajectory, save_torch, save_trajectory
from .errors import MlmolError
from .progress import progress as progress_bar
from .samplers import MolecularDynamics
from .samplers.batched import BlowUp, LangevinState
from .samplers.exchange import ExchangeState, ReplicaExchange, States
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


def simulate_replicas(system: Molecule, out: str | Path, n_frames: int, interval: int = 250, replicas: int = 1,
                      scales: list[float] | None = None, timestep_fs: float = 1.0, friction_per_ps: float = 1.0,
                      hydrogen_mass: float | None = None, equilibration: int = 5_000, seed: int = 0,
                      resume: bool = False, chunk: int = 100, progress: bool = False,
                      precision: torch.dtype = torch.float32, compile: bool = False) -> tuple[torch.Tensor, list]:
    """Langevin MD (BAOAB) of ``replicas`` copies of a molecule stepped together on its torch force field.

    Arguments:
        scales: temperature factors of a parallel-tempering ladder (increasing from 1); each replica then
            runs the whole ladder, with neighbour exchanges every 10 steps. Default: no ladder.
        hydrogen_mass: repartition masses so each hydrogen weighs this (amu); allows 2 fs and more.
        equilibration: steps before the first frame (from the OpenMM-minimised structure).
        precision: the arithmetic of the dynamics and the force field (float32, like OpenMM's mixed
            precision, or float64).
        compile: evaluate the force field through ``torch.compile`` (3-4 times faster for hundreds of
            replicas and more, after about a minute of compilation).

    Writes ``out`` (format by suffix), the frames of the system's own temperature, time-major: frame
    ``t * replicas + r`` is replica ``r`` at time ``t``; and ``OUT.chk`` every ``chunk`` frames, which
    ``resume=True`` continues bit for bit. Returns the frames ``[n_frames, replicas, 3N]`` (nm) and the
    swap acceptance of each neighbour pair of the ladder.
    """
    out = Path(out)
    checkpoint = out.with_name(out.name + ".chk")
    scales = [1.0] if scales is None else [float(s) for s in scales]
    settings = {"interval": interval, "seed": seed, "system": system.name, "replicas": replicas, "scales": scales,
                "timestep_fs": timestep_fs, "friction_per_ps": friction_per_ps, "hydrogen_mass": hydrogen_mass,
                "precision": str(precision).removeprefix("torch.")}
    if not resume and (out.exists() or checkpoint.exists()):
        raise MlmolError(f"{out} already exists; pass --resume to continue it or choose another --out")
    masses = system.masses if hydrogen_mass is None else system.repartitioned_masses(hydrogen_mass)
    # a new run starts from the OpenMM-minimised structure; a resumed one from its checkpoint (restored below)
    start = torch.as_tensor(system.positions)[None] if resume else \
        MolecularDynamics(system, seed=seed, equilibration=0).positions()
    x = start.to(precision).repeat(replicas * len(scales), 1).reshape(replicas, len(scales), -1)
    engine = ReplicaExchange(system.evaluated_in(None, compile), x, States(torch.tensor(scales, dtype=torch.float64)),
                             timestep=timestep_fs / 1000, friction=friction_per_ps, masses=torch.as_tensor(masses),
                             seed=seed)
    frames = torch.zeros(0, replicas, system.dim, dtype=torch.float64)
    if resume:
        state = load_torch(checkpoint, "MD checkpoint")
        if state.get("settings") != settings:
            raise MlmolError(f"{checkpoint} was written with {state.get('settings')}, not {settings}; "
                             "resume with the same options")
        stored = load_trajectory(out, system.topology)
        frames = stored[:state["frames"] * replicas].reshape(-1, replicas, system.dim)
        if len(frames) < state["frames"]:
            raise MlmolError(f"{out} holds {len(frames)} frames but its checkpoint says {state['frames']}; "
                             "the trajectory was truncated: start again without --resume")
        engine.restore(ExchangeState(LangevinState(**state["md"]), **state["exchange"]))
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        engine.step(equilibration)
    bar = progress_bar(total=n_frames, initial=len(frames), desc="MD (torch)", unit="frame", enabled=progress)
    try:
        while len(frames) < n_frames:
            new = engine.run(min(chunk, n_frames - len(frames)), interval).observed[:, :, 0].double()
            frames = torch.cat([frames, new])
            save_trajectory(out, frames.reshape(-1, system.dim), system.topology)
            saved = vars(engine.state())
            save_torch({"frames": len(frames), "settings": settings, "md": vars(saved.pop("md")), "exchange": saved},
                       checkpoint)
            bar.update(len(new))
    except BlowUp as error:
        kept = (f"{out} keeps its {len(frames)} frames per replica and {checkpoint.name} the state after them"
                if checkpoint.exists() else "nothing was written")
        raise BlowUp(f"{error}. {kept}") from None
    finally:
        bar.close()
    return frames, engine.acceptance().tolist()
