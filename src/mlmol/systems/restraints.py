"""Restraints added to a system's reduced energy for sampling: the torch twin of the OpenMM flat-bottom
restraint (:func:`mlmol.samplers.md.flat_bottom_restraint`) that holds peptide bonds trans."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..geometry import dihedral_of
from .base import Energy


class TransRestrained(Energy):
    """``energy`` plus ½ k (|ω − 180°| − w)² / kT for every torsion ω further than w from trans.

    Zero for every configuration whose torsions lie within ``half_width_deg`` of trans, so the Boltzmann
    distribution of those configurations is unchanged; hot replicas of a temperature ladder can no
    longer flip a peptide bond to cis, a state the system's own temperature never reaches.

    Arguments:
        energy: the system (``kT`` in kJ/mol).
        torsions: four atom indices per held torsion, e.g. ``peptide_bonds(topology)``.
        force_constant: k (kJ/mol/rad²).
        half_width_deg: w (degrees).

    Example:
        >>> from mlmol.systems import DoubleWell
        >>> held = TransRestrained(DoubleWell(), [])  # no torsions: the energy itself
        >>> bool(held.energy(torch.zeros(1, 2)) == DoubleWell().energy(torch.zeros(1, 2)))
        True
    """

    def __init__(self, energy: Energy, torsions: Sequence[Sequence[int]], force_constant: float = 1000.0,
                 half_width_deg: float = 90.0):
        super().__init__(energy.dim, energy.kT)
        self.base, self.name = energy, energy.name
        self.torsions = [tuple(int(a) for a in atoms) for atoms in torsions]
        self.force_constant, self.half_width = float(force_constant), math.radians(half_width_deg)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        total = self.base.energy(x)
        for atoms in self.torsions:
            d = torch.remainder(dihedral_of(x, atoms), 2 * math.pi) - math.pi  # ω − 180°, wrapped
            total = total + 0.5 * self.force_constant / self.kT * torch.clamp(d.abs() - self.half_width, min=0) ** 2
        return total
