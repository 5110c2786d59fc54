"""Neural-network wavefunctions by variational Monte Carlo (FermiNet, Pfau et al. 2020).

- :mod:`~mlmol.vmc.systems`: atoms and molecules (charges, positions in bohr, electrons per spin).
- :mod:`~mlmol.vmc.wavefunctions`: FermiNet and a Slater–Jastrow baseline, ``x -> (sign, log|ψ|)``.
- :mod:`~mlmol.vmc.hamiltonian`: local energies with the exact Laplacian (``torch.func``).
- :mod:`~mlmol.vmc.sampling`: Metropolis–Hastings walkers and the blocking analysis.
- :mod:`~mlmol.vmc.optimize`: the VMC objective (clipped local energies, plain or natural gradient) and evaluation.
- :mod:`~mlmol.vmc.run`: a run (``mlmol vmc``) through :func:`mlmol.train.fit`; :mod:`~mlmol.vmc.report`: its report.
"""

from .hamiltonian import kinetic_energy, local_energy, potential_energy
from .optimize import NaturalGradient, VMCEnergy, VMCObjective, evaluate
from .sampling import Walkers, blocking_error, initial_positions
from .systems import EXACT_ENERGIES, ElectronicSystem, get, molecule
from .wavefunctions import FermiNet, HydrogenGroundState, SlaterJastrow

__all__ = [
    "EXACT_ENERGIES",
    "ElectronicSystem",
    "FermiNet",
    "HydrogenGroundState",
    "NaturalGradient",
    "SlaterJastrow",
    "VMCEnergy",
    "VMCObjective",
    "Walkers",
    "blocking_error",
    "evaluate",
    "get",
    "initial_positions",
    "kinetic_energy",
    "local_energy",
    "molecule",
    "potential_energy",
]
