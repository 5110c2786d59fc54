"""Operator-learning problems: how each data set of function pairs is made, stored, split and
subsampled, and the cheap reference predictors a trained operator is compared with.

A data file (``.npz``) holds ``inputs`` ``[N, *grid, c_in]`` and ``outputs`` ``[N, *grid, c_out]`` at the
stored resolution, drawn from ``seed``: the first ``train`` pairs train the model and the next
``validation`` validate it; ``test_inputs`` and ``test_outputs``, drawn from their own stream
(``seed`` + 1,000,000), of which the first ``test`` are the held-out test set.

Data files written before the validation split held only ``inputs`` and ``outputs`` (the last ``test``
pairs then served as both the validation and the test set). They are upgraded on first use: their
first ``train`` + ``validation`` pairs are kept as the training and validation pairs, and fresh test
pairs from the test stream are made and added to the file (a one-line notice says so).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import save_array
from ..errors import MlmolError
from . import burgers, darcy, smoluchowski
from .fno import relative_l2


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
def get(name: str) -> Problem:
    """A problem by name (see ``PROBLEMS``), or a clear error listing them."""
    if name not in PROBLEMS:
        raise MlmolError(f"unknown operator problem {name!r}; choose {', '.join(PROBLEMS)}")
    return PROBLEMS[name]


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


def subsample(values: np.ndarray | torch.Tensor, problem: Problem, resolution: int):
    """``values`` ``[N, *grid, c]`` at the stored resolution, sampled at ``resolution`` per axis."""
    return values[every(stride(problem, resolution), problem.dim)]


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


def pairs(config: dict, data: OperatorData, split: str, resolution: int | None = None) -> torch.Tensor:
    """``[N, *grid, c_in + c_out]`` of one split at ``resolution`` (default: the training resolution)."""
    problem = get(config["problem"])
    inputs, outputs = data.split(split, config)
    both = torch.from_numpy(np.concatenate([inputs, outputs], -1))
    return subsample(both, problem, resolution or config["resolution"])


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


