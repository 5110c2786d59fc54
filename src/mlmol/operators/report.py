"""The report of an operator run: its evaluation, the errors during training, and predictions
against the truth on held-out test pairs."""

from __future__ import annotations

from pathlib import Path

from .. import plots
from ..errors import MlmolError
from ..report import write_report
from ..rundir import RunDirectory
from .problems import load_data
from .run import load, predictions_figure


def report(path: str | Path) -> Path:
    """Write RUN/report.html for an operator run: the evaluation, the training and validation errors
    as training went, and predictions against the truth on held-out test pairs."""
    run = RunDirectory(Path(path))
    metrics = run.read_metrics()
    if metrics is None or "test_l2" not in metrics:
        raise MlmolError(f"{run.path} has no operator evaluation; write it: mlmol evaluate {run.path}")
    config, model = load(run.path)
    rows = [("held-out test relative L2", ", ".join(f"{e:.4f} at {n}" for n, e in metrics["test_l2"].items())),
            ("validation relative L2", ", ".join(f"{e:.4f} at {n}" for n, e in metrics["validation_l2"].items()))]
    rows += [(f"reference: {name.replace('_', ' ')}", f"{value:.4f}")
             for name, value in metrics.get("reference_l2", {}).items()]
    if "mass_error" in metrics:
        rows.append(("largest error in total probability", f"{metrics['mass_error']:.1e}"))
    figures = [("Predictions on held-out test pairs", predictions_figure(config, model, load_data(config, run.path))),
               ("Relative L2 during training",
                plots.training_curves(run.read_log(), keys={"l2": "training batches", "val_l2": "validation pairs"},
                                      ylabel="relative L2", log=True).figure)]
    return write_report(run, f"Fourier neural operator: {config['problem']}",
                        [f"Metrics: {run.metrics_file}, written after training (mlmol evaluate rewrites it)."],
                        rows, figures, config)
