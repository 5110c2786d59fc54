"""mlmol: machine learning for molecular simulation, Boltzmann generators first."""

from . import estimators, experiments, flows, losses, samplers, systems
from .data import Samples
from .errors import MlmolError
from .estimators import Estimate
from .generate import sample
from .train import Recipe, Stage, fit

__version__ = "0.1.0"

__all__ = ["systems", "flows", "losses", "samplers", "estimators", "experiments", "fit", "sample",
           "Samples", "Estimate", "Recipe", "Stage", "MlmolError", "__version__"]
