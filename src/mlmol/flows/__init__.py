"""Normalizing flows for Boltzmann generators: coupling layers, splines, latent temperature.

We write our own small coupling flows rather than using zuko's ``NSF`` because a Boltzmann
generator needs sampling *and* density in one pass each (coupling, not autoregressive),
latent temperature scaling, seeded generators for bit-for-bit resume, and fixed bijections
(standardisation now, internal coordinates later) in the same chain. The rational-quadratic
spline itself is zuko's.
"""

from .bijections import AffineCoupling, Bijection, Chain, CircularShift, SplineCoupling, Standardize
from .equivariant import EquivariantFlow, PairVelocity
from .flow import CouplingFlow, Flow, FlowModel, NeuralSpline, RealNVP
from .internal import InternalCoordinates, zmatrix
from .molecular import MolecularFlow
from .registry import FAMILIES, build

__all__ = [
           "FAMILIES",
           "AffineCoupling",
           "Bijection",
           "Chain",
           "CircularShift",
           "CouplingFlow",
           "EquivariantFlow",
           "Flow",
           "FlowModel",
           "InternalCoordinates",
           "MolecularFlow",
           "NeuralSpline",
           "PairVelocity",
           "RealNVP",
           "SplineCoupling",
           "Standardize",
           "build",
           "zmatrix",
]
