"""Reference samplers (MCMC) that produce training data."""

from .mcmc import find_minima, langevin, metropolis, starting_points

SAMPLERS = {"metropolis": metropolis, "langevin": langevin}

__all__ = ["metropolis", "langevin", "find_minima", "starting_points", "SAMPLERS"]
