"""The report of a Boltzmann-generator run: its evaluation and figures of its samples."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from . import estimators, plots
from .data import Samples
from .errors import MlmolError
from .evaluation import ReferenceSamples, evaluate, summary_rows
from .report import write_report
from .run import Run, load_reference
from .systems import Energy, log_partition


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies inside it, else as it is."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _figure_samples(run: Run, metrics: dict | None, n: int, seed: int, samples_file: str | None = None
                    ) -> tuple[Samples, str]:
    """The samples for the figures, and where they came from: ``samples_file`` when given, else the file
    metrics.json names (the ones ``mlmol evaluate --samples`` evaluated), else RUN/samples.npz, else
    ``n`` fresh ones."""
    if samples_file is not None and not Path(samples_file).is_file():
        raise MlmolError(f"samples file {samples_file} does not exist; write one with mlmol sample {run.path} "
                         f"--out {samples_file}")
    files = [Path(metrics["samples"])] if metrics and metrics.get("samples") else []
    candidates = [Path(samples_file)] if samples_file is not None else [*files, run.path / "samples.npz"]
    for path in candidates:
        if path.is_file():
            samples = Samples.load(path)
            if samples.x.shape[-1] != run.system.dim:
                raise MlmolError(f"the samples in {path} have dim {samples.x.shape[-1]} but the run's system has "
                                 f"dim {run.system.dim}; move them out of the way or sample again: mlmol sample")
            origin = f"{len(samples)} samples from {_shown(path)}"
            if files and path == files[0] and len(samples) != metrics["n"]:
                origin += f", not the {metrics['n']} metrics.json was written for: rerun mlmol evaluate"
            return samples, origin
    if n <= 0:
        raise MlmolError(f"--n must be positive, got {n}")
    return run.sample(n, seed=seed), f"{n} fresh samples (seed {seed})"


def report(run: Run, n: int = 20_000, seed: int = 0, samples_file: str | None = None) -> Path:
    """Write RUN/report.html; returns its path.

    The table is RUN/metrics.json as ``mlmol evaluate`` wrote it; this never rewrites it. The figures use
    ``samples_file``, else the samples metrics.json names, else RUN/samples.npz, else ``n`` fresh ones
    (``seed``). Without
    metrics.json the table is computed from the figure samples, for the report only.
    """
    metrics = run.directory.read_metrics()
    if metrics is not None and not {"n", "ess", "ess_fraction"} <= metrics.keys():
        raise MlmolError(f"{run.directory.metrics_file} is not metrics written by mlmol evaluate; write it again: "
                         f"mlmol evaluate {run.path}")
    samples, samples_origin = _figure_samples(run, metrics, n, seed, samples_file)
    if metrics is None:
        options = run.config["evaluate"]
        metrics = evaluate(run.system, samples, options["bins"], options["max_f"])
        metrics_origin = (f"computed for this report from the figures' samples, not saved "
                          f"(mlmol evaluate {run.path} writes metrics.json)")
    else:
        metrics_origin = f"{_shown(run.directory.metrics_file)}, written by mlmol evaluate"
        if metrics.get("samples"):
            metrics_origin += f" from the samples in {_shown(Path(metrics['samples']))}"
        else:
            metrics_origin += f" from {metrics['n']} fresh samples (seed {metrics.get('seed', 0)})"
    system: Energy = run.system
    figures: list[tuple[str, Figure]] = []
    notes = [f"Metrics: {metrics_origin}.", f"Figures: {samples_origin}."]
    reference_samples = _reference(run, metrics, notes)
    exact = system.bounds is not None and system.dim <= 2

    if system.dim == 2 and system.bounds is not None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        if run.data is not None:
            plots.energy_contours(system, run.data, ax=axes[0], label="training data", color="C2")
        axes[0].set_title("training data")
        plots.energy_contours(system, samples.x, ax=axes[1], label="generator")
        axes[1].set_title("generator samples")
        figures.append(("Samples over the energy", fig))

    pairs = [(name, name.replace("phi", "psi")) for name in system.variables
             if name.startswith("phi") and name.replace("phi", "psi") in system.variables]  # one per residue
    if pairs:
        columns = 3 if reference_samples is None else 4
        fig, axes = plt.subplots(len(pairs), columns, figsize=(5 * columns, 4 * len(pairs)), squeeze=False)
        w = torch.exp(samples.log_weights - samples.log_weights.max()).numpy()
        for row, (phi_name, psi_name) in zip(axes, pairs, strict=True):
            residue = f"residue {phi_name[3:]}: " if len(pairs) > 1 else ""
            phi, psi = (system.variables[k](samples.x).numpy() for k in (phi_name, psi_name))
            if run.data is not None:
                plots.ramachandran(system.variables[phi_name](run.data).numpy(),
                                   system.variables[psi_name](run.data).numpy(), ax=row[0],
                                   title=f"{residue}training data (MD)")
            plots.ramachandran(phi, psi, ax=row[1], title=f"{residue}generator")
            plots.ramachandran(phi, psi, weights=w, ax=row[2], title=f"{residue}generator, reweighted")
            if reference_samples is not None:
                plots.ramachandran(*(system.variables[k](reference_samples.x).numpy() for k in (phi_name, psi_name)),
                                   ax=row[3], title=f"{residue}reference")
        figures.append(("Ramachandran free energy" + (" of every residue" if len(pairs) > 1 else ""), fig))

    coords = system.profile_coords
    if coords:
        fig, axes = plt.subplots(1, len(coords), figsize=(5 * len(coords), 4), squeeze=False)
        for ax, c in zip(axes[0], coords):
            if exact:
                edges = estimators.default_edges(system, c, run.config["evaluate"]["bins"])
            else:
                lo, hi = np.percentile(samples.x[:, c].numpy(), [0.05, 99.95])
                edges = np.linspace(lo, hi, run.config["evaluate"]["bins"] + 1)
            profile = estimators.free_energy_profile(samples, c, edges)
            unweighted = type(samples)(samples.x, torch.zeros_like(samples.log_weights), samples.energy)
            raw = estimators.free_energy_profile(unweighted, c, edges, n_bootstrap=1)
            reference = estimators.exact_profile(system, c, edges) if exact else None
            plots.free_energy_profile(profile, reference, ax=ax, coordinate=f"x{c}", raw=raw)
        figures.append(("Free-energy profiles", fig))

    energies = {"generator": samples.energy.numpy()}
    weights = {}
    if run.data is not None:
        with torch.no_grad():
            energies = {"training data": system.energy(run.data).double().numpy(), **energies}
    w = torch.exp(samples.log_weights - samples.log_weights.max()).numpy()
    energies["generator, reweighted"] = samples.energy.numpy()
    weights["generator, reweighted"] = w
    if reference_samples is not None:
        with torch.no_grad():
            energies["reference"] = system.energy(reference_samples.x).double().numpy()
    fig, ax = plt.subplots(figsize=(5, 4))
    plots.energy_histograms(energies, ax=ax, weights=weights)
    figures.append(("Energy distributions", fig))
    if reference_samples is not None and reference_samples.md is not None and "tica" in metrics["reference"]:
        figures.append(("TICA projections (the two slowest components of the reference's MD)",
                        _tica_figure(system, samples, reference_samples, metrics["reference"]["tica"]["lag_frames"])))

    if run.history is not None and len(run.history):
        fig, ax = plt.subplots(figsize=(6, 4))
        plots.training_curves(run.history.records, ax=ax, log_z=log_partition(system) if exact else None)
        figures.append(("Training curves", fig))

    name = run.config["system"].get("name") or run.config["system"].get("energy") or \
        run.config["system"].get("molecule") or run.config["system"].get("pdb")
    return write_report(run.directory, f"Boltzmann generator: {name}", notes, summary_rows(metrics), figures,
                        run.config)


def _reference(run: Run, metrics: dict, notes: list[str]) -> ReferenceSamples | None:
    """The reference ``mlmol evaluate --reference`` compared with (metrics.json names the file), or None;
    a note says which file, or that it is gone."""
    entry = metrics.get("reference")
    if not entry or "file" not in entry:
        return None
    if not Path(entry["file"]).is_file():
        notes.append(f"Reference: {_shown(Path(entry['file']))} (named by metrics.json) is gone; the figures "
                     "show no reference.")
        return None
    notes.append(f"Reference: the configurations in {_shown(Path(entry['file']))}.")
    return load_reference(entry["file"], run.system)


def _tica_figure(system: Energy, samples: Samples, reference: ReferenceSamples, lag: int) -> Figure:
    """Generator, reweighted generator and reference on the two slowest TICA components of the reference's
    MD trajectories (fitted as ``mlmol evaluate`` fitted them)."""
    import mdtraj

    from . import wasserstein

    topology = mdtraj.Topology.from_openmm(system.topology)
    project = wasserstein.reference_tica(reference.md, topology, lag)
    mine, theirs = project(samples.x.numpy()), project(reference.x.numpy())
    low, high = np.percentile(theirs, 0.1, axis=0), np.percentile(theirs, 99.9, axis=0)
    pad = 0.2 * (high - low)
    extent = (low[0] - pad[0], high[0] + pad[0], low[1] - pad[1], high[1] + pad[1])
    w = torch.exp(samples.log_weights - samples.log_weights.max()).numpy()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, points, weights) in zip(axes, (("generator", mine, None), ("generator, reweighted", mine, w),
                                                   ("reference", theirs, None)), strict=True):
        plots.free_energy_map(points[:, 0], points[:, 1], extent, weights, ax, title=title, labels=("TIC 1", "TIC 2"))
    return fig
