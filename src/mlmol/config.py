"""The config of a Boltzmann-generator run: defaults per kind of system, merging a user's config
into them, and resolving it fully (every option written out, so RUN/config.yaml reruns the run)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

from . import experiments, flows, systems
from .errors import MlmolError

DEFAULTS: dict = {
    "kind": "bg",
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


MOLECULE_DEFAULTS: dict = {  # the alanine dipeptide schedule of benchmarks/ala2_bg.py (about 17 min on 2 cores there)
    **DEFAULTS,
    "system": {"molecule": "alanine-dipeptide", "temperature": 300.0, "workers": 1},
    # many frames matter more than long training: 20,000 frames were memorised (held-out frames 13.7 nats
    # less likely than training frames, ESS 0.15%); 95,000 generalise (benchmarks/ala2_data_size.py)
    # MD data on the batched torch engine where the torch force field supports the molecule (engine "auto"),
    # else OpenMM: 32 parallel-tempering chains of 9 temperatures up to 1000 K started in the molecule's
    # basins, frames of the molecule's temperature every 0.1 ps after 100 ps (short plain replicas stay in
    # the basins they started in: the implicit-solvent generator reached ESS 4.4% on them); hydrogens at
    # 3.024 amu, 3 fs (hot replicas move faster than 4 fs allows)
    "data": {"sampler": "md", "engine": "auto", "n": 100_000, "interval": 33, "timestep_fs": 3.0,
             "hydrogen_mass": 3.024, "replicas": 32, "ladder": [1000.0, 9], "rungs": 1, "compile": True,
             "equilibration": 33_000, "starts": None},
    "flow": {"kind": "molecular", "blocks": 4, "hidden": [128, 128], "bins": 8, "narrow_std": 0.5},
    "recipe": {"name": "noe2019", "losses": "ml", "steps": 1_000, "ml_fraction": 1.0, "ml_batch": 1024,
               "ml_lr": 1e-3, "ml_lr_end": 1e-4, "batch": 256, "lr": 1e-5, "high": 1e4, "cap": 1e8,
               "validation": 0.05},
    "evaluate": {"n": 100_000, "bins": 60, "max_f": 5.0},
}


# longer peptides need more of everything: their schedules over MOLECULE_DEFAULTS, by the number of residues
# (caps not counted), each measured on a peptide of that size (docs/peptides.md) and written out in examples/
PEPTIDE_SCHEDULES: tuple[tuple[int, str, dict], ...] = (
    # Ace-Ala3-Nme: 64 chains, four times as long, the frames of the two lowest rungs, three times the ML steps
    (2, "examples/peptide.yaml", {"data": {"n": 800_000, "replicas": 64, "rungs": 2}, "recipe": {"steps": 3000}}),
    # Ace-Ala6-Nme: 72 atoms need closer rungs (12 up to 800 K); fewer frames so that MD fits the same hours
    (6, "examples/hexapeptide.yaml", {"data": {"n": 300_000, "replicas": 48, "ladder": [800.0, 12], "rungs": 2},
                                      "recipe": {"steps": 3000}}),
)


def residues(spec: dict) -> int:
    """The amino-acid residues (those with a Cα; caps not counted) of a config's molecule."""
    if "pdb" not in spec:
        return 1  # the built-in molecules are alanine dipeptide
    path = Path(spec["pdb"])  # a missing file reaches read_pdb's error (errors are not cached)
    return _residues_in(str(path), path.stat().st_mtime_ns if path.is_file() else -1)


@functools.lru_cache(maxsize=8)
def _residues_in(path: str, modified_ns: int) -> int:
    """:func:`residues` of the PDB at ``path`` as it was at ``modified_ns`` (read once per version)."""
    from .systems.molecules import read_pdb

    return sum(any(atom.name == "CA" for atom in residue.atoms()) for residue in read_pdb(path).topology.residues())


def peptide_schedule(count: int) -> tuple[str, dict] | None:
    """The schedule (its examples/ file and settings) over MOLECULE_DEFAULTS for a peptide of ``count``
    residues, or None for one residue (the defaults' own size)."""
    chosen = [(path, settings) for least, path, settings in PEPTIDE_SCHEDULES if count >= least]
    return chosen[-1] if chosen else None


def molecule_defaults(spec: dict) -> dict:
    """MOLECULE_DEFAULTS with the data and training schedule of the molecule's size (:data:`PEPTIDE_SCHEDULES`)."""
    schedule = peptide_schedule(residues(spec))
    return MOLECULE_DEFAULTS if schedule is None else merge(MOLECULE_DEFAULTS, schedule[1])


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


ENERGY_LOSSES = {"fab": "midgley2023", "ta": "schopmans2025", "kl": "noe2019"}  # --losses from the energy alone

# each system's flow and options of the energy-only recipes, as benchmarks/energy_only.py runs them
ENERGY_DEFAULTS: dict = {
    "gmm-40": {"flow": {"kind": "realnvp", "blocks": 8, "hidden": [128, 128]},
               "fab": {"steps": 4000, "batch": 128, "lr": 3e-4, "levels": 1, "step_size": 1.0},
               "kl": {"steps": 4000, "batch": 128, "lr": 3e-4},
               "ta": {"steps": 4000, "batch": 128, "lr": 3e-4, "high": 16.0, "temperatures": 5}},
    # spline couplings: a pair's bimodal x₁ marginal is one monotone spline away from a Gaussian, where affine
    # couplings of independent pairs must build it from the other coordinates (in trials they stayed far from it)
    "many-well-32": {"flow": {"kind": "spline", "blocks": 4, "hidden": [128, 128], "bins": 8},
                     "fab": {"steps": 4000, "batch": 512, "lr": 3e-4, "levels": 4, "moves": 2, "step_size": 0.5,
                             "capacity": 131_072, "min_length": 32_768, "updates": 8},
                     # reverse KL with about twice the evaluations FAB's AIS makes per step (512 × 9 every 8 steps)
                     "kl": {"steps": 4000, "batch": 1152, "lr": 3e-4},
                     "ta": {"steps": 4000, "batch": 512, "lr": 3e-4, "high": 4.0, "temperatures": 4}},
    # alanine dipeptide from the energy alone, after TA-BG's schedule scaled to 2 hours on 2 cores: reverse KL
    # at 1200 K, then down to 300 K in 9 rungs (ratio 0.857), one pool of 500,000 samples per rung with plain
    # importance weights, the largest 0.01% of them clipped; a pool below 1% ESS (5,000 effective samples) is
    # fitted with its log weights scaled down until it reaches 1% (no measured difference: two of three seeds
    # meet the bar with and without it)
    "alanine-dipeptide-implicit": {
        "ta": {"steps": 20_000, "kl_fraction": 0.5, "batch": 256, "lr": 5e-4, "high": 4.0, "temperatures": 10,
               "pool": 500_000, "refresh": 1112, "anneal_lr": 1e-4, "energy_high": 1e4, "cap": 1e8, "levels": 0,
               "clip": 1e-4, "min_ess": 0.01}},
    # identical particles keep their equivariant flow; its density has no gradient: every rung is flow-matched.
    # Pools are small: a sample with its exact density costs 4.5 ms (DW-4) and 40 ms (LJ-13)
    "dw4": {"ta": {"fit": "fm", "kl_fraction": 0.0, "steps": 10_000, "batch": 256, "lr": 1e-3, "high": 4.0,
                   "temperatures": 4, "pool": 5000, "refresh": 500}},
    "lj13": {"ta": {"fit": "fm", "kl_fraction": 0.0, "steps": 10_000, "batch": 256, "lr": 1e-3, "high": 4.0,
                    "temperatures": 4, "pool": 2000, "refresh": 1000}},
    "double-well": {"fab": {"steps": 3000, "batch": 256, "lr": 3e-4, "levels": 1, "step_size": 0.5},
                    "kl": {"steps": 3000, "batch": 256, "lr": 3e-4},
                    "ta": {"steps": 3000, "batch": 256, "lr": 3e-4, "high": 4.0, "temperatures": 4}},
}


def energy_only(config: dict) -> bool:
    """Whether a config trains from the energy alone (no training data are made)."""
    recipe = config["recipe"]
    return recipe["name"] in experiments.ENERGY_ONLY or (recipe["name"] == "noe2019" and recipe.get("losses") == "kl")


def _use_energy_losses(config: dict, losses: str, given: dict) -> None:
    """``--losses fab|ta|kl``: the recipe from the energy alone with the system's options (under the options
    of that recipe in the user's config, ``given``), and no data."""
    name = config["system"].get("name") or config["system"].get("molecule")
    own = ENERGY_DEFAULTS.get(name, {})
    recipe = ENERGY_LOSSES[losses]
    mine = {k: v for k, v in given.items() if k != "name"} if given.get("name", "noe2019") == recipe else {}
    if config["recipe"].get("name", "noe2019") != recipe or losses in own:
        config["recipe"] = {"name": recipe, **own.get(losses, {}), **mine}
    if losses == "kl":
        config["recipe"]["losses"] = "kl"
    if "flow" in own:
        config["flow"] = copy.deepcopy(own["flow"])
    config["data"] = {"sampler": "none"}


def is_molecule(spec: dict) -> bool:
    """Whether a config's system section names a molecule (built-in or a PDB file)."""
    return "molecule" in spec or "pdb" in spec


REPLACED = ("system",)  # a system given replaces the whole section: its keys depend on the kind of system
OPEN = ("recipe",)  # keys checked against the recipe's own options once the recipe is known


def merge(base: dict, update: dict) -> dict:
    """``base`` updated section by section by ``update`` (a user's config); unknown keys are errors."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key not in out:
            raise MlmolError(f"unknown key {key!r} in config; known keys: {', '.join(sorted(out))}")
        if key in REPLACED or not isinstance(value, dict) or not isinstance(out[key], dict):
            out[key] = copy.deepcopy(value)
            continue
        field = {"flow": "kind", "recipe": "name"}.get(key)
        if field is not None and value.get(field, out[key].get(field)) != out[key].get(field):
            out[key] = copy.deepcopy(value)  # another flow family or recipe: its own options (checked below)
            continue
        unknown = set(value) - set(out[key])
        if unknown and key not in OPEN:
            raise MlmolError(f"unknown key {min(unknown)!r} in config.{key}; known keys: "
                             f"{', '.join(sorted(out[key]))}")
        out[key] = {**out[key], **copy.deepcopy(value)}
    return out


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
    config = merge(molecule_defaults(base["system"]) if molecular else SYSTEM_DEFAULTS.get(name, DEFAULTS), base)
    if molecular:
        defaults = {"temperature": 300.0, "workers": 1, "backend": "auto"}
        if "pdb" in config["system"]:
            defaults.update(forcefield=["amber14-all.xml"], implicit_solvent=None, add_hydrogens=True)
            given = config["system"]["pdb"]
            config["system"]["pdb"] = str(Path(given).resolve())
            if given != config["system"]["pdb"]:
                config["system"]["given"] = given  # as the user typed it, for messages
        config["system"] = {**defaults, **config["system"]}
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise MlmolError(f"--dim must be a positive whole number, got {dim!r}")
    if energy is not None:
        if dim is None:
            raise MlmolError("--energy needs --dim D, the number of coordinates the function takes")
        path, _, function = energy.rpartition(":")
        config["system"] = {"energy": f"{Path(path).resolve()}:{function}" if path else energy, "dim": dim}
        if config["system"]["energy"] != energy:
            config["system"]["given"] = energy  # as the user typed it, for messages
    elif system is not None:
        config["system"] = {"name": system}
    if dim is not None and "name" in config["system"]:
        built_dim = systems.get(config["system"]["name"]).dim
        if dim != built_dim:
            raise MlmolError(f"{config['system']['name']} has dim {built_dim}, but --dim {dim} was given; "
                             "drop --dim for a built-in system")
    order = sorted(overrides, key=lambda k: k != "losses")  # the recipe first, then its step count
    for key in order:
        value = overrides[key]
        if value is None:
            continue
        if key == "losses" and value in ENERGY_LOSSES:
            _use_energy_losses(config, value, base.get("recipe", {}))
        elif key in ("steps", "losses"):
            config["recipe"][key] = value
        elif key == "backend":
            if not molecular:
                raise MlmolError("--energy-backend applies to molecules (a built-in molecule or --pdb) only")
            config["system"]["backend"] = value
        elif key == "temperature":
            if not molecular:
                raise MlmolError("--temperature applies to molecules (a built-in molecule or --pdb) only; a toy "
                                 "system's temperature is part of its energy")
            if not value > 0:
                raise MlmolError(f"--temperature must be positive kelvin, got {value:g}")
            config["system"]["temperature"] = float(value)
        elif key == "engine":
            if not molecular:
                raise MlmolError("--data-engine applies to molecules (a built-in molecule or --pdb) only")
            config["data"]["engine"] = value
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
    if energy_only(config):
        config["data"] = {"sampler": "none"}
    if config["device"] not in ("cpu", "cuda") and not str(config["device"]).startswith("cuda:"):
        raise MlmolError(f"unknown device {config['device']!r}; use cpu or cuda")
    check(config)
    return config


# (section, key, flag or None, smallest allowed): numbers a run needs before anything starts
POSITIVE = (("recipe", "steps", "--steps", 1), ("recipe", "batch", None, 1), ("recipe", "ml_batch", None, 1),
            ("data", "n", None, 1), ("data", "replicas", None, 1), ("data", "rungs", None, 1), ("evaluate", "n", None, 1),
            (None, "threads", "--threads", 1),
            (None, "seed", "--seed", 0))


def check(config: dict) -> None:
    """Every value a run needs, checked before any data or training: counts, names of losses and flows."""
    for section, key, flag, least in POSITIVE:
        values = config if section is None else config.get(section, {})
        if key not in values:
            continue
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            where = flag or f"{section}.{key} in the config"
            kind = "a positive whole number" if least == 1 else "a whole number ≥ 0"
            raise MlmolError(f"{where} must be {kind}, got {value!r}")
    recipe = config["recipe"]
    if recipe["name"] == "noe2019" and recipe.get("losses") not in experiments.LOSSES:
        raise MlmolError(f"unknown --losses {recipe.get('losses')!r}; choose one of "
                         f"{', '.join([*experiments.LOSSES, 'fab', 'ta'])}")
    engine = config.get("data", {}).get("engine", "auto")
    if engine not in ("auto", "torch", "openmm"):
        raise MlmolError(f"unknown MD engine {engine!r} (--data-engine, data.engine in the config); choose auto, "
                         "torch or openmm")
    ladder = config.get("data", {}).get("ladder")
    low = config.get("system", {}).get("temperature", 0.0)
    if ladder is not None and not (isinstance(ladder, (list, tuple)) and len(ladder) == 2 and ladder[0] > low
                                   and isinstance(ladder[1], int) and ladder[1] >= 2):
        raise MlmolError(f"data.ladder in the config must be [HIGHEST_KELVIN, COUNT] with the highest temperature above "
                         f"the system's ({low} K) and COUNT ≥ 2, or null for plain replicas; got {ladder!r}")
    rungs, temperatures = config.get("data", {}).get("rungs", 1), 1 if ladder is None else ladder[1]
    if rungs > temperatures:
        raise MlmolError(f"data.rungs ({rungs}) in the config keeps the frames of that many of the ladder's lowest "
                         f"temperatures; the ladder has {temperatures}: lower data.rungs or lengthen data.ladder")
    kind = config["flow"].get("kind")
    if kind not in flows.FAMILIES:
        raise MlmolError(f"unknown flow kind {kind!r}; choose one of {', '.join(flows.FAMILIES)}")
    flows.registry.check_options(kind, config["flow"])
