"""Run directories: a resolved config, training data, checkpoint, metrics (see DESIGN.md).

``RUN/config.yaml`` is enough to rerun: ``mlmol train RUN/config.yaml --out RUN2``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from . import __version__, estimators, experiments, flows, samplers, systems
from .data import Samples, atomic_write, load_torch, pdb_text, save_array, save_torch
from .errors import MlmolError
from .flows import Flow
from .systems import Energy
from .train import History, fit

DEFAULTS: dict = {
    "system": {"name": "double-well"},
    "seed": 0,
    "device": "cpu",
    "threads": 1,
    "data": {"sampler": "metropolis", "n": 10_000, "step": 0.1, "chains_per_start": 50,
             "burn": 100, "thin": 10, "starts": None},
    "flow": {"kind": "realnvp", "blocks": 4, "hidden": [100, 100, 100]},
    "recipe": {"name": "noe2019"},
    "evaluate": {"n": 100_000, "bins": 60, "max_f": 5.0},
}


MOLECULE_DEFAULTS: dict = {  # the alanine dipeptide schedule of benchmarks/ala2_bg.py (20-22 min on 2 cores there)
    **DEFAULTS,
    "system": {"molecule": "alanine-dipeptide", "temperature": 300.0, "workers": 1},
    # many frames matter more than long training: 20,000 frames were memorised (held-out frames 13.7 nats
    # less likely than training frames, ESS 0.15%); 95,000 generalise (benchmarks/ala2_data_size.py)
    "data": {"sampler": "md", "n": 100_000, "interval": 100, "timestep_fs": 1.0, "equilibration": 5_000,
             "starts": None},
    "flow": {"kind": "molecular", "blocks": 4, "hidden": [128, 128], "bins": 8, "narrow_std": 0.5},
    "recipe": {"name": "noe2019", "losses": "ml", "steps": 1_000, "ml_fraction": 1.0, "ml_batch": 1024,
               "ml_lr": 1e-3, "ml_lr_end": 1e-4, "batch": 256, "lr": 1e-5, "high": 1e4, "cap": 1e8,
               "validation": 0.05},
    "evaluate": {"n": 100_000, "bins": 60, "max_f": 5.0},
}


def _particle_defaults(data: dict, cutoff: float, steps: int) -> dict:
    """Identical particles: Metropolis data, an equivariant flow, equivariant flow matching."""
    return {**DEFAULTS,
            "data": {"sampler": "metropolis", "n": 100_000, "chains_per_start": 1000, "starts": None, **data},
            "flow": {"kind": "equivariant", "hidden": 64, "layers": 3, "basis": 16, "cutoff": cutoff, "steps": 20},
            "recipe": {"name": "klein2023", "steps": steps, "batch": 256, "lr": 1e-3, "lr_end": 1e-5},
            "evaluate": {"n": 20_000, "bins": 60, "max_f": 5.0}}


SYSTEM_DEFAULTS: dict = {  # flows and schedules used by benchmarks/particles_bg.py
    "dw4": _particle_defaults({"step": 0.25, "burn": 20_000, "thin": 500}, cutoff=8.0, steps=20_000),
    # LJ-13: sweeps of single-particle moves relax the cluster (burn and thin count sweeps)
    "lj13": _particle_defaults({"moves": "particle", "step": 0.1, "burn": 5000, "thin": 100}, cutoff=4.0,
                               steps=10_000),
    # the solvated dimer as benchmarks/dimer_bg.py runs it (Noé et al. 2019): particle sweeps from both
    # states, mirror images and relabelled solvent (SolvatedDimer.augment/canonical), the paper's RealNVP,
    # ML then ML + KL + RC; 30-60 min of data and training on one core
    "solvated-dimer": {
        **DEFAULTS,
        "data": {"sampler": "metropolis", "n": 40_000, "moves": "particle", "step": 0.1, "chains_per_start": 1000,
                 "burn": 1000, "thin": 50, "starts": None},
        "flow": {"kind": "realnvp", "blocks": 8, "hidden": [200, 200, 200]},
        "recipe": {"name": "noe2019", "losses": "ml+kl+rc", "steps": 8000, "ml_fraction": 0.5, "ml_batch": 512,
                   "ml_lr": 1e-3, "ml_lr_end": 1e-5, "batch": 512, "lr": 1e-4, "lr_end": 1e-5, "high": 1e3,
                   "cap": 1e6, "w_rc": 5.0},
        # the weights are spread thin (ESS about 0.005%): ΔF needs millions of samples
        "evaluate": {"n": 1_000_000, "bins": 60, "max_f": 5.0},
    },
}


def is_molecule(spec: dict) -> bool:
    return "molecule" in spec or "pdb" in spec


def _merge(base: dict, update: dict, where: str = "config") -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key not in out and where != "config.system" and not where.startswith("config.recipe"):
            known = ", ".join(sorted(out))
            raise MlmolError(f"unknown key {key!r} in {where}; known keys: {known}")
        if isinstance(value, dict) and isinstance(out.get(key), dict) and where + "." + key != "config.system":
            out[key] = _merge(out[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def read_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise MlmolError(f"cannot read config {path}: {error}") from None
    if not isinstance(loaded, dict):
        raise MlmolError(f"config {path} must be a mapping of keys to values")
    loaded.pop("mlmol_version", None)
    return loaded


def make_config(system: str | None = None, energy: str | None = None, dim: int | None = None,
                base: dict | None = None, **overrides) -> dict:
    """A fully resolved config from a system name or an energy file, a base config and overrides."""
    from .systems.molecules import MOLECULES

    base = dict(base or {})
    if system in MOLECULES:
        base["system"] = {"molecule": system}
        system = None
    molecular = is_molecule(base.get("system", {}))
    name = system if system is not None and energy is None else base.get("system", {}).get("name")
    config = _merge(MOLECULE_DEFAULTS if molecular else SYSTEM_DEFAULTS.get(name, DEFAULTS), base)
    if molecular:
        defaults = {"temperature": 300.0, "workers": 1, "backend": "auto"}
        if "pdb" in config["system"]:
            defaults.update(forcefield=["amber14-all.xml"], implicit_solvent=None)
            config["system"]["pdb"] = str(Path(config["system"]["pdb"]).resolve())
        config["system"] = {**defaults, **config["system"]}
    if energy is not None:
        if dim is None:
            raise MlmolError("--energy needs --dim D, the number of coordinates the function takes")
        path, _, function = energy.rpartition(":")
        config["system"] = {"energy": f"{Path(path).resolve()}:{function}" if path else energy, "dim": dim}
    elif system is not None:
        config["system"] = {"name": system}
    if dim is not None and "name" in config["system"]:
        built_dim = systems.get(config["system"]["name"]).dim
        if dim != built_dim:
            raise MlmolError(f"{config['system']['name']} has dim {built_dim}, but --dim {dim} was given; "
                             "drop --dim for a built-in system")
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("steps", "losses"):
            config["recipe"][key] = value
        elif key == "backend":
            if not molecular:
                raise MlmolError("--energy-backend applies to molecules (a built-in molecule or --pdb) only")
            config["system"]["backend"] = value
        elif key == "flow_kind":
            if value != config["flow"].get("kind"):  # another family: its own default options
                config["flow"] = {"kind": value}
        else:
            config[key] = value
    name = config["recipe"].get("name", "noe2019")
    if name not in experiments.RECIPES:
        raise MlmolError(f"unknown recipe {name!r}; known: {', '.join(experiments.RECIPES)}")
    config["recipe"] = {"name": name, **experiments.recipe_defaults(name),
                        **{k: v for k, v in config["recipe"].items() if k != "name"}}
    unknown = set(config["recipe"]) - {"name", *experiments.recipe_defaults(name)}
    if unknown:
        raise MlmolError(f"unknown recipe options {sorted(unknown)}; known: "
                         f"{', '.join(experiments.recipe_defaults(name))}")
    if config["device"] not in ("cpu", "cuda") and not str(config["device"]).startswith("cuda:"):
        raise MlmolError(f"unknown device {config['device']!r}; use cpu or cuda")
    return config


def build_system(config: dict) -> Energy:
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
                                      implicit_solvent=spec["implicit_solvent"], **options)
        return molecules.molecule(spec["molecule"], **options)
    if "name" not in spec:
        raise MlmolError("config.system needs a 'name' (a built-in system), 'energy' and 'dim', "
                         "'molecule' or 'pdb'")
    return systems.get(spec["name"])


def device_of(config: dict) -> torch.device:
    device = torch.device(config["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MlmolError("CUDA is not available here (torch.cuda.is_available() is False); use "
                         "--device cpu, or install a CUDA build of PyTorch (see the README)")
    return device


def make_data(system: Energy, config: dict, progress: bool = False) -> torch.Tensor:
    options = dict(config["data"])
    name = options.pop("sampler")
    if name == "md":
        if options.get("starts") is None:  # a built-in molecule's own starts (see molecules.py), else one MD
            options["starts"] = getattr(system, "starts", None)
        return samplers.molecular_dynamics(system, options.pop("n"), seed=config["seed"], progress=progress,
                                           **options)
    sampler = samplers.SAMPLERS.get(name)
    if sampler is None:
        raise MlmolError(f"unknown sampler; choose one of {', '.join(samplers.SAMPLERS)}")
    return sampler(system, seed=config["seed"], **options)


def _data_bounds(data: torch.Tensor) -> list[list[float]]:
    lo, hi = data.min(0).values, data.max(0).values
    span = hi - lo
    return [[float(a), float(b)] for a, b in zip(lo - 0.75 * span, hi + 0.75 * span)]


def build_flow(config: dict, system: Energy, data: torch.Tensor | None) -> Flow:
    torch.manual_seed(config["seed"])
    if config["flow"]["kind"] == "molecular":
        options = {k: v for k, v in config["flow"].items() if k != "kind"}
        bonds = [(a.index, b.index) for a, b in system.topology.bonds()]
        return flows.MolecularFlow(system.dim // 3, bonds, data=None if data is None else data.float(), **options)
    if config["flow"]["kind"] == "equivariant":
        if not hasattr(system, "n_particles"):
            raise MlmolError(f"the equivariant flow needs a system of identical particles; {system.name} is not one. "
                             "Use flow kind realnvp or spline")
        return flows.build({**config["flow"], "n_particles": system.n_particles, "spatial_dim": system.spatial_dim})
    dim = system.dim
    loc = scale = None
    if data is not None:
        loc, scale = data.mean(0).float(), data.std(0).float().clamp(min=1e-3)
    return flows.build({**config["flow"], "dim": dim}, loc=loc, scale=scale)


@dataclass
class Run:
    """A loaded run: its directory, config, system, flow and training data."""

    path: Path
    config: dict
    system: Energy
    flow: Flow
    data: torch.Tensor | None
    history: History | None = None

    def sample(self, n: int, seed: int = 0, temperature: float = 1.0) -> Samples:
        from .generate import sample

        samples = sample(self.flow, self.system, n, temperature=temperature, seed=seed)
        if getattr(self.system, "topology", None) is not None:
            samples.topology = pdb_text(self.system.topology, samples.x[0])
        return samples


def write_config(config: dict, path: Path) -> None:
    text = yaml.safe_dump({"mlmol_version": __version__, **config}, sort_keys=False)
    atomic_write(path, text)


def train(config: dict, out: str | Path, resume: bool = False, progress: bool = False) -> Run:
    """Train a run in ``out``: writes config.yaml, data.npz, checkpoint.pt and metrics.jsonl."""
    out = Path(out)
    checkpoint = out / "checkpoint.pt"
    if resume:
        if not (out / "config.yaml").is_file():
            raise MlmolError(f"cannot resume: {out}/config.yaml does not exist; train without --resume")
        if not checkpoint.is_file():
            raise MlmolError(f"cannot resume: no checkpoint at {checkpoint}; train without --resume")
        config = make_config(base=read_config(out / "config.yaml"))
    elif checkpoint.exists():
        raise MlmolError(f"{out} already holds a trained run; pass --resume to continue it "
                         "or choose another --out")
    device = device_of(config)
    system = build_system(config).to(device)
    data_file = out / "data.npz"
    if resume and data_file.is_file():
        with np.load(data_file) as f:
            data = torch.from_numpy(f["x"])
    else:
        data = make_data(system, config, progress)
        systems.check_finite(system, data, "training samples")
        data = system.canonical(system.augment(data))  # unchanged unless the system has symmetries to remove
        if "energy" in config["system"] and config["system"].get("bounds") is None:
            config["system"]["bounds"] = _data_bounds(data)
            system = build_system(config).to(device)
        out.mkdir(parents=True, exist_ok=True)
        save_array(data_file, x=data.numpy())
        write_config(config, out / "config.yaml")
    flow = build_flow(config, system, data).to(device)
    recipe_options = {k: v for k, v in config["recipe"].items() if k != "name"}
    recipe = experiments.RECIPES[config["recipe"]["name"]](system, data.float(), **recipe_options)
    history = fit(flow, recipe, seed=config["seed"], checkpoint=checkpoint, metrics=out / "metrics.jsonl",
                  resume=resume, progress=progress)
    return Run(out, config, system, flow, data, history)


def load(path: str | Path) -> Run:
    """Load a trained run (config, system, flow weights, training data) from its directory."""
    path = Path(path)
    if not path.is_dir():
        raise MlmolError(f"run directory {path} does not exist; train first: mlmol train SYSTEM --out {path}")
    if not (path / "config.yaml").is_file():
        raise MlmolError(f"{path} is not a run directory (no config.yaml); train first: "
                         f"mlmol train SYSTEM --out {path}")
    config = make_config(base=read_config(path / "config.yaml"))
    system = build_system(config)
    state = load_torch(path / "checkpoint.pt")
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
    records = []
    if (path / "metrics.jsonl").is_file():
        records = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return Run(path, config, system, flow, data, History(records))


def evaluate(system: Energy, samples: Samples, bins: int = 60, max_f: float = 5.0) -> dict:
    """ESS, ΔF between the system's states and free-energy profiles, against exact where possible."""
    exact = system.bounds is not None and system.dim <= 2
    result: dict = {"n": len(samples), "kT": samples.kT, "ess": estimators.ess(samples.log_weights),
                    "ess_fraction": estimators.ess_fraction(samples.log_weights),
                    # zero weights: non-finite energies, or outside the system's canonical domain
                    "weighted_fraction": float(torch.isfinite(samples.log_weights).double().mean())}
    if system.states is not None:
        a, b = system.states
        entry = {"states": [a, b]}
        try:
            estimate = estimators.delta_f(samples, systems.State(a, system.variables),
                                          systems.State(b, system.variables))
            entry.update(value=estimate.value, stderr=estimate.stderr)
        except MlmolError as error:  # e.g. no sample in one state: report the rest, say why ΔF is missing
            if exact:
                raise
            entry["unavailable"] = str(error)
        if exact:
            entry["exact"] = estimators.exact_delta_f(system, a, b)
            entry["error"] = estimate.value - entry["exact"]
        result["delta_f"] = entry
    if getattr(system, "topology", None) is not None:
        from .systems.molecules import chiral_centres, wrong_handed_fraction

        centres = chiral_centres(system.topology)
        reference = torch.as_tensor(system.positions, dtype=samples.x.dtype)
        result["wrong_handed_fraction"] = wrong_handed_fraction(samples.x, reference, centres)
        result["chiral_centres"] = len(centres)
    if exact:
        result["profiles"] = {}
        for coordinate in system.profile_coords:
            edges = estimators.default_edges(system, coordinate, bins)
            profile = estimators.free_energy_profile(samples, coordinate, edges)
            rmse, compared = estimators.profile_rmse(profile, estimators.exact_profile(system, coordinate, edges),
                                                     max_f)
            result["profiles"][f"x{coordinate}"] = {"rmse": rmse, "bins_compared": compared, "max_f": max_f}
    return result


def evaluate_run(run: Run, n: int | None = None, seed: int = 0, samples: Samples | None = None,
                 source: str | Path | None = None) -> dict:
    """Evaluate a run on fresh samples (or given ones) and write RUN/metrics.json.

    ``source``, the file the given samples were loaded from, is recorded (absolute path) as
    ``"samples"`` so that ``mlmol report`` draws its figures from the same samples."""
    options = run.config["evaluate"]
    if samples is None:
        samples = run.sample(n or options["n"], seed=seed)
    elif samples.x.shape[-1] != run.system.dim:
        raise MlmolError(f"the samples have dim {samples.x.shape[-1]} but the run's system has dim {run.system.dim}")
    result = evaluate(run.system, samples, options["bins"], options["max_f"])
    result["seed"] = seed
    if source is not None:
        result["samples"] = str(Path(source).resolve())
    atomic_write(run.path / "metrics.json", json.dumps(result, indent=2))
    return result


def simulate(system, out: str | Path, n_frames: int, interval: int = 250, seed: int = 0, resume: bool = False,
             chunk: int = 500, progress: bool = False, **md_options) -> torch.Tensor:
    """Langevin MD of an OpenMM system into a trajectory file (format by suffix), resumable.

    Every ``chunk`` frames the trajectory and ``OUT.chk`` (the MD state) are written
    atomically; ``resume=True`` continues from them to ``n_frames`` frames in total.
    An existing trajectory is never overwritten without ``resume``.
    """
    from .data import load_trajectory, save_trajectory
    from .samplers import MolecularDynamics

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
