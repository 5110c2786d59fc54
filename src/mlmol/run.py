"""Boltzmann-generator runs: build the system, its training data and flow from a resolved config
(:mod:`mlmol.config`), train through :func:`mlmol.train.fit` into a run directory
(:mod:`mlmol.rundir`), load, sample and evaluate it.

Besides the shared files, RUN/data.npz holds the training samples ``x`` ``[n, dim]``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import experiments, flows, samplers, systems
from .config import energy_only, is_molecule, make_config
from .data import Samples, load_torch, pdb_text, save_array
from .errors import MlmolError
from .evaluation import ReferenceSamples, compare_to_reference, evaluate
from .flows import FlowModel
from .flows.molecular import rigid_torsions
from .generate import sample
from .rundir import RunDirectory
from .samplers.harmonic import harmonic_samples, minimise
from .systems import Energy
from .systems.forcefield import TorchEnergy
from .systems.molecule import Molecule
from .systems.particles import ParticleSystem
from .train import History, fit


def build_system(config: dict) -> Energy:
    """The system a resolved config names: a user's energy file, a molecule or a built-in system."""
    spec = config["system"]
    if "energy" in spec:
        return systems.from_file(spec["energy"], int(spec["dim"]), bounds=spec.get("bounds"),
                                 states=spec.get("states"))
    if is_molecule(spec):
        from .systems import molecules

        options = {"temperature": spec["temperature"], "workers": spec["workers"],  # filled by make_config
                   "backend": spec.get("backend", "auto")}  # runs from before the torch backend: auto
        if "pdb" in spec:
            return molecules.from_pdb(spec["pdb"], forcefield=spec["forcefield"],
                                      implicit_solvent=spec["implicit_solvent"],
                                      add_hydrogens=spec.get("add_hydrogens", True), **options)
        return molecules.molecule(spec["molecule"], **options)
    if "name" not in spec:
        raise MlmolError("config.system needs a 'name' (a built-in system), 'energy' and 'dim', "
                         "'molecule' or 'pdb'")
    return systems.get(spec["name"])


def device_of(config: dict) -> torch.device:
    """The config's device, or a clear error when CUDA is asked for and not available."""
    device = torch.device(config["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MlmolError("CUDA is not available here (torch.cuda.is_available() is False); use "
                         "--device cpu, or install a CUDA build of PyTorch (see Getting started: GPU install)")
    return device


def make_data(system: Energy, config: dict, progress: bool = False) -> torch.Tensor | None:
    """Training samples ``[n, dim]`` (float64) from the config's sampler: MD for molecules, else MCMC;
    None for sampler "none" (training from the energy alone)."""
    options = dict(config["data"])
    name = options.pop("sampler")
    if name == "none":
        return None
    if name == "md":
        if not isinstance(system, Molecule):
            raise MlmolError(f"the md sampler needs a molecule; {system.name} is not one: use metropolis")
        if options.get("starts") is None:  # a built-in molecule's own starts (see molecules.py), else one MD
            options["starts"] = system.starts
        if options.get("engine", "auto") == "auto":  # the batched engine wherever the torch force field runs
            options["engine"] = "torch" if isinstance(system.backend, TorchEnergy) else "openmm"
        if options["engine"] == "openmm":
            if options.get("ladder") is not None:
                warnings.warn("the OpenMM engine runs plain MD at the molecule's temperature: data.ladder and "
                              "data.rungs (parallel tempering) apply to the torch engine only, so this data set has "
                              "no tempering; use --data-engine torch where the torch force field covers the system",
                              stacklevel=2)
            for key in ("replicas", "compile", "ladder", "rungs"):  # the batched engine's options
                options.pop(key, None)
        return samplers.molecular_dynamics(system, options.pop("n"), seed=config["seed"], progress=progress,
                                           **options)
    sampler = samplers.SAMPLERS.get(name)
    if sampler is None:
        raise MlmolError(f"unknown sampler {name!r} (data.sampler in the config); choose one of "
                         f"{', '.join(samplers.SAMPLERS)}, md (molecules) or none (training from the energy alone)")
    return sampler(system, seed=config["seed"], **options)


def _data_bounds(data: torch.Tensor) -> list[list[float]]:
    lo, hi = data.min(0).values, data.max(0).values
    span = hi - lo
    return [[float(a), float(b)] for a, b in zip(lo - 0.75 * span, hi + 0.75 * span)]


def check_flow(config: dict, system: Energy) -> None:
    """The flow family and recipe fit the system: checked before any data are made."""
    kind, recipe = config["flow"]["kind"], config["recipe"]["name"]
    if kind == "molecular" and not isinstance(system, Molecule):
        raise MlmolError(f"the molecular flow needs a molecule; {system.name} is not one: use --flow realnvp or spline")
    if kind == "equivariant" and not isinstance(system, ParticleSystem):
        raise MlmolError(f"--flow equivariant needs a system of identical particles (dw4, lj13); {system.name} is "
                         "not one: use --flow realnvp or spline")
    if kind in ("realnvp", "spline") and system.dim < 2:
        raise MlmolError(f"--flow {kind} needs at least 2 coordinates; {system.name} has {system.dim} (--dim)")
    if recipe == "klein2023" and kind != "equivariant":
        raise MlmolError(f"{system.name} trains by equivariant flow matching, which needs --flow equivariant; "
                         f"drop --flow {kind}")
    flow_matched = recipe == "schopmans2025" and config["recipe"].get("fit") == "fm"
    if kind == "equivariant" and energy_only(config) and not flow_matched:
        raise MlmolError(f"the equivariant flow's density has no gradient, which {recipe} needs; train "
                         f"{system.name} from the energy alone with --losses ta (its rungs flow-matched), or use "
                         "--flow realnvp or spline")
    if flow_matched and kind != "equivariant":
        raise MlmolError(f"temperature annealing with fit fm flow-matches an equivariant flow; use --flow equivariant "
                         f"or fit ml for a {kind} flow")


def build_flow(config: dict, system: Energy, data: torch.Tensor | None) -> FlowModel:
    """The config's flow for ``system``, initialised from the seed (and standardised by ``data``)."""
    check_flow(config, system)
    torch.manual_seed(config["seed"])
    if config["flow"]["kind"] == "molecular":
        options = {k: v for k, v in config["flow"].items() if k != "kind"}
        bonds = [(a.index, b.index) for a, b in system.topology.bonds()]
        if data is None:  # from the energy alone: scales from the harmonic approximation, rigid torsions from chemistry
            x0 = minimise(system, torch.as_tensor(system.positions))
            data = harmonic_samples(system, x0, 20_000, torch.Generator().manual_seed(10_000 + config["seed"]))
            options["narrow"] = rigid_torsions([a.element.symbol for a in system.topology.atoms()], bonds)
        return flows.MolecularFlow(system.dim // 3, bonds, data=data.float(), **options)
    if config["flow"]["kind"] == "equivariant":
        return flows.build({**config["flow"], "n_particles": system.n_particles, "spatial_dim": system.spatial_dim})
    dim = system.dim
    loc = scale = None
    if data is not None:
        loc, scale = data.mean(0).float(), data.std(0).float().clamp(min=1e-3)
    elif system.bounds is not None:  # from the energy alone: the base spread over the system's box (± 3 sd)
        box = torch.tensor(system.bounds, dtype=torch.float32)
        loc, scale = box.mean(1), (box[:, 1] - box[:, 0]) / 6
    return flows.build({**config["flow"], "dim": dim}, loc=loc, scale=scale)


def _check_inputs(config: dict, run: RunDirectory) -> None:
    """The files a run reads again each time it is used (a user's energy file, a PDB) are still there."""
    for key in ("energy", "pdb"):
        recorded = config["system"].get(key)
        if recorded is not None and not Path(recorded.rpartition(":")[0] if key == "energy" else recorded).is_file():
            typed = config["system"].get("given")
            named = f"{recorded}" + (f", given as {typed}" if typed else "")
            raise MlmolError(f"the run's {key} file {named} (system.{key} in {run.config_file}) is gone; put it "
                             "back or point the config to its new place")


@dataclass
class Run:
    """A loaded Boltzmann-generator run: its directory, config, system, flow and training data ``[n, dim]``."""

    directory: RunDirectory
    config: dict
    system: Energy
    flow: FlowModel
    data: torch.Tensor | None
    history: History | None = None

    @property
    def path(self) -> Path:
        """The run directory."""
        return self.directory.path

    def sample(self, n: int, seed: int = 0, tau: float = 1.0) -> Samples:
        """``n`` reweightable samples at latent temperature ``tau`` (the system at τ·kT); molecules
        carry their topology."""
        samples = sample(self.flow, self.system, n, tau=tau, seed=seed)
        if isinstance(self.system, Molecule):
            samples.topology = pdb_text(self.system.topology, samples.x[0])
        return samples


def train(config: dict | None, out: str | Path, resume: bool = False, progress: bool = False,
          notify: Callable[[str], None] | None = None) -> Run:
    """Train a run in ``out`` (or with ``resume`` continue it): writes config.yaml, data.npz,
    checkpoint.pt and metrics.jsonl. ``notify`` (e.g. ``print``) is told of what the user should know:
    hydrogens added to a PDB, where a resumed run continues."""
    run = RunDirectory(Path(out))
    out = run.path
    run.start(resume)
    if resume:
        config = make_config(base=run.read_config())
        _check_inputs(config, run)
    elif config is None:
        raise MlmolError("give a config or resume an existing run")
    device = device_of(config)
    system = build_system(config).to(device)
    check_flow(config, system)
    if isinstance(system, Molecule) and notify is not None and not resume:
        for notice in system.notices():
            notify(notice)
    data_file = out / "data.npz"
    data = None
    if resume:
        if data_file.is_file():
            with np.load(data_file) as f:
                data = torch.from_numpy(f["x"])
    else:
        started = time.perf_counter()
        data = make_data(system, config, progress)
        data_seconds = time.perf_counter() - started
        if data is not None:
            systems.check_finite(system, data, "training samples")
            data = system.canonical(system.augment(data))  # unchanged unless the system has symmetries to remove
            if "energy" in config["system"] and config["system"].get("bounds") is None:
                config["system"]["bounds"] = _data_bounds(data)
                system = build_system(config).to(device)
        elif "energy" in config["system"] and config["system"].get("bounds") is None:
            raise MlmolError("training your own energy without data needs its box: give system.bounds in the config "
                             "([[lo, hi], ...] per coordinate), or use losses with data")
        out.mkdir(parents=True, exist_ok=True)
        if data is not None:
            save_array(data_file, x=data.numpy(), seconds=np.float64(data_seconds))  # seconds: wall time to make it
        run.write_config(config)
    flow = build_flow(config, system, data).to(device)
    recipe_options = {k: v for k, v in config["recipe"].items() if k != "name"}
    recipe = experiments.RECIPES[config["recipe"]["name"]](system, None if data is None else data.float(),
                                                            **recipe_options)
    history = fit(flow, recipe, seed=config["seed"], checkpoint=run.checkpoint, metrics=run.metrics_log,
                  resume=resume, progress=progress, notify=notify)
    last = next((r for r in reversed(history.records) if "n_nonfinite_energy" in r), None)
    if notify is not None and last is not None and last["n_nonfinite_energy"] > 0.1 * recipe.stages[-1].batch_size:
        notify(f"warning: {last['n_nonfinite_energy']} of {recipe.stages[-1].batch_size} generator samples had a "
               f"NaN or infinite energy at step {last['step']}; the energy may be undefined where the flow puts "
               "mass (see metrics.jsonl, n_nonfinite_energy), and such samples get weight zero")
    return Run(run, config, system, flow, data, history)


def load(path: str | Path) -> Run:
    """Load a trained run (config, system, flow weights, training data, logged steps) from its directory."""
    run = RunDirectory(Path(path))
    path = run.path
    config = make_config(base=run.read_config())
    _check_inputs(config, run)
    system = build_system(config)
    state = load_torch(run.checkpoint)
    data = None
    if (path / "data.npz").is_file():
        with np.load(path / "data.npz") as f:
            data = torch.from_numpy(f["x"])
    try:
        flow = flows.build(state["spec"])
        flow.load_state_dict(state["flow"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise MlmolError(f"the checkpoint in {path} does not match its config.yaml ({error}); "
                         "train again") from None
    flow.eval()
    return Run(run, config, system, flow, data, History(run.read_log()))


def load_reference(path: str | Path, system: Energy) -> ReferenceSamples:
    """Reference configurations from an ``.npz`` file, checked against the system: ``x`` ``[frames, dim]``
    (nm), ``chains`` (optional: how many independent chains ``x`` interleaves frame-major,
    ``x[t * chains + c]``; default 1) and ``md`` (optional: time-ordered MD trajectories of the same
    ensemble ``[trajectories, frames, dim]`` for TICA)."""
    if not isinstance(system, Molecule):
        raise MlmolError("--reference compares a molecule's samples with reference configurations; this run's "
                         "system is not a molecule")
    try:
        with np.load(path) as data:
            x = torch.as_tensor(np.asarray(data["x"], dtype=np.float64))
            chains = int(data["chains"]) if "chains" in data else 1
            md = np.asarray(data["md"], dtype=np.float32) if "md" in data else None
    except KeyError:
        raise MlmolError(f"{path} has no array 'x' of reference configurations [frames, {system.dim}] (nm)") from None
    except (ValueError, OSError) as error:
        raise MlmolError(f"{path} is not an .npz file of reference configurations ({error})") from None
    x = x.reshape(len(x), -1)
    if x.shape[1] != system.dim:
        raise MlmolError(f"{path} holds configurations of {x.shape[1]} coordinates; {system.name} has {system.dim}")
    if chains < 1 or len(x) % chains:
        raise MlmolError(f"{path}: its {len(x)} frames do not split into chains={chains} trajectories of equal "
                         "length; store x frame-major (x[t * chains + c]) or leave chains out")
    if md is not None and (md.ndim != 3 or md.shape[2] != system.dim):
        raise MlmolError(f"{path}: md must be MD trajectories [trajectories, frames, {system.dim}] (nm), got shape "
                         f"{md.shape}")
    return ReferenceSamples(x, chains, md)


def evaluate_run(run: Run, n: int | None = None, seed: int = 0, samples: Samples | None = None,
                 source: str | Path | None = None, reference: str | Path | None = None) -> dict:
    """Evaluate a run on fresh samples (or given ones) and write RUN/metrics.json.

    ``seed`` draws the fresh samples and is recorded with them (given samples record none: their seed is
    that of the command that drew them). ``source``, the file the given samples were loaded from, is
    recorded (absolute path) as ``"samples"`` so that ``mlmol report`` draws its figures from the same
    samples. ``reference``, a file of the molecule's reference configurations (``.npz`` with ``x``
    ``[frames, 3N]`` nm, e.g. from benchmarks/peptide_reference.py), adds the W2 distances to it
    (:func:`~mlmol.evaluation.compare_to_reference`; its subsets are drawn with ``seed``)."""
    options, given = run.config["evaluate"], samples
    reference_samples = None if reference is None else load_reference(reference, run.system)  # before long work
    if samples is None:
        samples = run.sample(n or options["n"], seed=seed)
    elif samples.x.shape[-1] != run.system.dim:
        raise MlmolError(f"the samples have dim {samples.x.shape[-1]} but the run's system has dim {run.system.dim}")
    result = evaluate(run.system, samples, options["bins"], options["max_f"])
    result["seed"] = seed if given is None else None
    if source is not None:
        result["samples"] = str(Path(source).resolve())
    if reference_samples is not None:
        result["reference"] = {**compare_to_reference(run.system, samples, reference_samples, seed=seed),
                               "file": str(Path(reference).resolve())}
    run.directory.write_metrics(result)
    return result
