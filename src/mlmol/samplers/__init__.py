"""Reference samplers (MCMC) that produce training data."""

from .mcmc import find_minima, langevin, metropolis, starting_points
from .md import molecular_dynamics

SAMPLERS = {"metropolis": metropolis, "langevin": langevin}

__all__ = ["metropolis", "langevin", "molecular_dynamics", "find_minima", "starting_points", "SAMPLERS"]
