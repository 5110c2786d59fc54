"""The molecule system type: a force-field energy with its topology, structure, torsions and states."""

from __future__ import annotations

import copy
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import MlmolError
from ..geometry import dihedral_of
from .base import Energy
from .forcefield import TorchEnergy
from .openmm_bridge import OpenMMEnergy

if TYPE_CHECKING:
    from openmm import app

Torsions = dict[str, tuple[int, int, int, int]]  # name -> four atom indices
Start = dict[str, float]  # torsion name -> degrees


class Molecule(Energy):
    """A molecule: the reduced energy of an OpenMM ``System`` and the structure around it.

    Arguments:
        backend: evaluates u(x): :class:`~mlmol.systems.forcefield.TorchEnergy` (native, batched) or
            :class:`~mlmol.systems.openmm_bridge.OpenMMEnergy` (OpenMM worker processes).
        topology: the ``openmm.app.Topology``, atoms in the order of the coordinates.
        positions: a structure ``[3N]`` (nm), where MD starts.
        torsions: named torsions (four atom indices), usable in ``states``, ``starts`` and plots.
        states: two state specs over the torsions (radians), e.g. ``("phi > 0", "phi < 0")``, whose ΔF is reported.
        starts: torsion values (degrees) where training MD starts, e.g. ``[{"phi": -80, "psi": 150}]``.
        name: a short name.
        added_hydrogens: how many hydrogens were added to the structure read (by OpenMM's Modeller).
        fallback: why the OpenMM bridge evaluates the energy where the native torch force field was
            asked for first (``backend="auto"``), else None.

    Coordinates are flat ``[*batch, 3N]`` in nm; :meth:`energy` gives ``[*batch]`` in units of kT
    at ``temperature`` (kelvin).

    Example:
        >>> ala2 = mlmol.systems.alanine_dipeptide()  # doctest: +SKIP
        >>> ala2.energy(torch.tensor(ala2.positions)[None])  # doctest: +SKIP
    """

    profile_coords = ()  # Cartesian profiles mean nothing for a molecule; the report shows Ramachandran

    def __init__(self, backend: TorchEnergy | OpenMMEnergy, topology: app.Topology, positions: np.ndarray, torsions: Torsions,
                 states: tuple[str, str] | None = None, starts: list[Start] | None = None, name: str = "molecule",
                 added_hydrogens: int = 0, fallback: str | None = None):
        super().__init__(backend.dim, backend.kT)
        self.backend = backend
        self.name = name
        self.topology = topology
        self.positions = np.asarray(positions, dtype=np.float64).reshape(-1)
        if self.positions.shape != (self.dim,):
            raise MlmolError(f"{name}: positions have {self.positions.size} values; the system has {self.dim}")
        self.torsions: Torsions = dict(torsions)
        self.variables = {key: partial(dihedral_of, atoms=atoms) for key, atoms in self.torsions.items()}
        self.states = states
        self.starts = None if starts is None else [dict(start) for start in starts]
        self.added_hydrogens = int(added_hydrogens)
        self.fallback = fallback

    @property
    def temperature(self) -> float:
        """Kelvin."""
        return self.backend.temperature

    @property
    def masses(self) -> np.ndarray:
        """Atomic masses ``[N]`` (amu, g/mol) from the OpenMM system."""
        from openmm import unit

        return np.array([self.system.getParticleMass(i).value_in_unit(unit.dalton)
                         for i in range(self.system.getNumParticles())])

    def evaluated_in(self, precision: torch.dtype | None, compile: bool) -> Molecule:
        """This molecule on a torch backend evaluating in ``precision`` (None: the input's dtype), through
        ``torch.compile`` or not (:meth:`TorchEnergy.evaluated_in`); the original is unchanged."""
        if not isinstance(self.backend, TorchEnergy):
            raise MlmolError(f"{self.name} runs on the OpenMM bridge; the batched engine needs the torch force field "
                             "(it supports every force of the system only where backend='torch' works)")
        clone = copy.copy(self)
        clone.__dict__["_modules"] = dict(self._modules)
        clone.backend = self.backend.evaluated_in(precision, compile)
        return clone

    def notices(self) -> list[str]:
        """What the user should be told about how the molecule was built: hydrogens added to the structure
        read, the OpenMM bridge standing in for the torch force field."""
        told = []
        if self.added_hydrogens:
            told.append(f"added {self.added_hydrogens} hydrogens to {self.name} (OpenMM Modeller); "
                        "--no-add-hydrogens refuses a PDB without them instead")
        if self.fallback:
            told.append(f"{self.name} runs on the OpenMM bridge, one configuration at a time: {self.fallback}")
        return told

    def repartitioned_masses(self, hydrogen_mass: float = 3.024) -> np.ndarray:
        """Masses ``[N]`` (amu) with hydrogen mass repartitioning: each hydrogen weighs ``hydrogen_mass``
        and the heavy atom bonded to it is lighter by as much; the total mass and the configurational
        Boltzmann distribution are unchanged, and the fastest vibrations slow down (2 fs and more)."""
        masses = self.masses
        hydrogens = {a.index for a in self.topology.atoms() if a.element is not None and a.element.symbol == "H"}
        for a, b in self.topology.bonds():
            for h, heavy in ((a.index, b.index), (b.index, a.index)):
                if h in hydrogens and heavy not in hydrogens:
                    masses[heavy] -= hydrogen_mass - masses[h]
                    masses[h] = hydrogen_mass
        if (masses <= 0).any():
            raise MlmolError(f"{self.name}: hydrogen mass {hydrogen_mass} amu leaves an atom without mass; use less")
        return masses

    @property
    def system(self):
        """The ``openmm.System`` (no cutoff, no constraints)."""
        return self.backend.system

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy ``[*batch]`` (kT) of ``x`` ``[*batch, 3N]`` (nm), by the backend."""
        return self.backend.energy(x)

    def close(self) -> None:
        """Stop the backend's worker processes (the OpenMM bridge); nothing for the torch backend."""
        self.backend.close()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, torsions={list(self.torsions)}, states={self.states}"


