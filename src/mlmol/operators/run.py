"""An operator-learning run directory: make (or load) the data, train an FNO through the shared
loop (:func:`mlmol.train.fit`), evaluate at the training resolution and at others.

RUN/config.json      problem, data sizes, resolutions, model and schedule (enough to rerun)
RUN/data.npz         ``inputs`` ``[N, *grid, c_in]`` and ``outputs`` ``[N, *grid, c_out]`` at the stored
                     resolution, the first ``train`` for training, the last ``test`` for testing
                     (unless ``data`` names a shared file, reused when it exists and written when not)
RUN/checkpoint.pt    weights, optimiser, random state (atomic; ``resume`` continues it)
RUN/metrics.jsonl    training loss ``l2`` and the test error ``test_l2`` as training goes
RUN/metrics.json     test relative L2 at each evaluated resolution, mass error (densities), times
RUN/predictions.png  test samples: input, truth, prediction
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import atomic_write, load_torch, save_array, save_figure
from ..errors import MlmolError
from ..losses import Batch, Loss
from ..train import Recipe, Stage, fit
from . import burgers, darcy, smoluchowski
from .fno import FNO, relative_l2


class DensityFNO(FNO):
    """An FNO whose output is a probability density with the mass of input channel 0: positive by
    a softplus and rescaled to the same sum over the grid, so probability is conserved exactly."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        s = torch.nn.functional.softplus(super().forward(a))
        axes = tuple(range(1, 1 + self.dim))
        return s * a[..., :1].sum(axes, keepdim=True) / s.sum(axes, keepdim=True)


@dataclass(frozen=True)
class Problem:
    """A data set of function pairs: how to make it, its grid and the model that fits it.

    ``grid``: "periodic" (points i/n, subsample by n_stored / n), "nodal" (points i/(n − 1),
    boundary included, subsample by (n_stored − 1)/(n − 1)) or "cells" (stored resolution only).
    """

    dim: int
    channels_in: int
    stored: int
    resolution: int
    grid: str
    make: Callable[[int, int, bool], tuple[np.ndarray, np.ndarray]]
    description: str
    normalize: bool = False
    density: bool = False
    defaults: tuple[tuple[str, object], ...] = ()


def _burgers(samples: int, seed: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    u0, u1 = burgers.dataset(samples, burgers.FINE_POINTS, seed=seed, dt=5e-3, progress=progress)
    return u0.float().numpy()[..., None], u1.float().numpy()[..., None]


def _darcy(samples: int, seed: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    a, u = darcy.dataset(samples, 85, seed=seed, progress=progress)
    return a.astype(np.float32)[..., None], u.astype(np.float32)[..., None]


def _smoluchowski(samples: int, seed: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    inputs, outputs = smoluchowski.dataset(samples, 256, seed=seed)
    return inputs.astype(np.float32), outputs.astype(np.float32)[..., None]


PROBLEMS = {
    "burgers": Problem(1, 1, burgers.FINE_POINTS, 1024, "periodic", _burgers,
                       "Burgers' equation, ν = 0.1: u(·, 0) ↦ u(·, 1) (solved at 8192 points)",
                       normalize=True, defaults=(("epochs", 80),)),
    "darcy": Problem(2, 1, 85, 85, "nodal", _darcy,
                     "Darcy flow: coefficient a ↦ pressure u (solved at 421 × 421, stored at 85 × 85)",
                     normalize=True,
                     defaults=(("epochs", 20), ("coarse_epochs", 120), ("validate_every_epochs", 10))),
    "smoluchowski": Problem(1, 2, 256, 256, "cells", _smoluchowski,
                            "Smoluchowski equation: (p₀, βU) ↦ p(t = 0.1) on random double wells",
                            normalize=True, density=True, defaults=(("epochs", 100),)),
}
DEFAULTS = {"train": 1000, "test": 200, "resolution": None, "eval_resolutions": [], "batch_size": 20, "lr": 1e-3,
            "epochs": 100, "coarse_epochs": 0, "coarse_stride": 2, "modes": None, "width": None, "seed": 0,
            "data": None, "validate_every_epochs": 5}


def get(name: str) -> Problem:
    if name not in PROBLEMS:
        raise MlmolError(f"unknown operator problem {name!r}; choose {', '.join(PROBLEMS)}")
    return PROBLEMS[name]


def make_config(problem: str, **overrides) -> dict:
    """The run's settings: ``DEFAULTS``, the problem's defaults, then the non-None ``overrides``."""
    spec = get(problem)
    config = {"problem": problem, **DEFAULTS, **dict(spec.defaults),
              **{k: v for k, v in overrides.items() if v is not None}}
    config["resolution"] = config["resolution"] or spec.resolution
    for key in ("train", "test", "batch_size", "epochs"):
        if int(config[key]) <= 0:
            raise MlmolError(f"{key} must be positive, got {config[key]}")
    for resolution in [config["resolution"], *config["eval_resolutions"]]:
        stride(spec, resolution)
    if config["coarse_epochs"]:
        stride(spec, coarse_resolution(spec, config))
    return config


def stride(problem: Problem, resolution: int) -> int:
    """Subsampling stride from the stored grid to ``resolution`` points per axis; errors if none."""
    stored, n = problem.stored, int(resolution)
    if problem.grid == "periodic" and n > 0 and stored % n == 0:
        return stored // n
    if problem.grid == "nodal" and n > 1 and (stored - 1) % (n - 1) == 0:
        return (stored - 1) // (n - 1)
    if n == stored:
        return 1
    allowed = {"periodic": f"a divisor of {stored} (e.g. {stored // 32}, {stored // 8}, {stored // 2})",
               "nodal": f"(n − 1) dividing {stored - 1} (e.g. {(stored - 1) // 2 + 1}, {stored})",
               "cells": f"only {stored}"}[problem.grid]
    raise MlmolError(f"resolution {n} is not available for this problem: {allowed}")


def coarse_resolution(problem: Problem, config: dict) -> int:
    """Points per axis after subsampling the training resolution by ``coarse_stride``."""
    n, s = int(config["resolution"]), int(config["coarse_stride"])
    return (n - 1) // s + 1 if problem.grid == "nodal" else n // s


def every(step: int, dim: int) -> tuple[slice, ...]:
    """The index taking every ``step``-th grid point of ``[N, *grid, c]`` along its ``dim`` grid axes."""
    return (slice(None), *[slice(None, None, step)] * dim)


def steps_per_epoch(config: dict) -> int:
    """Optimisation steps in one pass over the training pairs."""
    return math.ceil(config["train"] / config["batch_size"])


def subsample(values: np.ndarray | torch.Tensor, problem: Problem, resolution: int):
    """``values`` ``[N, *grid, c]`` at the stored resolution, sampled at ``resolution`` per axis."""
    return values[every(stride(problem, resolution), problem.dim)]


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


def test_error(model: FNO, inputs: torch.Tensor, outputs: torch.Tensor) -> float:
    """Mean relative L2 error of ``model`` over the test pairs."""
    return float(relative_l2(predict(model, inputs), outputs))


def load_data(config: dict, path: Path, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The data set of the run: read from ``config["data"]`` or RUN/data.npz, made and written if absent."""
    problem = get(config["problem"])
    file = Path(config["data"]) if config["data"] else path / "data.npz"
    needed = config["train"] + config["test"]
    if file.is_file():
        try:
            with np.load(file) as stored:
                inputs, outputs = stored["inputs"], stored["outputs"]
        except (OSError, KeyError, ValueError) as error:
            raise MlmolError(f"cannot read operator data from {file} ({error}); delete it to make it again") from None
        grid = (problem.stored,) * problem.dim
        if inputs.shape[1:-1] != grid or len(inputs) < needed:
            raise MlmolError(f"{file} holds {len(inputs)} pairs on a grid {inputs.shape[1:-1]}; this run needs "
                             f"{needed} on {grid}: name another file or delete it")
        return inputs, outputs
    inputs, outputs = problem.make(needed, int(config["seed"]), progress)
    save_array(file, inputs=inputs, outputs=outputs)
    return inputs, outputs


def build(config: dict) -> FNO:
    problem = get(config["problem"])
    torch.manual_seed(config["seed"])
    kind = DensityFNO if problem.density else FNO
    return kind(dim=problem.dim, modes=config["modes"], width=config["width"], channels_in=problem.channels_in)


def recipe(config: dict, model: FNO, inputs: np.ndarray, outputs: np.ndarray) -> Recipe:
    """Stages of Adam on the relative L2 loss, the learning rate on a cosine to zero; with
    ``coarse_epochs`` first that many epochs at the training resolution subsampled by
    ``coarse_stride`` (4× cheaper in 2D), annealed to a quarter, then the rest at full resolution."""
    problem = get(config["problem"])
    train, test = config["train"], config["test"]
    pairs = torch.from_numpy(np.concatenate([inputs, outputs], -1))
    pairs = subsample(pairs, problem, config["resolution"])
    if problem.normalize:
        model.normalize_with(pairs[:train, ..., :problem.channels_in], pairs[:train, ..., problem.channels_in:])
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
        return {"test_l2": test_error(model, data[..., :problem.channels_in], data[..., problem.channels_in:])}

    return Recipe(stages, data=pairs[:train], validation=pairs[-test:], validation_metric=metric)


def train(config: dict | None, out: str | Path, resume: bool = False, progress: bool = False) -> dict:
    """Train (or, with ``resume``, continue) the run in ``out``; evaluate it; return RUN/metrics.json."""
    path = Path(out)
    if resume:
        if not (path / "config.json").is_file():
            raise MlmolError(f"{path} has no config.json to resume; start a new run without --resume")
        config = json.loads((path / "config.json").read_text())
    else:
        if (path / "checkpoint.pt").exists():
            raise MlmolError(f"{path} already holds a run; pass --resume to continue it or choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        atomic_write(path / "config.json", json.dumps(config, indent=2))
    started = time.perf_counter()
    inputs, outputs = load_data(config, path, progress)
    data_seconds = time.perf_counter() - started
    model = build(config)
    plan = recipe(config, model, inputs, outputs)
    per_epoch = steps_per_epoch(config)
    started = time.perf_counter()
    history = fit(model, plan, seed=config["seed"], checkpoint=path / "checkpoint.pt", metrics=path / "metrics.jsonl",
                  resume=resume, progress=progress, log_every=per_epoch,
                  validate_every=per_epoch * config["validate_every_epochs"])
    train_seconds = time.perf_counter() - started
    result = evaluate(config, model, inputs, outputs)
    epochs = config["epochs"] + config["coarse_epochs"]
    result.update({"data_seconds": round(data_seconds, 1), "train_seconds": round(train_seconds, 1),
                   "seconds_per_epoch": round(train_seconds / epochs, 3), "threads": torch.get_num_threads(),
                   "final_train_l2": history["l2"][-1] if history["l2"] else None})
    atomic_write(path / "metrics.json", json.dumps(result, indent=2))
    plot_predictions(config, model, inputs, outputs, path / "predictions.png")
    return result


def load(out: str | Path) -> tuple[dict, FNO]:
    """The config and the trained model of a run directory."""
    path = Path(out)
    config = json.loads((path / "config.json").read_text())
    model = build(config)
    state = load_torch(path / "checkpoint.pt")
    model.load_state_dict(state["flow"])
    return config, model.eval()


def evaluate(config: dict, model: FNO, inputs: np.ndarray, outputs: np.ndarray) -> dict:
    """Test relative L2 at the training resolution and each of ``eval_resolutions``; for densities,
    the largest error in total probability of the predictions."""
    problem = get(config["problem"])
    test = slice(len(inputs) - config["test"], None)
    result = {"problem": config["problem"], "train": config["train"], "test": config["test"],
              "resolution": config["resolution"], "test_l2": {}}
    model.eval()
    for resolution in dict.fromkeys([config["resolution"], *config["eval_resolutions"]]):
        a = torch.from_numpy(subsample(inputs[test], problem, resolution))
        u = torch.from_numpy(subsample(outputs[test], problem, resolution))
        prediction = predict(model, a)
        result["test_l2"][str(resolution)] = float(relative_l2(prediction, u))
        if problem.density:
            mass = prediction.sum(1) / a[..., :1].sum(1)
            result["mass_error"] = float((mass - 1).abs().max())
    return result


def describe(result: dict) -> str:
    errors = ", ".join(f"{e:.4f} at {n}" for n, e in result["test_l2"].items())
    text = f"test relative L2 {errors}"
    if "mass_error" in result:
        text += f"; largest error in total probability {result['mass_error']:.1e}"
    return text


def plot_predictions(config: dict, model: FNO, inputs: np.ndarray, outputs: np.ndarray, file: Path,
                     count: int = 3) -> None:
    """Input, truth and prediction of the first ``count`` test samples (1D: curves; 2D: images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problem = get(config["problem"])
    a = torch.from_numpy(subsample(inputs[-config["test"]:][:count], problem, config["resolution"]))
    u = subsample(outputs[-config["test"]:][:count], problem, config["resolution"])
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
    save_figure(fig, file)
