"""Evaluating a Boltzmann generator's samples: ESS, ΔF between the system's states and free-energy
profiles, against exact references where quadrature gives them, and chirality for molecules."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from . import estimators, systems
from .data import Samples
from .errors import MlmolError
from .systems import Energy
from .systems.molecule import Molecule
from .systems.molecules import chiral_centres, wrong_handed_fraction

HELIX_PSI_DEGREES = (-120.0, 50.0)
"""The ψ range (degrees) of a residue's right-handed helical basin (α) where its φ < 0; the rest of
φ < 0 is the extended basin (β and polyproline II). −120° lies in an empty valley of alanine's ψ
distribution, 50° on the thin tail of the helical basin (the usual α bound)."""


def evaluate(system: Energy, samples: Samples, bins: int = 60, max_f: float = 5.0) -> dict:
    """ESS, ΔF between the system's states and free-energy profiles, against exact where possible."""
    exact = system.bounds is not None and system.dim <= 2
    result: dict = {"n": len(samples), "kT": samples.kT, "ess": estimators.ess(samples.log_weights),
                    "ess_fraction": estimators.ess_fraction(samples.log_weights),
                    # zero weights: non-finite energies, or outside the system's canonical domain
                    "weighted_fraction": float(torch.isfinite(samples.log_weights).double().mean()),
                    "nonfinite_energy_fraction": float((~torch.isfinite(samples.energy)).double().mean())}
    if getattr(system, "log_z", None) is not None:  # a known normaliser: the importance-sampling estimate beside it
        estimate = estimators.log_normaliser(samples.log_weights)
        result["log_z"] = {"value": estimate.value, "stderr": estimate.stderr, "exact": system.log_z,
                           "error": estimate.value - system.log_z}
    if system.states is not None:
        entry = _delta_f(samples, system.states, system.variables)
        if exact:
            entry["exact"] = estimators.exact_delta_f(system, *system.states)
            if "value" in entry:
                entry["error"] = entry["value"] - entry["exact"]
        result["delta_f"] = entry
    if isinstance(system, Molecule):
        phis = residue_phis(system)
        if phis:  # a peptide: each residue's φ basins and, where φ < 0, its helical and extended basins
            result["delta_f_residues"] = {name: _delta_f(samples, (f"{name} > 0", f"{name} < 0"), system.variables)
                                          for name in phis}
            basins = {name: helix_states(system, name) for name in phis}
            result["helix_residues"] = {name: _delta_f(samples, tuple(states), states)
                                        for name, states in basins.items() if states is not None}
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


@dataclass(frozen=True)
class ReferenceSamples:
    """Reference configurations of a molecule's Boltzmann distribution, for :func:`compare_to_reference`.

    Attributes:
        x: configurations ``[frames, 3N]`` (nm), frame-major over ``chains`` independent chains
            (``x[t * chains + c]``).
        chains: how many independent chains ``x`` interleaves (1: one chain, in time order).
        md: time-ordered MD trajectories of the same ensemble ``[trajectories, frames, 3N]`` (nm), for
            fitting TICA; None: no TICA-W2.
    """

    x: torch.Tensor
    chains: int = 1
    md: np.ndarray | None = None


def compare_to_reference(system: Molecule, samples: Samples, reference: ReferenceSamples, n: int = 2000,
                         seed: int = 0, tica_lag: int = 10) -> dict:
    """The field's distances between a molecule's generator samples and reference configurations of its
    Boltzmann distribution (:mod:`mlmol.wasserstein`): energy-W2 (reduced energies, kT), torus-W2 (every
    backbone φ and ψ, radians) and, when the reference has MD trajectories, TICA-W2 (the two slowest TICA
    components fitted on them at a lag of ``tica_lag`` frames).

    Each distance is against n frames of one half of the reference (two halves from disjoint chains,
    :func:`~mlmol.wasserstein.reference_halves`), for:

    - ``raw``: n of the generator's samples (those with finite values);
    - ``reweighted``: n draws by importance resampling from all its samples (multinomial, with the
      normalised weights), so that every sample's weight counts;
    - ``floor``: n frames of the other half: the reference's own noise at n samples;
    - ``floor_reweighted``: n uniform draws with replacement from E distinct frames of the other half, E
      the generator's Kish effective sample count (at most the half): what a perfect generator with this
      ESS gets by the same resampling (draws that repeat a frame as often as the weights' collisions do).

    The reference halves and the generator's draws use separate streams seeded by ``seed``. Frames of a
    chain close in time are correlated, which makes the floors optimistic."""
    import mdtraj

    from . import wasserstein

    x_ref = reference.x
    if x_ref.ndim != 2 or x_ref.shape[1] != system.dim:
        raise MlmolError(f"the reference holds configurations of shape {tuple(x_ref.shape)}; {system.name} needs "
                         f"[frames, {system.dim}] (nm)")
    weights = wasserstein.marginal(len(samples), samples.log_weights.double().cpu().numpy())
    half_a, half_b = wasserstein.reference_halves(len(x_ref), reference.chains,
                                                  np.random.default_rng([seed, 0]))
    n = min(n, len(samples), len(half_a), len(half_b))
    if n < 100:
        raise MlmolError(f"too few samples to compare: {len(samples)} generated and reference halves of "
                         f"{len(half_a)} and {len(half_b)} frames give fewer than 100; compare more")
    effective = max(1, min(len(half_b), round(estimators.ess(samples.log_weights))))
    ref_rng, rng = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    a, b = half_a[:n], half_b[:n]
    perfect = ref_rng.choice(half_b[:effective], n, replace=True)
    mine = np.concatenate([rng.choice(len(samples), n, replace=False),  # raw, then reweighted
                           rng.choice(len(samples), n, replace=True, p=weights / weights.sum())])
    topology = mdtraj.Topology.from_openmm(system.topology)
    with torch.no_grad():
        reference_u = system.energy(x_ref.to(torch.float64)).cpu().numpy()
    reference_x = x_ref.cpu().numpy()
    x, u = samples.x[mine].cpu().numpy(), samples.energy[mine].cpu().numpy()
    metrics = [("energy_w2", u, reference_u, wasserstein.energy_w2),
               ("torus_w2", wasserstein.backbone_angles(x, topology), wasserstein.backbone_angles(reference_x, topology),
                wasserstein.torus_w2)]
    result: dict = {"n": int(n), "seed": seed, "effective": effective, "chains": reference.chains,
                    "helix_residues": _reference_helix(system, x_ref, reference.chains, np.random.default_rng([seed, 3]))}
    if reference.md is not None:
        tica = wasserstein.reference_tica(np.asarray(reference.md), topology, tica_lag)
        metrics.append(("tica_w2", tica(x), tica(reference_x), wasserstein.euclidean_w2))
        result["tica"] = {"lag_frames": tica_lag, "trajectories": len(reference.md),
                          "frames": int(reference.md.shape[1])}
    else:
        result["tica_w2"] = {"unavailable": "the reference has no MD trajectories (md) to fit TICA on"}
    for name, values, theirs, distance in metrics:
        raw = values[:n][np.isfinite(values[:n]).reshape(n, -1).all(-1)]
        result[name] = {"raw": distance(raw, theirs[a]) if len(raw) else float("nan"),
                        "reweighted": distance(values[n:], theirs[a]),
                        "floor": distance(theirs[b], theirs[a]),
                        "floor_reweighted": distance(theirs[perfect], theirs[a])}
    return result


def residue_phis(system: Molecule) -> list[str]:
    """The φ torsions of a peptide's residues, whose basins are its macrostates; none for a molecule with
    fewer than two (alanine dipeptide's φ is its system's own state)."""
    phis = [name for name in system.torsions if name.startswith("phi")]
    return phis if len(phis) > 1 else []


def helix_states(system: Molecule, phi: str) -> dict[str, Callable[[torch.Tensor], torch.Tensor]] | None:
    """The helical and extended basins of the residue whose φ torsion is named ``phi`` ("phi3"), as masks
    of coordinates ``[*batch, 3N]``: φ < 0 with ψ inside :data:`HELIX_PSI_DEGREES`, and φ < 0 with ψ
    outside; keyed "phi3 helix" and "phi3 extended". None when the molecule has no ψ for that residue."""
    psi = "psi" + phi.removeprefix("phi")
    if phi not in system.variables or psi not in system.variables:
        return None
    low, high = (math.radians(d) for d in HELIX_PSI_DEGREES)

    def basin(x: torch.Tensor, helical: bool) -> torch.Tensor:
        angle = system.variables[psi](x)
        return (system.variables[phi](x) < 0) & (((angle > low) & (angle < high)) == helical)
    return {f"{phi} helix": lambda x: basin(x, True), f"{phi} extended": lambda x: basin(x, False)}


def _reference_helix(system: Molecule, x: torch.Tensor, chains: int, rng: np.random.Generator,
                     n_bootstrap: int = 200) -> dict:
    """Each residue's ΔF(helix − extended) (kT) in reference frames ``x`` (frame-major over ``chains``), by
    counting, ± a bootstrap over the chains (over 10 blocks of time for a single chain)."""
    groups = chains if chains > 1 else 10
    out = {}
    for name in residue_phis(system):
        states = helix_states(system, name)
        if states is None:
            continue
        with torch.no_grad():
            masks = [state(x).cpu().numpy() for state in states.values()]
        counts = [m.reshape(-1, chains).sum(0) if chains > 1 else np.array([b.sum() for b in np.array_split(m, groups)])
                  for m in masks]

        def delta(idx: np.ndarray, counts: list[np.ndarray] = counts) -> float:
            a, b = counts[0][idx].sum(), counts[1][idx].sum()
            return float(-np.log(a / b)) if a > 0 and b > 0 else math.nan
        value = delta(np.arange(groups))
        if not math.isfinite(value):
            out[name] = {"unavailable": "no reference frame in one of the basins"}
            continue
        boot = [delta(rng.integers(0, groups, groups)) for _ in range(n_bootstrap)]  # nan: a draw without a basin
        out[name] = {"value": value, "stderr": float(np.nanstd(boot))}
    return out


def _delta_f(samples: Samples, states: tuple[str, str], variables: dict) -> dict:
    """ΔF between two states with its bootstrap error and each state's effective samples (Kish, of the
    weights inside it: how many samples the estimate rests on), or why it could not be estimated. A
    state is a spec over ``variables`` ("phi2 > 0") or the name of a mask function in them."""
    a, b = states
    entry: dict = {"states": [a, b]}
    inside = [variables[spec](samples.x) if spec in variables else systems.State(spec, variables)(samples.x)
              for spec in states]
    entry["effective_samples"] = [estimators.ess(torch.where(mask, samples.log_weights, -torch.inf))
                                  for mask in inside]
    try:
        estimate = estimators.delta_f(samples, lambda _: inside[0], lambda _: inside[1])  # the masks, once
        entry.update(value=estimate.value, stderr=estimate.stderr)
    except MlmolError as error:  # e.g. no sample in one state (a generator that lost it): report the rest
        entry["unavailable"] = str(error)
    return entry


def _delta_f_text(d: dict) -> str:
    """A ΔF entry of :func:`evaluate` as text."""
    if "value" not in d:
        return f"not estimated: {d['unavailable']}"
    counts = d.get("effective_samples")  # absent from metrics.json written before it existed
    return f"{d['value']:+.3f} ± {d['stderr']:.3f} kT" + (
        f" ({counts[0]:,.0f} and {counts[1]:,.0f} effective samples in the two states)" if counts else "")


def summary_rows(metrics: dict) -> list[tuple[str, str]]:
    """The evaluation as (name, value) rows, for the terminal and the report."""
    rows = [("samples", f"{metrics['n']}"),
            ("ESS (Kish)", f"{metrics['ess']:.0f} ({100 * metrics['ess_fraction']:.1f}% of samples)")]
    if metrics.get("weighted_fraction", 1.0) < 1.0:  # absent from metrics.json written before it existed
        rows.append(("nonzero weight", (f"{100 * metrics['weighted_fraction']:.1f}% of samples (the rest: "
                                        "outside the canonical domain or a non-finite energy)")))
    if metrics.get("nonfinite_energy_fraction", 0.0) > 0.0:
        rows.append(("non-finite energy", (f"{100 * metrics['nonfinite_energy_fraction']:.2f}% of samples (NaN or "
                                           "inf: weight zero)")))
    if "delta_f" in metrics:
        d = metrics["delta_f"]
        text = _delta_f_text(d)
        if "error" in d:
            text += f" (exact {d['exact']:+.3f}, error {d['error']:+.3f})"
        elif "exact" in d:
            text += f" (exact {d['exact']:+.3f})"
        rows.append((f"ΔF = F({d['states'][0]}) − F({d['states'][1]})", text))
    for d in [*metrics.get("delta_f_residues", {}).values(), *metrics.get("helix_residues", {}).values()]:
        rows.append((f"ΔF = F({d['states'][0]}) − F({d['states'][1]})", _delta_f_text(d)))
    for name, d in metrics.get("reference", {}).get("helix_residues", {}).items():
        rows.append((f"ΔF = F({name} helix) − F({name} extended), reference",
                     f"{d['value']:+.3f} ± {d['stderr']:.3f} kT" if "value" in d else f"not estimated: {d['unavailable']}"))
    for name, label, unit in (("energy_w2", "energy-W2", "kT"), ("torus_w2", "torus-W2", "rad"),
                              ("tica_w2", "TICA-W2", "")):
        d = metrics.get("reference", {}).get(name)
        if d is not None and "unavailable" in d:
            rows.append((f"{label} against the reference", f"not computed: {d['unavailable']}"))
        elif d is not None:
            text = (f"{d['raw']:.3f}{' ' + unit if unit else ''} raw (noise floor {d['floor']:.3f}), {d['reweighted']:.3f} reweighted "
                    f"(noise floor at its effective samples {d['floor_reweighted']:.3f})")
            rows.append((f"{label} against the reference ({metrics['reference']['n']} samples each)", text))
    if "log_z" in metrics:
        z = metrics["log_z"]
        rows.append(("log Z (importance sampling)", (f"{z['value']:.4f} ± {z['stderr']:.4f} (exact {z['exact']:.4f}, "
                                                    f"error {z['error']:+.4f})")))
    if "wrong_handed_fraction" in metrics:
        rows.append(("wrong-handed Cα", (f"{100 * metrics['wrong_handed_fraction']:.2f}% of samples "
                                         f"({metrics['chiral_centres']} stereocentre(s))")))
    for name, p in metrics.get("profiles", {}).items():
        rows.append((f"profile RMSE along {name}", (f"{p['rmse']:.3f} kT over {p['bins_compared']} bins "
                                                    f"with F < {p['max_f']:g} kT")))
    return rows
