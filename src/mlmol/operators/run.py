"""An operator-learning run: make (or load) the data (:mod:`mlmol.operators.problems`), train an FNO
through the shared loop (:func:`mlmol.train.fit`), evaluate at the training resolution and at others.

The run directory is the one every kind shares (:mod:`mlmol.rundir`):

RUN/config.yaml      kind operator: problem, data sizes, resolutions, model and schedule (enough to rerun)
RUN/data.npz         the data at the stored resolution, unless ``data`` names a shared file (reused
                     when it exists and written when not); see :mod:`mlmol.operators.problems`
RUN/checkpoint.pt    weights, optimiser, random state (atomic; ``resume`` continues it)
RUN/metrics.jsonl    training loss ``l2`` and the validation error ``val_l2`` as training goes
                     (the test set is never looked at during training)
RUN/metrics.json     after training, once: the validation error, the held-out test relative L2 at each
                     evaluated resolution, reference predictors on the test set, mass error
                     (densities), data seeds, times
RUN/predictions.png  test samples: input, truth, prediction
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..data import load_torch, save_figure
from ..errors import MlmolError
from ..losses import Batch, Loss
from ..rundir import RunDirectory
from ..train import Recipe, Stage, fit
from .fno import FNO, relative_l2
from .problems import (
    PROBLEMS,
    TEST_SEED_OFFSET,
    OperatorData,
    Problem,
    coarse_resolution,
    every,
    get,
    load_data,
    pairs,
    references,
    stride,
    subsample,
    test_seed,
)

__all__ = [
    "DEFAULTS",
    "PROBLEMS",
    "TEST_SEED_OFFSET",
    "DensityFNO",
    "OperatorData",
    "OperatorL2",
    "Problem",
    "build",
    "coarse_resolution",
    "describe",
    "evaluate",
    "evaluate_run",
    "every",
    "get",
    "load",
    "load_data",
    "make_config",
    "mean_error",
    "pairs",
    "predict",
    "predictions_figure",
    "recipe",
    "references",
    "steps_per_epoch",
    "stride",
    "subsample",
    "test_seed",
    "train",
]


class DensityFNO(FNO):
    """An FNO whose output is a probability density with the mass of input channel 0: positive by
    a softplus and rescaled to the same sum over the grid, so probability is conserved exactly."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        s = torch.nn.functional.softplus(super().forward(a))
        axes = tuple(range(1, 1 + self.dim))
        return s * a[..., :1].sum(axes, keepdim=True) / s.sum(axes, keepdim=True)


DEFAULTS = {"train": 1000, "validation": 100, "test": 200, "resolution": None, "eval_resolutions": [],
            "batch_size": 20, "lr": 1e-3, "epochs": 100, "coarse_epochs": 0, "coarse_stride": 2, "modes": None,
            "width": None, "seed": 0, "data": None, "validate_every_epochs": 5}


def make_config(problem: str, **overrides) -> dict:
    """The run's settings: ``DEFAULTS``, the problem's defaults, then the non-None ``overrides``."""
    spec = get(problem)
    config = {"problem": problem, **DEFAULTS, **dict(spec.defaults),
              **{k: v for k, v in overrides.items() if v is not None}}
    config["resolution"] = config["resolution"] or spec.resolution
    for key in ("train", "validation", "test", "batch_size", "epochs"):
        if int(config[key]) <= 0:
            raise MlmolError(f"{key} must be positive, got {config[key]}")
    for resolution in [config["resolution"], *config["eval_resolutions"]]:
        stride(spec, resolution)
    if config["coarse_epochs"]:
        stride(spec, coarse_resolution(spec, config))
    return config


def steps_per_epoch(config: dict) -> int:
    """Optimisation steps in one pass over the training pairs."""
    return math.ceil(config["train"] / config["batch_size"])


class OperatorL2(Loss):
    """The relative L2 error of the model on a batch of pairs stored as ``[m, *grid, c_in + c_out]``,
    optionally on every ``stride``-th grid point (training at a coarser resolution)."""

    name = "l2"

    def __init__(self, channels_in: int, dim: int, stride: int = 1):
        self.channels_in, self.dim, self.stride = channels_in, dim, stride

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        pairs = batch.data_x()[every(self.stride, self.dim)]
        value = relative_l2(batch.model(pairs[..., :self.channels_in]), pairs[..., self.channels_in:])
        return value, {"l2": float(value.detach())}

    def __repr__(self) -> str:
        return f"OperatorL2(stride={self.stride})"


def predict(model: FNO, inputs: torch.Tensor, chunk: int = 50) -> torch.Tensor:
    """The model's outputs for ``inputs``, without gradients, ``chunk`` pairs at a time."""
    with torch.no_grad():
        return torch.cat([model(a) for a in inputs.split(chunk)])


def mean_error(model: FNO, inputs: torch.Tensor, outputs: torch.Tensor) -> float:
    """Mean relative L2 error of ``model`` over the pairs (``inputs`` ``[N, *grid, c_in]``, ``outputs``)."""
    return float(relative_l2(predict(model, inputs), outputs))


def build(config: dict) -> FNO:
    """The run's untrained model (a :class:`DensityFNO` for densities), initialised from its seed."""
    problem = get(config["problem"])
    torch.manual_seed(config["seed"])
    kind = DensityFNO if problem.density else FNO
    return kind(dim=problem.dim, modes=config["modes"], width=config["width"], channels_in=problem.channels_in)


def recipe(config: dict, model: FNO, data: OperatorData) -> Recipe:
    """Stages of Adam on the relative L2 loss, the learning rate on a cosine to zero; with
    ``coarse_epochs`` first that many epochs at the training resolution subsampled by
    ``coarse_stride`` (4× cheaper in 2D), annealed to a quarter, then the rest at full resolution.
    The validation pairs are the recipe's validation data (``val_l2``); the test pairs are not in it."""
    problem = get(config["problem"])
    channels = problem.channels_in
    train_pairs, validation_pairs = pairs(config, data, "train"), pairs(config, data, "validation")
    if problem.normalize:
        model.normalize_with(train_pairs[..., :channels], train_pairs[..., channels:])
    per_epoch = steps_per_epoch(config)
    lr, stages = config["lr"], []
    if config["coarse_epochs"]:
        stages.append(Stage(config["coarse_epochs"] * per_epoch, OperatorL2(problem.channels_in, problem.dim,
                                                                           config["coarse_stride"]),
                            lr=lr, lr_end=lr / 4, batch_size=config["batch_size"], name="coarse"))
        lr = lr / 4
    stages.append(Stage(config["epochs"] * per_epoch, OperatorL2(problem.channels_in, problem.dim), lr=lr,
                        lr_end=0.0, batch_size=config["batch_size"], name="fine" if stages else "train"))

    def metric(model: FNO, data: torch.Tensor) -> dict[str, float]:
        return {"val_l2": mean_error(model, data[..., :channels], data[..., channels:])}

    return Recipe(stages, data=train_pairs, validation=validation_pairs, validation_metric=metric)


def train(config: dict | None, out: str | Path, resume: bool = False, progress: bool = False,
          notify: Callable[[str], None] | None = None) -> dict:
    """Train (or, with ``resume``, continue) the run in ``out``, watching the validation pairs; then
    evaluate it once on the held-out test pairs (RUN/metrics.json, RUN/predictions.png); returns the
    evaluation."""
    run = RunDirectory(Path(out))
    run.start(resume)
    if resume:
        config = run.read_config()
        if "validation" not in config:
            raise MlmolError(f"{run.path} was made before the validation split (its test pairs were also its "
                             "validation pairs); start a new run")
    elif config is None:
        raise MlmolError("give a config or resume an existing run")
    else:
        run.write_config({"kind": "operator", **config})
    started = time.perf_counter()
    data = load_data(config, run.path, progress)
    data_seconds = time.perf_counter() - started
    model = build(config)
    plan = recipe(config, model, data)
    per_epoch = steps_per_epoch(config)
    started = time.perf_counter()
    history = fit(model, plan, seed=config["seed"], checkpoint=run.checkpoint, metrics=run.metrics_log,
                  resume=resume, progress=progress, log_every=per_epoch,
                  validate_every=per_epoch * config["validate_every_epochs"], notify=notify)
    train_seconds = time.perf_counter() - started
    epochs = config["epochs"] + config["coarse_epochs"]
    training = {"data_seconds": round(data_seconds, 1), "train_seconds": round(train_seconds, 1),
                "seconds_per_epoch": round(train_seconds / epochs, 3), "threads": torch.get_num_threads(),
                "final_train_l2": history["l2"][-1] if history["l2"] else None}
    return evaluate_run(run, model, data, training)


def load(out: str | Path) -> tuple[dict, FNO]:
    """The config and the trained model of a run directory."""
    run = RunDirectory(Path(out))
    config = run.read_config()
    model = build(config)
    state = load_torch(run.checkpoint)
    try:
        model.load_state_dict(state["flow"])
    except (KeyError, RuntimeError) as error:
        raise MlmolError(f"the checkpoint in {run.path} does not match its config ({error}); train again") from None
    return config, model.eval()


def evaluate_run(run: RunDirectory, model: FNO | None = None, data: OperatorData | None = None,
                 training: dict | None = None) -> dict:
    """:func:`evaluate` the run's model (loaded unless given) on its data, written to RUN/metrics.json
    with what training recorded (``training``, else the earlier file's), and RUN/predictions.png."""
    config = run.read_config()
    if model is None:
        config, model = load(run.path)
    if data is None:
        data = load_data(config, run.path)
    result = evaluate(config, model, data)
    earlier = run.read_metrics() or {}
    result.update(training or {k: earlier[k] for k in TRAINING_KEYS if k in earlier})
    run.write_metrics(result)
    save_figure(predictions_figure(config, model, data), run.path / "predictions.png")
    return result


TRAINING_KEYS = ("data_seconds", "train_seconds", "seconds_per_epoch", "threads", "final_train_l2")


def evaluate(config: dict, model: FNO, data: OperatorData) -> dict:
    """After training, once: the validation error at the training resolution, the held-out test
    relative L2 at the training resolution and each of ``eval_resolutions``, the reference
    predictors on the test pairs, and, for densities, the largest error in total probability."""
    problem = get(config["problem"])
    channels = problem.channels_in
    result = {"problem": config["problem"], "train": config["train"], "validation": config["validation"],
              "test": config["test"], "resolution": config["resolution"], "data": config["data"],
              "data_seed": data.seed, "test_seed": data.test_seed}
    model.eval()
    validation = pairs(config, data, "validation")
    result["validation_l2"] = {str(config["resolution"]): mean_error(model, validation[..., :channels],
                                                                     validation[..., channels:])}
    result["test_l2"] = {}
    for resolution in dict.fromkeys([config["resolution"], *config["eval_resolutions"]]):
        test = pairs(config, data, "test", resolution)
        a, u = test[..., :channels], test[..., channels:]
        prediction = predict(model, a)
        result["test_l2"][str(resolution)] = float(relative_l2(prediction, u))
        if problem.density:
            mass = prediction.sum(1) / a[..., :1].sum(1)
            result["mass_error"] = float((mass - 1).abs().max())
        if resolution == config["resolution"]:
            result["reference_l2"] = references(config["problem"], a.numpy(), u.numpy())
    return result


def describe(result: dict) -> str:
    """One line: the validation and held-out test relative L2 errors, references and mass error."""
    errors = ", ".join(f"{e:.4f} at {n}" for n, e in result["test_l2"].items())
    validation = ", ".join(f"{e:.4f} at {n}" for n, e in result["validation_l2"].items())
    text = f"validation relative L2 {validation}; held-out test relative L2 {errors}"
    if result.get("reference_l2"):
        names = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in result["reference_l2"].items())
        text += f" (references on the test pairs: {names})"
    if "mass_error" in result:
        text += f"; largest error in total probability {result['mass_error']:.1e}"
    return text


def predictions_figure(config: dict, model: FNO, data: OperatorData, count: int = 3) -> Figure:
    """Input, truth and prediction of the first ``count`` test samples (1D: curves; 2D: images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problem = get(config["problem"])
    test = pairs(config, data, "test")[:count]
    count = len(test)
    a, u = test[..., :problem.channels_in], test[..., problem.channels_in:].numpy()
    prediction = predict(model, a).numpy()
    if problem.dim == 1:
        fig, axes = plt.subplots(1, count, figsize=(4 * count, 3), squeeze=False)
        x = np.arange(a.shape[1]) / a.shape[1]
        for i, ax in enumerate(axes[0]):
            ax.plot(x, a[i, :, 0], color="0.6", label="input")
            ax.plot(x, u[i, :, 0], color="k", label="truth")
            ax.plot(x, prediction[i, :, 0], "--", color="C3", label="FNO")
            ax.set_xlabel("x")
        axes[0, 0].legend(frameon=False)
    else:
        fig, axes = plt.subplots(count, 4, figsize=(12, 3 * count), squeeze=False)
        for i in range(count):
            for ax, image, title in zip(axes[i], (a[i, ..., 0], u[i, ..., 0], prediction[i, ..., 0],
                                                  prediction[i, ..., 0] - u[i, ..., 0]),
                                        ("input", "truth", "FNO", "FNO − truth"), strict=True):
                shown = ax.imshow(image, origin="lower", cmap="RdBu_r" if title == "FNO − truth" else "viridis")
                fig.colorbar(shown, ax=ax, shrink=0.8)
                ax.set_title(title)
                ax.set_axis_off()
    fig.suptitle(f"{problem.description}: test samples", fontsize=10)
    fig.tight_layout()
    return fig
