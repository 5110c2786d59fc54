"""Normalizing flows for Boltzmann generators: coupling layers, splines, latent temperature.

We write our own small coupling flows rather than using zuko's ``NSF`` because a Boltzmann
generator needs sampling *and* density in one pass each (coupling, not autoregressive),
latent temperature scaling, seeded generators for bit-for-bit resume, and fixed bijections
(standardisation now, internal coordinates later) in the same chain. The rational-quadratic
spline itself is zuko's.
"""

from .bijections import AffineCoupling, Bijection, Chain, CircularShift, SplineCoupling, Standardize
from .equivariant import EquivariantFlow, PairVelocity
from .flow import Flow, NeuralSpline, RealNVP
from .internal import InternalCoordinates, zmatrix
from .molecular import MolecularFlow
from .registry import FAMILIES, build

__all__ = ["Bijection", "Chain", "CircularShift", "Standardize", "AffineCoupling", "SplineCoupling", "Flow",
           "RealNVP", "NeuralSpline", "FAMILIES", "build",
           "InternalCoordinates", "zmatrix", "MolecularFlow", "PairVelocity", "EquivariantFlow"]
