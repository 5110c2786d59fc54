"""Learning in implicit generative models (Mohamed & Lakshminarayanan 2016) and inference on simulators.

A simulator gives samples but no density. Learning it means estimating the ratio
r(x) = p_data(x) / q_model(x) from samples of both:

- :mod:`~mlmol.implicit.principles`: the paper's four ways to do that, as loss objects over
  (data samples, model samples); :mod:`~mlmol.implicit.generator` trains a generator with one.
- :mod:`~mlmol.implicit.tasks`: simulators with reference posteriors (linear Gaussian, two moons,
  Langevin dynamics in a double well).
- :mod:`~mlmol.implicit.inference`: rejection ABC, neural ratio estimation (the classifier
  principle on (θ, x) pairs) and sbi's neural posterior estimation.
- :mod:`~mlmol.implicit.calibration`: simulation-based calibration and C2ST.
"""

from .calibration import c2st, rank_uniformity, sbc_ranks
from .generator import Critic, train_implicit
from .inference import (
    RatioEstimator,
    Simulations,
    SimulationWarning,
    npe,
    ratio_posterior,
    rejection_abc,
    sample_posterior,
    simulations,
    train_ratio,
)
from .principles import ClassProbability, FDivergenceKL, MomentMatching, RatioMatching, mmd2
from .tasks import LangevinDoubleWell, LinearGaussian, Task, TwoMoons, box_prior

__all__ = [
    "ClassProbability",
    "Critic",
    "FDivergenceKL",
    "LangevinDoubleWell",
    "LinearGaussian",
    "MomentMatching",
    "RatioEstimator",
    "RatioMatching",
    "SimulationWarning",
    "Simulations",
    "Task",
    "TwoMoons",
    "box_prior",
    "c2st",
    "mmd2",
    "npe",
    "rank_uniformity",
    "ratio_posterior",
    "rejection_abc",
    "sample_posterior",
    "sbc_ranks",
    "simulations",
    "train_implicit",
    "train_ratio",
]
