"""A VMC run: the run directory every kind shares (:mod:`mlmol.rundir`), trained by the shared loop.

RUN/config.yaml      kind vmc: the system, the ansatz and the optimisation settings
RUN/checkpoint.pt    wavefunction, optimiser, walkers and step (written atomically)
RUN/metrics.jsonl    one line per step: energy, variance, acceptance, move width, learning rate, seconds since
                     this call started (after a recovery the steps since the checkpoint appear again;
                     the later line counts)
RUN/metrics.json     the evaluation: energy ± blocking standard error, exact and error
RUN/pretrain.json    with --pretrain: the Hartree–Fock energy and the pre-training losses
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch

from ..data import atomic_write, load_torch
from ..errors import MlmolError
from ..rundir import RunDirectory
from ..train import Recipe, Stage, fit
from .optimize import NaturalGradient, VMCObjective, evaluate
from .sampling import Walkers
from .systems import EXACT_ENERGIES, ElectronicSystem, get
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


def build(config: dict) -> tuple[ElectronicSystem, torch.nn.Module]:
    molecule = get(config["system"])
    torch.manual_seed(config["seed"])
    return molecule, ANSATZE[config["ansatz"]](molecule).double()


def _pretrain(config: dict, path: Path, molecule: ElectronicSystem, wavefunction, walkers: Walkers, progress: bool) -> None:
    """Fit the orbitals to Hartree–Fock (RUN/pretrain.json: HF energy and losses); the walkers start
    from the Hartree–Fock samples."""
    from .hartree_fock import hartree_fock, pretrain

    hf = hartree_fock(molecule, config["basis"])
    x, losses = pretrain(wavefunction, hf, molecule, int(config["pretrain_steps"]), len(walkers.x),
                         seed=int(config["seed"]), progress=progress)
    walkers.place(x)
    atomic_write(path / "pretrain.json", json.dumps({"basis": hf.basis, "hartree_fock_energy": hf.energy,
                                                     "loss_first": losses[0], "loss_last": losses[-1]}, indent=2))


def recipe(config: dict, molecule: ElectronicSystem, walkers: Walkers) -> Recipe:
    """One stage of ``steps`` steps of :class:`~mlmol.vmc.optimize.VMCObjective` with the configured
    optimiser, FermiNet's learning-rate decay lr / (1 + t / ``lr_decay``), and recovery from
    diverging steps (at most ``max_recoveries``, each halving the learning rate)."""
    optimizer = config.get("optimizer", "adam")  # runs from before the option: Adam
    objective = VMCObjective(molecule, walkers, int(config["mcmc_steps"]), float(config["clip"]),
                             natural_gradient=optimizer == "natural-gradient")
    make = partial(NaturalGradient, source=objective) if optimizer == "natural-gradient" else OPTIMIZERS[optimizer][0]
    stage = Stage(int(config["steps"]), objective, lr=float(config["lr"]), batch_size=len(walkers.x),
                  name="vmc", decay=float(config["lr_decay"]), optimizer=make)
    return Recipe([stage], grad_clip=math.inf, max_recoveries=int(config["max_recoveries"]))


def train(config: dict | None, out: str | Path, resume: bool = False, progress: bool = False,
          steps: int | None = None, max_minutes: float | None = None,
          notify: Callable[[str], None] | None = None) -> dict:
    """Train (or with ``resume`` continue) a VMC run in ``out`` through :func:`mlmol.train.fit`, then
    evaluate it (RUN/metrics.json); returns the evaluation.

    ``max_minutes`` (in the config) stops training after that much wall time in this call; on resume,
    ``steps`` and ``max_minutes`` replace the run's settings. A step whose local energies are all
    non-finite, whose natural-gradient solve fails, that leaves non-finite parameters, or whose
    local-energy variance explodes sends the run back to its last checkpoint with the learning rate
    halved (at most ``max_recoveries`` times).
    """
    run = RunDirectory(Path(out))
    run.start(resume)
    if resume:
        config = run.read_config()
        if steps is not None or max_minutes is not None:
            config.update({k: v for k, v in (("steps", steps), ("max_minutes", max_minutes)) if v is not None})
            run.write_config(config)
    elif config is None:
        raise MlmolError("give a config or resume an existing run")
    molecule, wavefunction = build(config)
    walkers = Walkers(wavefunction, molecule, int(config["walkers"]), seed=int(config["seed"]))
    if not resume:
        run.write_config({"kind": "vmc", **config})
        if int(config["pretrain_steps"]):
            _pretrain(config, run.path, molecule, wavefunction, walkers, progress)
        walkers.step(int(config["burn_in"]))
    plan = recipe(config, molecule, walkers)
    max_seconds = None if config.get("max_minutes") is None else 60 * float(config["max_minutes"])
    started = time.perf_counter()
    fit(wavefunction, plan, seed=int(config["seed"]), checkpoint=run.checkpoint, metrics=run.metrics_log,
        resume=resume, progress=progress, log_every=1, checkpoint_every=int(config["checkpoint_every"]),
        max_seconds=max_seconds, description=f"VMC {config['system']}", notify=notify)
    state = load_torch(run.checkpoint)
    training = {"train_s_this_call": time.perf_counter() - started, "recoveries": state["recoveries"]}
    return evaluate_run(run, wavefunction, plan.stages[0].loss, training, step=state["step"])


def _restored(run: RunDirectory, config: dict) -> tuple[ElectronicSystem, torch.nn.Module, VMCObjective, int]:
    """The system, wavefunction, objective (walkers included) and step of the run's checkpoint."""
    molecule, wavefunction = build(config)
    walkers = Walkers(wavefunction, molecule, int(config["walkers"]), seed=int(config["seed"]))
    objective = recipe(config, molecule, walkers).stages[0].loss
    state = load_torch(run.checkpoint)
    try:
        wavefunction.load_state_dict(state["flow"])
        objective.load_state_dict(state["losses"][0])
    except (KeyError, IndexError, RuntimeError) as error:
        raise MlmolError(f"the checkpoint in {run.path} does not match its config ({error}); train again") from None
    return molecule, wavefunction.eval(), objective, state["step"]


def load(out: str | Path) -> tuple[dict, ElectronicSystem, torch.nn.Module, VMCObjective]:
    """The config, system, trained wavefunction and objective (with its walkers where training left
    them) of a VMC run directory."""
    run = RunDirectory(Path(out))
    config = run.read_config()
    molecule, wavefunction, objective, _ = _restored(run, config)
    return config, molecule, wavefunction, objective


def evaluate_run(run: RunDirectory, wavefunction: torch.nn.Module | None = None,
                 objective: VMCObjective | None = None, training: dict | None = None,
                 step: int | None = None) -> dict:
    """The energy ± blocking standard error over ``eval_steps`` sweeps of the walkers from where
    training left them (loaded from the checkpoint unless given with the ``step`` they are at),
    against the exact energy; written to RUN/metrics.json with what training recorded there
    (``training``, else the earlier file's)."""
    config = run.read_config()
    if wavefunction is None or objective is None or step is None:
        _, wavefunction, objective, step = _restored(run, config)
    energy = evaluate(wavefunction, objective.walkers, objective.molecule, int(config["eval_steps"]),
                      int(config["mcmc_steps"]))
    exact = EXACT_ENERGIES.get(config["system"])
    earlier = run.read_metrics() or {}
    training = training or {k: earlier[k] for k in ("train_s_this_call", "recoveries") if k in earlier}
    result = {"system": config["system"], "ansatz": config["ansatz"], "steps": step, **asdict(energy),
              "exact": exact, "error": None if exact is None else energy.value - exact, **training,
              "parameters": sum(p.numel() for p in wavefunction.parameters())}
    run.write_metrics(result)
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
