"""A VMC run directory: train with checkpoints and resume, recover from diverging steps, evaluate.

RUN/config.json      the system, the ansatz and the optimisation settings
RUN/checkpoint.pt    wavefunction, optimiser, walkers and step (written atomically)
RUN/metrics.jsonl    one line per step: energy, variance, acceptance, move width, learning rate, seconds since
                     this call started (after a recovery the steps since the checkpoint appear again;
                     the later line counts)
RUN/energy.json      the final evaluation: energy ± blocking standard error, exact and error
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path

import torch

from ..data import atomic_write, load_torch, save_torch
from ..errors import MlmolError
from .optimize import NaturalGradient, evaluate, learning_rate, vmc_step
from .sampling import Walkers
from .systems import EXACT_ENERGIES, Molecule, get
from .wavefunctions import FermiNet, SlaterJastrow

ANSATZE = {"ferminet": FermiNet, "slater-jastrow": SlaterJastrow}
OPTIMIZERS = {"adam": (torch.optim.Adam, 1e-3), "natural-gradient": (NaturalGradient, 0.05)}  # class, default lr
DEFAULTS = {"ansatz": "ferminet", "optimizer": "adam", "steps": 5000, "walkers": 512, "lr": None, "lr_decay": 1000.0,
            "mcmc_steps": 10, "burn_in": 200, "clip": 5.0, "eval_steps": 200, "seed": 0, "checkpoint_every": 100,
            "max_recoveries": 5, "pretrain_steps": 0, "basis": "cc-pvdz", "max_minutes": None}


def make_config(system: str, **overrides) -> dict:
    """The run's settings: ``DEFAULTS`` updated by the non-None ``overrides``; checks the system and ansatz."""
    get(system)
    config = {"system": system, **DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    if config["optimizer"] not in OPTIMIZERS:
        raise MlmolError(f"unknown optimizer {config['optimizer']!r}; choose {', '.join(OPTIMIZERS)}")
    config["lr"] = OPTIMIZERS[config["optimizer"]][1] if config["lr"] is None else config["lr"]
    if config["ansatz"] not in ANSATZE:
        raise MlmolError(f"unknown ansatz {config['ansatz']!r}; choose {', '.join(ANSATZE)}")
    for key in ("steps", "walkers", "mcmc_steps", "eval_steps"):
        if int(config[key]) <= 0:
            raise MlmolError(f"{key} must be positive, got {config[key]}")
    if int(config["pretrain_steps"]) < 0:
        raise MlmolError(f"pretrain_steps must be 0 (no pre-training) or positive, got {config['pretrain_steps']}")
    if config["max_minutes"] is not None and float(config["max_minutes"]) <= 0:
        raise MlmolError(f"max_minutes must be positive, got {config['max_minutes']}")
    return config


def build(config: dict) -> tuple[Molecule, torch.nn.Module]:
    molecule = get(config["system"])
    torch.manual_seed(config["seed"])
    return molecule, ANSATZE[config["ansatz"]](molecule).double()


def _save(path: Path, wavefunction, optimizer, walkers: Walkers, step: int, recoveries: int) -> None:
    save_torch({"wavefunction": wavefunction.state_dict(), "optimizer": optimizer.state_dict(), "x": walkers.x,
                "width": walkers.width, "generator": walkers.generator.get_state(), "step": step,
                "recoveries": recoveries}, path / "checkpoint.pt")


def _restore(path: Path, wavefunction, optimizer, walkers: Walkers) -> tuple[int, int]:
    state = load_torch(path / "checkpoint.pt")
    wavefunction.load_state_dict(state["wavefunction"])
    optimizer.load_state_dict(state["optimizer"])
    walkers.place(state["x"], state["width"])
    walkers.generator.set_state(state["generator"])
    return state["step"], state["recoveries"]


def _pretrain(config: dict, path: Path, molecule: Molecule, wavefunction, walkers: Walkers, progress: bool) -> None:
    """Fit the orbitals to Hartree–Fock (RUN/pretrain.json: HF energy and losses); the walkers start
    from the Hartree–Fock samples."""
    from .hartree_fock import hartree_fock, pretrain

    hf = hartree_fock(molecule, config["basis"])
    x, losses = pretrain(wavefunction, hf, molecule, int(config["pretrain_steps"]), len(walkers.x),
                         seed=int(config["seed"]), progress=progress)
    walkers.place(x)
    atomic_write(path / "pretrain.json", json.dumps({"basis": hf.basis, "hartree_fock_energy": hf.energy,
                                                     "loss_first": losses[0], "loss_last": losses[-1]}, indent=2))


def _exploded(variance: float, recent: deque) -> bool:
    """Whether this step's local-energy variance is over 100 times the median of the last 100 steps':
    the sign of an update that threw the wavefunction off (seen with the natural gradient on
    Slater–Jastrow H₂); the run then goes back to its last checkpoint like a non-finite step."""
    return len(recent) == recent.maxlen and variance > 100 * statistics.median(recent)


def _finite(module: torch.nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in module.parameters())


def train(config: dict | None, out: str | Path, resume: bool = False, progress: bool = False,
          steps: int | None = None, max_minutes: float | None = None) -> dict:
    """Train (or with ``resume`` continue) a VMC run in ``out``, then evaluate it; returns the evaluation.

    ``max_minutes`` (in the config) stops training after that much wall time in this call; on resume,
    ``steps`` and ``max_minutes`` replace the run's settings. A step whose local energies are all
    non-finite, whose natural-gradient solve fails, that leaves non-finite parameters, or whose
    local-energy variance explodes (:func:`_exploded`) sends the run back to its last checkpoint with
    the learning rate halved (at most ``max_recoveries`` times).
    """
    path = Path(out)
    if resume:
        if not (path / "checkpoint.pt").is_file():
            raise MlmolError(f"{path} has no checkpoint.pt to resume from; start it without --resume")
        config = json.loads((path / "config.json").read_text())
        if steps is not None or max_minutes is not None:
            config.update({k: v for k, v in (("steps", steps), ("max_minutes", max_minutes)) if v is not None})
            atomic_write(path / "config.json", json.dumps(config, indent=2))
    elif config is None:
        raise MlmolError("give a config or resume an existing run")
    elif (path / "checkpoint.pt").exists():
        raise MlmolError(f"{path} already holds a run; continue it with --resume or choose another --out")
    molecule, wavefunction = build(config)
    walkers = Walkers(wavefunction, molecule, int(config["walkers"]), seed=int(config["seed"]))
    optimizer_class = OPTIMIZERS[config.get("optimizer", "adam")][0]  # runs from before the option: Adam
    optimizer = optimizer_class(wavefunction.parameters(), lr=float(config["lr"]))
    step, recoveries = 0, 0
    if resume:
        step, recoveries = _restore(path, wavefunction, optimizer, walkers)
    else:
        path.mkdir(parents=True, exist_ok=True)
        atomic_write(path / "config.json", json.dumps(config, indent=2))
        if int(config["pretrain_steps"]):
            _pretrain(config, path, molecule, wavefunction, walkers, progress)
        walkers.step(int(config["burn_in"]))
        _save(path, wavefunction, optimizer, walkers, step, recoveries)
    lr_scale = 0.5**recoveries
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=int(config["steps"]), initial=step, desc=f"VMC {config['system']}", unit="step")
    variances: deque[float] = deque(maxlen=100)  # recent local-energy variances, to see a divergence coming
    started = time.perf_counter()
    deadline = math.inf if config.get("max_minutes") is None else started + 60 * float(config["max_minutes"])
    with open(path / "metrics.jsonl", "a") as log:
        while step < int(config["steps"]) and time.perf_counter() < deadline:
            lr = lr_scale * learning_rate(step, float(config["lr"]), float(config["lr_decay"]))
            for group in optimizer.param_groups:
                group["lr"] = lr
            try:
                record = vmc_step(wavefunction, walkers, molecule, optimizer, int(config["mcmc_steps"]),
                                  float(config["clip"]))
                healthy = _finite(wavefunction) and not _exploded(record["variance"], variances)
            except MlmolError:
                healthy = False
            if not healthy:
                recoveries += 1
                if recoveries > int(config["max_recoveries"]):
                    raise MlmolError(f"the run diverged {recoveries} times; the last checkpoint is in {path}. "
                                     "Lower --lr and resume, or restart")
                step, _ = _restore(path, wavefunction, optimizer, walkers)
                lr_scale = 0.5**recoveries
                if bar is not None:
                    bar.write(f"step {step}: diverged (non-finite or exploding energies); back to the checkpoint, "
                              f"learning rate × {lr_scale:g}")
                continue
            step += 1
            variances.append(record["variance"])
            log.write(json.dumps({"step": step, "lr": lr, "elapsed_s": time.perf_counter() - started, **record}) + "\n")
            if bar is not None:
                bar.update()
                bar.set_postfix(E=f"{record['energy']:.4f}", acc=f"{record['acceptance']:.2f}")
            if step % int(config["checkpoint_every"]) == 0 or step == int(config["steps"]):
                log.flush()
                _save(path, wavefunction, optimizer, walkers, step, recoveries)
    if step % int(config["checkpoint_every"]):  # stopped by max_minutes between checkpoints
        _save(path, wavefunction, optimizer, walkers, step, recoveries)
    if bar is not None:
        bar.close()
    train_s = time.perf_counter() - started
    energy = evaluate(wavefunction, walkers, molecule, int(config["eval_steps"]), int(config["mcmc_steps"]))
    exact = EXACT_ENERGIES.get(config["system"])
    result = {"system": config["system"], "ansatz": config["ansatz"], "steps": step, **asdict(energy),
              "exact": exact, "error": None if exact is None else energy.value - exact,
              "train_s_this_call": train_s, "recoveries": recoveries,
              "parameters": sum(p.numel() for p in wavefunction.parameters())}
    atomic_write(path / "energy.json", json.dumps(result, indent=2))
    return result


def describe(result: dict) -> str:
    """One line: the energy with its standard error, and the error against the exact energy."""
    line = (f"E = {result['value']:.6f} ± {result['stderr']:.6f} Ha ({result['samples']:,} samples, "
            f"blocks of {result['block']})")
    if result.get("exact") is not None:
        line += f"; exact {result['exact']:.6f}, error {1e3 * result['error']:+.2f} mHa"
        if abs(result["error"]) <= 1.6e-3:
            line += " (within chemical accuracy)"
    return line if math.isfinite(result["value"]) else line + " — not finite"
