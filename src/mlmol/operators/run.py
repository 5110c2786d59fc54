"""An operator-learning run directory: make (or load) the data, train an FNO through the shared
loop (:func:`mlmol.train.fit`), evaluate at the training resolution and at others.

RUN/config.json      problem, data sizes, resolutions, model and schedule (enough to rerun)
RUN/data.npz         the data at the stored resolution (unless ``data`` names a shared file, reused
                     when it exists and written when not): ``inputs`` ``[N, *grid, c_in]`` and
                     ``outputs`` ``[N, *grid, c_out]``, drawn from ``seed``, of which the first ``train``
                     pairs train the model and the next ``validation`` validate it; ``test_inputs`` and
                     ``test_outputs``, drawn from their own stream (``seed`` + 1,000,000), of which the
                     first ``test`` are the held-out test set
RUN/checkpoint.pt    weights, optimiser, random state (atomic; ``resume`` continues it)
RUN/metrics.jsonl    training loss ``l2`` and the validation error ``val_l2`` as training goes
                     (the test set is never looked at during training)
RUN/metrics.json     after training, once: the validation error, the held-out test relative L2 at each
                     evaluated resolution, reference predictors on the test set, mass error
                     (densities), data seeds, times
RUN/predictions.png  test samples: input, truth, prediction

Data files written before the validation split held only ``inputs`` and ``outputs`` (the last ``test``
pairs then served as both the validation and the test set). They are upgraded on first use: their
first ``train`` + ``validation`` pairs are kept as the training and validation pairs, and fresh test
pairs from the test stream are made and added to the file (a one-line notice says so).
"""

from __future__ import annotations

import json
import math
import sys
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
    viscosity: float | None = None  # Burgers: the heat-equation reference uses it


def _burgers(samples: int, seed: int, progress: bool, setting: burgers.Setting = burgers.PAPER_TEXT
             ) -> tuple[np.ndarray, np.ndarray]:
    u0, u1 = burgers.dataset(samples, burgers.FINE_POINTS, seed=seed, progress=progress, setting=setting)
    return u0.float().numpy()[..., None], u1.float().numpy()[..., None]


def _burgers_shock(samples: int, seed: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    return _burgers(samples, seed, progress, burgers.RELEASED)


def _darcy(samples: int, seed: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    a, u = darcy.dataset(samples, 85, seed=seed, progress=progress)
    return a.astype(np.float32)[..., None], u.astype(np.float32)[..., None]


def _smoluchowski(samples: int, seed: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    inputs, outputs = smoluchowski.dataset(samples, 256, seed=seed)
    return inputs.astype(np.float32), outputs.astype(np.float32)[..., None]


PROBLEMS = {
    "burgers": Problem(1, 1, burgers.FINE_POINTS, 1024, "periodic", _burgers,
                       "Burgers' equation, ν = 0.1: u(·, 0) ↦ u(·, 1) (solved at 8192 points)",
                       normalize=True, defaults=(("epochs", 80),), viscosity=burgers.PAPER_TEXT.viscosity),
    "burgers-shock": Problem(1, 1, burgers.FINE_POINTS, 1024, "periodic", _burgers_shock,
                             "Burgers' equation, ν = 1/1000, the released generator's field (shocks): "
                             "u(·, 0) ↦ u(·, 1) (solved at 8192 points)",
                             normalize=True, viscosity=burgers.RELEASED.viscosity,
                             defaults=(("epochs", 50), ("coarse_epochs", 450), ("coarse_stride", 4))),
    "darcy": Problem(2, 1, 85, 85, "nodal", _darcy,
                     "Darcy flow: coefficient a ↦ pressure u (solved at 421 × 421, stored at 85 × 85)",
                     normalize=True,
                     defaults=(("epochs", 20), ("coarse_epochs", 120), ("validate_every_epochs", 10))),
    "smoluchowski": Problem(1, 2, 256, 256, "cells", _smoluchowski,
                            "Smoluchowski equation: (p₀, βU) ↦ p(t = 0.1) on random double wells",
                            normalize=True, density=True, defaults=(("epochs", 100),)),
}
DEFAULTS = {"train": 1000, "validation": 100, "test": 200, "resolution": None, "eval_resolutions": [],
            "batch_size": 20, "lr": 1e-3, "epochs": 100, "coarse_epochs": 0, "coarse_stride": 2, "modes": None,
            "width": None, "seed": 0, "data": None, "validate_every_epochs": 5}


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
    for key in ("train", "validation", "test", "batch_size", "epochs"):
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


def mean_error(model: FNO, inputs: torch.Tensor, outputs: torch.Tensor) -> float:
    """Mean relative L2 error of ``model`` over the pairs (``inputs`` ``[N, *grid, c_in]``, ``outputs``)."""
    return float(relative_l2(predict(model, inputs), outputs))


TEST_SEED_OFFSET = 1_000_000


def test_seed(seed: int) -> int:
    """The seed of the held-out test pairs of a data set drawn from ``seed``: their own random stream,
    so they are never among the training or validation pairs (whatever the split sizes)."""
    return int(seed) + TEST_SEED_OFFSET


@dataclass
class OperatorData:
    """The pairs of a run at the stored resolution. ``inputs``/``outputs`` are drawn from ``seed``
    (``None``: a file from before the validation split, which did not record it): the first
    ``train`` train the model, the next ``validation`` validate it. ``test_inputs``/``test_outputs``
    are drawn from ``test_seed``: the first ``test`` are the held-out test set."""

    inputs: np.ndarray
    outputs: np.ndarray
    test_inputs: np.ndarray
    test_outputs: np.ndarray
    seed: int | None
    test_seed: int

    def split(self, name: str, config: dict) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, outputs) of ``name`` ("train", "validation" or "test") for the sizes in ``config``."""
        train, validation = int(config["train"]), int(config["validation"])
        if name == "train":
            return self.inputs[:train], self.outputs[:train]
        if name == "validation":
            return self.inputs[train:train + validation], self.outputs[train:train + validation]
        if name == "test":
            return self.test_inputs[:config["test"]], self.test_outputs[:config["test"]]
        raise MlmolError(f"unknown split {name!r}; choose train, validation or test")


def load_data(config: dict, path: str | Path, progress: bool = False) -> OperatorData:
    """The data of the run: read from ``config["data"]`` or RUN/data.npz, made and written if absent
    (training and validation pairs from ``config["seed"]``, test pairs from :func:`test_seed`). A
    file from before the validation split gets its test pairs made and added (see the module notes)."""
    problem = get(config["problem"])
    file = Path(config["data"]) if config["data"] else Path(path) / "data.npz"
    pool, test, seed = config["train"] + config["validation"], config["test"], int(config["seed"])
    grid = (problem.stored,) * problem.dim
    if not file.is_file():
        inputs, outputs = problem.make(pool, seed, progress)
        test_inputs, test_outputs = problem.make(test, test_seed(seed), progress)
        save_array(file, inputs=inputs, outputs=outputs, test_inputs=test_inputs, test_outputs=test_outputs,
                   seed=seed, test_seed=test_seed(seed))
        return OperatorData(inputs, outputs, test_inputs, test_outputs, seed, test_seed(seed))
    try:
        with np.load(file) as stored:
            arrays = {key: stored[key] for key in stored.files}
        inputs, outputs = arrays["inputs"], arrays["outputs"]
    except (OSError, KeyError, ValueError) as error:
        raise MlmolError(f"cannot read operator data from {file} ({error}); delete it to make it again") from None
    if inputs.shape[1:-1] != grid or len(inputs) < pool:
        raise MlmolError(f"{file} holds {len(inputs)} training and validation pairs on a grid {inputs.shape[1:-1]}; "
                         f"this run needs {pool} on {grid}: name another file or delete it")
    if "test_inputs" not in arrays:
        print(f"{file} predates the validation split: its first {pool} pairs become the training and validation "
              f"pairs, and {test} new test pairs (seed {test_seed(seed)}) are made and added to it", file=sys.stderr)
        arrays["test_inputs"], arrays["test_outputs"] = problem.make(test, test_seed(seed), progress)
        arrays["test_seed"] = np.asarray(test_seed(seed))
        save_array(file, **arrays)
    test_inputs, test_outputs = arrays["test_inputs"], arrays["test_outputs"]
    if test_inputs.shape[1:-1] != grid or len(test_inputs) < test:
        raise MlmolError(f"{file} holds {len(test_inputs)} test pairs on a grid {test_inputs.shape[1:-1]}; this run "
                         f"needs {test} on {grid}: name another file or delete it")
    return OperatorData(inputs, outputs, test_inputs, test_outputs,
                        int(arrays["seed"]) if "seed" in arrays else None, int(arrays["test_seed"]))


def build(config: dict) -> FNO:
    problem = get(config["problem"])
    torch.manual_seed(config["seed"])
    kind = DensityFNO if problem.density else FNO
    return kind(dim=problem.dim, modes=config["modes"], width=config["width"], channels_in=problem.channels_in)


def pairs(config: dict, data: OperatorData, split: str, resolution: int | None = None) -> torch.Tensor:
    """``[N, *grid, c_in + c_out]`` of one split at ``resolution`` (default: the training resolution)."""
    problem = get(config["problem"])
    inputs, outputs = data.split(split, config)
    both = torch.from_numpy(np.concatenate([inputs, outputs], -1))
    return subsample(both, problem, resolution or config["resolution"])


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


def train(config: dict | None, out: str | Path, resume: bool = False, progress: bool = False) -> dict:
    """Train (or, with ``resume``, continue) the run in ``out``, watching the validation pairs; then
    evaluate it once on the held-out test pairs; return RUN/metrics.json."""
    path = Path(out)
    if resume:
        if not (path / "config.json").is_file():
            raise MlmolError(f"{path} has no config.json to resume; start a new run without --resume")
        config = json.loads((path / "config.json").read_text())
        if "validation" not in config:
            raise MlmolError(f"{path} was made before the validation split (its test pairs were also its validation "
                             "pairs); start a new run")
    else:
        if (path / "checkpoint.pt").exists():
            raise MlmolError(f"{path} already holds a run; pass --resume to continue it or choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        atomic_write(path / "config.json", json.dumps(config, indent=2))
    started = time.perf_counter()
    data = load_data(config, path, progress)
    data_seconds = time.perf_counter() - started
    model = build(config)
    plan = recipe(config, model, data)
    per_epoch = steps_per_epoch(config)
    started = time.perf_counter()
    history = fit(model, plan, seed=config["seed"], checkpoint=path / "checkpoint.pt", metrics=path / "metrics.jsonl",
                  resume=resume, progress=progress, log_every=per_epoch,
                  validate_every=per_epoch * config["validate_every_epochs"])
    train_seconds = time.perf_counter() - started
    result = evaluate(config, model, data)
    epochs = config["epochs"] + config["coarse_epochs"]
    result.update({"data_seconds": round(data_seconds, 1), "train_seconds": round(train_seconds, 1),
                   "seconds_per_epoch": round(train_seconds / epochs, 3), "threads": torch.get_num_threads(),
                   "final_train_l2": history["l2"][-1] if history["l2"] else None})
    atomic_write(path / "metrics.json", json.dumps(result, indent=2))
    plot_predictions(config, model, data, path / "predictions.png")
    return result


def load(out: str | Path) -> tuple[dict, FNO]:
    """The config and the trained model of a run directory."""
    path = Path(out)
    config = json.loads((path / "config.json").read_text())
    model = build(config)
    state = load_torch(path / "checkpoint.pt")
    model.load_state_dict(state["flow"])
    return config, model.eval()


def _relative(prediction: np.ndarray, target: np.ndarray) -> float:
    """:func:`relative_l2` of NumPy arrays, in float64."""
    return float(relative_l2(*(torch.as_tensor(np.asarray(v, dtype=float)) for v in (prediction, target))))


def references(problem_name: str, inputs: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """Relative L2 errors of cheap reference predictors on pairs ``[N, *grid, c]`` (one resolution):
    ``zero`` (always 1); Burgers: ``heat_equation`` (the linear part alone, exact in Fourier space);
    Smoluchowski: ``identity`` (p(t) = p₀) and ``boltzmann`` (p ∝ exp(−βU), the t → ∞ limit);
    Darcy: ``mean_coefficient`` (the exact solution for the constant coefficient exp(mean log a),
    the effective coefficient of an isotropic two-phase medium in 2D, one Poisson solve)."""
    problem = get(problem_name)
    target = outputs[..., 0]
    result = {"zero": _relative(np.zeros_like(target), target)}
    if problem.viscosity is not None:
        result["heat_equation"] = _relative(burgers.heat_equation(inputs[..., 0].astype(float), problem.viscosity),
                                            target)
    if problem.density:
        p0, energy = inputs[..., 0].astype(float), inputs[..., 1].astype(float)
        boltzmann = np.exp(-(energy - energy.min(-1, keepdims=True)))
        boltzmann *= p0.sum(-1, keepdims=True) / boltzmann.sum(-1, keepdims=True)
        result.update(identity=_relative(p0, target), boltzmann=_relative(boltzmann, target))
    if problem_name == "darcy":
        poisson = darcy.solve(np.ones(inputs.shape[1:3]))  # −Δu = 1
        coefficient = np.exp(np.log(inputs[..., 0].astype(float)).mean((1, 2)))
        result["mean_coefficient"] = _relative(poisson[None] / coefficient[:, None, None], target)
    return result


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
    errors = ", ".join(f"{e:.4f} at {n}" for n, e in result["test_l2"].items())
    validation = ", ".join(f"{e:.4f} at {n}" for n, e in result["validation_l2"].items())
    text = f"validation relative L2 {validation}; held-out test relative L2 {errors}"
    if result.get("reference_l2"):
        names = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in result["reference_l2"].items())
        text += f" (references on the test pairs: {names})"
    if "mass_error" in result:
        text += f"; largest error in total probability {result['mass_error']:.1e}"
    return text


def plot_predictions(config: dict, model: FNO, data: OperatorData, file: Path, count: int = 3) -> None:
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
    save_figure(fig, file)
