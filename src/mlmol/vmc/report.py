"""The report of a VMC run: its evaluation, the energy and variance during training, and the
blocking analysis of the evaluation."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .. import plots
from ..errors import MlmolError
from ..report import write_report
from ..rundir import RunDirectory
from .run import describe
from .sampling import blocking_levels


def report(path: str | Path) -> Path:
    """Write RUN/report.html for a VMC run: the evaluation, the energy and its variance as training
    went, and the blocking analysis of the evaluation's correlated walker means."""
    run = RunDirectory(Path(path))
    config, metrics = run.read_config(), run.read_metrics()
    if metrics is None or "value" not in metrics:
        raise MlmolError(f"{run.path} has no VMC evaluation; write it: mlmol evaluate {run.path}")
    records = run.read_log()
    rows = [("energy", describe(metrics)), ("steps", f"{metrics['steps']:,}"),
            ("parameters", f"{metrics['parameters']:,}")]
    energy = plots.training_curves(records, keys={"energy": "⟨E_L⟩ per step"}, ylabel="energy (Ha)",
                                   exact=metrics.get("exact"))
    variance = plots.training_curves(records, keys={"variance": "var(E_L)"}, ylabel="variance (Ha²)", log=True)
    figures = [("Energy during training", energy.figure), ("Local-energy variance", variance.figure)]
    if len(metrics.get("series", [])) >= 4:
        levels = blocking_levels(np.asarray(metrics["series"]))
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.errorbar([b for _, _, b in levels], [se for se, _, _ in levels], [d for _, d, _ in levels], marker="o")
        ax.axhline(metrics["stderr"], color="k", linestyle="--", label=f"chosen: blocks of {metrics['block']}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("block length (sweeps)")
        ax.set_ylabel("standard error of the mean (Ha)")
        ax.legend(frameon=False)
        figures.append(("Blocking analysis of the evaluation", fig))
    return write_report(run, f"VMC: {config['system']} ({config['ansatz']})",
                        [f"Metrics: {run.metrics_file}, written after training (mlmol evaluate rewrites it)."],
                        rows, figures, config)
