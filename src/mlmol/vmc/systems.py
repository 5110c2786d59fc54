"""Atoms and small molecules for variational Monte Carlo: nuclei (charges, positions in bohr)
and the numbers of spin-up and spin-down electrons. Energies are in hartree.

Electrons are ordered spin-up first: configurations have shape ``[batch, n_up + n_down, 3]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import MlmolError

ELEMENTS = {"H": 1, "He": 2, "Li": 3, "Be": 4, "B": 5, "C": 6, "N": 7, "O": 8, "F": 9, "Ne": 10}

#: Exact (non-relativistic, fixed-nucleus) ground-state energies in hartree, for scoring.
EXACT_ENERGIES = {"H": -0.5, "He": -2.903724, "H2": -1.174475, "Li": -7.478060, "LiH": -8.070548}


@dataclass(frozen=True)
class ElectronicSystem:
    """Nuclear ``charges`` (e), nuclear ``positions`` (bohr) and electrons per spin.

    Arguments:
        charges: the nuclear charges Z ``[M]`` (e), positive.
        positions: the nuclear positions ``[M, 3]`` (bohr), at least 10⁻³ bohr apart.
        n_up: spin-up electrons.
        n_down: spin-down electrons.
        name: a short name.

    Example:
        >>> h2 = ElectronicSystem((1.0, 1.0), ((0.0, 0.0, -0.7), (0.0, 0.0, 0.7)), 1, 1, "H2")
        >>> h2.n_electrons, round(h2.nuclear_repulsion(), 6)
        (2, 0.714286)
    """

    charges: tuple[float, ...]
    positions: tuple[tuple[float, float, float], ...]
    n_up: int
    n_down: int
    name: str = "molecule"

    def __post_init__(self) -> None:
        if len(self.charges) != len(self.positions) or not self.charges:
            raise MlmolError(f"{self.name}: give one position (x, y, z in bohr) per nuclear charge; got "
                             f"{len(self.charges)} charges and {len(self.positions)} positions")
        if any(len(p) != 3 for p in self.positions):
            raise MlmolError(f"{self.name}: nuclear positions must be (x, y, z) triples in bohr")
        if any(z <= 0 for z in self.charges):
            raise MlmolError(f"{self.name}: nuclear charges must be positive, got {self.charges}")
        if self.n_up < 0 or self.n_down < 0 or self.n_up + self.n_down == 0:
            raise MlmolError(f"{self.name}: need at least one electron and no negative spin counts "
                             f"(n_up={self.n_up}, n_down={self.n_down})")
        for i in range(len(self.positions)):
            for j in range(i):
                if math.dist(self.positions[i], self.positions[j]) < 1e-3:
                    raise MlmolError(f"{self.name}: nuclei {j} and {i} overlap (distance "
                                     f"{math.dist(self.positions[i], self.positions[j]):.2e} bohr); "
                                     "place them apart or merge their charges")

    @property
    def n_electrons(self) -> int:
        """n_up + n_down."""
        return self.n_up + self.n_down

    def nuclear_repulsion(self) -> float:
        """Σ_{I<J} Z_I Z_J / R_IJ in hartree."""
        return sum(self.charges[i] * self.charges[j] / math.dist(self.positions[i], self.positions[j])
                   for i in range(len(self.charges)) for j in range(i))

    def tensors(self, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """Charges ``[M]`` (e) and positions ``[M, 3]`` (bohr) as tensors of ``dtype``."""
        return torch.tensor(self.charges, dtype=dtype), torch.tensor(self.positions, dtype=dtype)


def molecule(atoms: Sequence[tuple[str | float, Sequence[float]]], charge: int = 0, spin: int | None = None,
             name: str = "molecule") -> ElectronicSystem:
    """A molecule from (element or charge, (x, y, z) in bohr) pairs, its total ``charge`` and
    ``spin`` = n_up − n_down (default: 0 or 1, the lowest the electron count allows).

    Example:
        >>> lih = molecule([("Li", (0, 0, 0)), ("H", (0, 0, 3.015))], name="LiH")
        >>> lih.n_up, lih.n_down
        (2, 2)
    """
    charges = []
    for symbol, _ in atoms:
        if isinstance(symbol, str):
            if symbol not in ELEMENTS:
                raise MlmolError(f"unknown element {symbol!r}; known: {', '.join(ELEMENTS)} (or give the charge)")
            charges.append(float(ELEMENTS[symbol]))
        else:
            charges.append(float(symbol))
    n = round(sum(charges)) - charge
    if n <= 0:
        raise MlmolError(f"{name}: charge {charge} leaves {n} electrons")
    spin = n % 2 if spin is None else spin
    if (n + spin) % 2 or abs(spin) > n:
        raise MlmolError(f"{name}: {n} electrons cannot have spin n_up − n_down = {spin}; with {n} electrons the "
                         f"spin must be {'odd' if n % 2 else 'even'} and at most {n}")
    return ElectronicSystem(tuple(charges), tuple(tuple(float(c) for c in p) for _, p in atoms), (n + spin) // 2,
                    (n - spin) // 2, name)


def get(name: str) -> ElectronicSystem:
    """A built-in system: H, He, Li (atoms at the origin), H2 (R = 1.4 bohr), LiH (R = 3.015 bohr)."""
    builders = {
        "H": lambda: molecule([("H", (0, 0, 0))], name="H"),
        "He": lambda: molecule([("He", (0, 0, 0))], name="He"),
        "Li": lambda: molecule([("Li", (0, 0, 0))], name="Li"),
        "H2": lambda: molecule([("H", (0, 0, -0.7)), ("H", (0, 0, 0.7))], name="H2"),
        "LiH": lambda: molecule([("Li", (0, 0, 0)), ("H", (0, 0, 3.015))], name="LiH"),
    }
    if name not in builders:
        raise MlmolError(f"unknown system {name!r}; built in: {', '.join(builders)}")
    return builders[name]()
