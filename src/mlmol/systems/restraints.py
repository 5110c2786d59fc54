"""Restraints added to a system's reduced energy for sampling: the torch twin of the OpenMM flat-bottom
restraint (:func:`mlmol.samplers.md.flat_bottom_restraint`) that holds peptide bonds in their isomer."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import MlmolError
from ..geometry import dihedral_of, wrap_angle
from .base import Energy


class FlatBottomRestrained(Energy):
    """``energy`` plus ½ k (|θ − c| − w)² / kT for every torsion θ further than w from its centre c.

    Zero for every configuration whose torsions lie within ``half_width_deg`` of their centres, so the
    Boltzmann distribution of those configurations is unchanged. Held at 180° (trans), the peptide bonds
    of a temperature ladder's hot replicas can no longer flip to cis, a state of small Boltzmann weight
    that MD at the molecule's own temperature does not visit on simulation time scales.

    Arguments:
        energy: the system (``kT`` in kJ/mol).
        torsions: four atom indices per held torsion, e.g. ``peptide_bonds(topology)``.
        centres_deg: c (degrees), one for all torsions or one per torsion (180 trans, 0 cis).
        force_constant: k (kJ/mol/rad²).
        half_width_deg: w (degrees).

    Example:
        >>> from mlmol.systems import DoubleWell
        >>> held = FlatBottomRestrained(DoubleWell(), [])  # no torsions: the energy itself
        >>> bool(held.energy(torch.zeros(1, 2)) == DoubleWell().energy(torch.zeros(1, 2)))
        True
    """

    def __init__(self, energy: Energy, torsions: Sequence[Sequence[int]],
                 centres_deg: float | Sequence[float] = 180.0, force_constant: float = 1000.0,
                 half_width_deg: float = 90.0):
        super().__init__(energy.dim, energy.kT)
        self.base, self.name = energy, energy.name
        self.torsions = [tuple(int(a) for a in atoms) for atoms in torsions]
        centres = [centres_deg] * len(self.torsions) if isinstance(centres_deg, (int, float)) else list(centres_deg)
        if len(centres) != len(self.torsions):
            raise MlmolError(f"{len(self.torsions)} torsions but {len(centres)} centres: give one centre per torsion")
        self.centres = [math.radians(c) for c in centres]
        self.force_constant, self.half_width = float(force_constant), math.radians(half_width_deg)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        total = self.base.energy(x)
        for atoms, centre in zip(self.torsions, self.centres):
            d = wrap_angle(dihedral_of(x, atoms) - centre)  # θ − c on the circle
            total = total + 0.5 * self.force_constant / self.kT * torch.clamp(d.abs() - self.half_width, min=0) ** 2
        return total


def isomers(x: torch.Tensor, torsions: Sequence[Sequence[int]]) -> list[float]:
    """The isomer of each torsion in one configuration ``[3N]``: 180.0 (trans, |θ| > 90°) or 0.0 (cis), degrees."""
    return [180.0 if abs(float(dihedral_of(x, tuple(atoms)))) > math.pi / 2 else 0.0 for atoms in torsions]
