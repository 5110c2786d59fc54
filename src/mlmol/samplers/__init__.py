"""Reference samplers (MCMC) that produce training data."""

from .mcmc import find_minima, langevin, metropolis, starting_points
from .md import MolecularDynamics, molecular_dynamics

SAMPLERS = {"metropolis": metropolis, "langevin": langevin}

__all__ = ["metropolis", "langevin", "molecular_dynamics", "MolecularDynamics", "find_minima", "starting_points", "SAMPLERS"]
