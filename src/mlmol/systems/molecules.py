"""Molecules through OpenMM: any PDB with OpenMM force-field files, and alanine dipeptide."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import MlmolError
from ..geometry import dihedral
from .forcefield import TorchEnergy, UnsupportedForce
from .molecule import Molecule, Start
from .openmm_bridge import OpenMMEnergy, require_openmm

if TYPE_CHECKING:
    from openmm import app

DATA = Path(__file__).with_name("data")
ALANINE_DIPEPTIDE_PDB = DATA / "alanine-dipeptide.pdb"
IMPLICIT_SOLVENT = {"obc1": "implicit/obc1.xml", "obc2": "implicit/obc2.xml", "gbn": "implicit/gbn.xml",
                    "gbn2": "implicit/gbn2.xml", "hct": "implicit/hct.xml"}


def read_pdb(path: str | Path) -> app.PDBFile:
    """An ``openmm.app.PDBFile`` with finite coordinates, or a clear error naming the file."""
    require_openmm()
    from openmm import app

    path = Path(path)
    if not path.is_file():
        raise MlmolError(f"PDB file {path} does not exist")
    try:
        records = [line[:6].strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError as error:
        raise MlmolError(f"cannot read PDB file {path}: {error}") from None
    if not {"ATOM", "HETATM"} & set(records):
        raise MlmolError(f"{path} is not a PDB file: it has no ATOM or HETATM records")
    try:
        pdb = app.PDBFile(str(path))
    except Exception as error:
        raise MlmolError(f"cannot read PDB file {path}: {type(error).__name__}: {error}") from None
    xyz = np.array(pdb.positions.value_in_unit(pdb.positions.unit))
    if pdb.topology.getNumAtoms() == 0:
        raise MlmolError(f"PDB file {path} has no atoms")
    if not np.all(np.isfinite(xyz)):
        bad = int(np.flatnonzero(~np.isfinite(xyz).all(-1))[0])
        raise MlmolError(f"PDB file {path} has non-finite coordinates (first at atom {bad + 1})")
    return pdb


BACKENDS = ("auto", "torch", "openmm")
def from_pdb(path: str | Path, forcefield: Sequence[str] = ("amber14-all.xml",), implicit_solvent: str | None = None,
             temperature: float = 300.0, add_hydrogens: bool = True, platform: str = "auto", workers: int = 1,
             name: str | None = None, backend: str = "auto", compile: bool = False,
             states: tuple[str, str] | None = None, starts: list[Start] | None = None) -> Molecule:
    """The reduced energy of the molecule in ``path`` (no cutoff, no constraints).

    ``forcefield`` lists OpenMM force-field XML files; ``implicit_solvent`` is one of
    obc1, obc2, gbn, gbn2, hct (OpenMM's ``implicit/*.xml``) or an XML file. Missing
    hydrogens are added with OpenMM's Modeller (``add_hydrogens=False`` refuses instead).
    Coordinates are flat nm in the atom order of ``.topology``; ``.positions`` [3N] holds the
    PDB's (possibly completed) structure. The backbone torsions are named (``phi``/``psi``, or
    ``phi1``, ``psi1``, ... for several residues); ``states`` defaults to the φ basins
    ``("phi > 0", "phi < 0")`` for a capped amino acid.

    ``backend``: "torch" evaluates batches natively (:class:`~mlmol.systems.forcefield.TorchEnergy`);
    "openmm" calls OpenMM through worker processes (:class:`OpenMMEnergy`; ``platform`` and
    ``workers`` apply); "auto" (default) is torch when it supports every force of the system,
    else openmm. ``compile=True`` runs the torch force field through ``torch.compile`` (several times faster
    on large batches after 20-60 s of compilation; see docs/molecules.md).
    """
    from openmm import app

    if backend not in BACKENDS:
        raise MlmolError(f"unknown energy backend {backend!r}; choose {', '.join(BACKENDS)}")

    pdb = read_pdb(path)
    files = list(forcefield)
    if implicit_solvent is not None:
        files.append(IMPLICIT_SOLVENT.get(implicit_solvent, implicit_solvent))
    try:
        ff = app.ForceField(*files)
    except Exception as error:
        raise MlmolError(f"cannot load force field {files}: {error}. OpenMM ships e.g. amber14-all.xml, "
                         "amber99sbildn.xml, charmm36.xml") from None
    topology, positions, added = pdb.topology, pdb.positions, 0
    try:
        system = ff.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    except ValueError as error:
        message = str(error).split("  For more information")[0]
        if "H atoms" not in message:
            raise MlmolError(f"{path}: {message} Residues the force field {files} does not know need their "
                             "own force-field XML (pass it in forcefield=...)") from None
        if not add_hydrogens:
            raise MlmolError(f"{path} lacks hydrogens ({message}); let mlmol add them with OpenMM's Modeller "
                             "(drop --no-add-hydrogens; in Python add_hydrogens=True) or add them with pdbfixer") from None
        modeller = app.Modeller(topology, positions)
        try:
            modeller.addHydrogens(ff)
            system = ff.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff, constraints=None,
                                     rigidWater=False)
        except Exception:
            raise MlmolError(f"{path}: {message} Adding hydrogens did not help: residues the force field "
                             f"{files} does not know need their own force-field XML, and missing heavy atoms "
                             "can be added with pdbfixer") from None
        added = modeller.topology.getNumAtoms() - topology.getNumAtoms()
        topology, positions = modeller.topology, modeller.positions
    name = name or Path(path).stem
    energy, fallback = None, None
    if backend != "openmm":
        try:
            energy = TorchEnergy(system, topology, temperature=temperature, name=name, compile=compile)
        except UnsupportedForce as error:
            if backend == "torch":
                raise
            fallback = str(error)
    if energy is None:
        energy = OpenMMEnergy(system, topology, temperature=temperature, platform=platform, workers=workers,
                              name=name)
    torsions = backbone_torsions(topology)
    if states is None and "phi" in torsions:  # a capped amino acid: ΔF between the φ basins, as for alanine dipeptide
        states = ("phi > 0", "phi < 0")
    return Molecule(energy, topology, np.array(positions.value_in_unit(positions.unit)), torsions, states=states,
                    starts=starts, name=name, added_hydrogens=added, fallback=fallback)


def _residue_atoms(chain: app.Chain) -> list[dict[str, int]]:
    """Atom indices by atom name, one dict per residue of ``chain`` in order."""
    return [{a.name: a.index for a in r.atoms()} for r in chain.residues()]


def _backbone(topology: app.Topology) -> list[tuple[int, str, tuple[int, ...], tuple[int, ...]]]:
    """(number in its chain from 1, residue name, φ atoms, ψ atoms) of every residue with both torsions."""
    found = []
    for chain in topology.chains():
        residues, atoms = list(chain.residues()), _residue_atoms(chain)
        for i in range(1, len(atoms) - 1):
            before, here, after = atoms[i - 1], atoms[i], atoms[i + 1]
            if "C" in before and {"N", "CA", "C"} <= set(here) and "N" in after:
                found.append((i + 1, residues[i].name, (before["C"], here["N"], here["CA"], here["C"]),
                              (here["N"], here["CA"], here["C"], after["N"])))
    return found


def backbone_torsions(topology: app.Topology) -> dict[str, tuple[int, int, int, int]]:
    """Backbone φ (C−N−CA−C) and ψ (N−CA−C−N) of every residue that has both, by atom index.

    Named ``phi``/``psi`` when one residue has them (a capped dipeptide), else ``phi1``,
    ``psi1``, ... by residue number in the chain (from 1).
    """
    found = _backbone(topology)
    if len(found) == 1:
        return {"phi": found[0][2], "psi": found[0][3]}
    return {f"{kind}{number}": atoms for number, _, phi, psi in found for kind, atoms in (("phi", phi), ("psi", psi))}


def torsion_residues(topology: app.Topology) -> dict[str, str]:
    """The residue (three-letter name, e.g. ``"PRO"``) of each torsion of :func:`backbone_torsions`, same keys."""
    found = _backbone(topology)
    if len(found) == 1:
        return {"phi": found[0][1], "psi": found[0][1]}
    return {f"{kind}{number}": name for number, name, _, _ in found for kind in ("phi", "psi")}


def peptide_bonds(topology: app.Topology) -> list[tuple[int, int, int, int]]:
    """ω torsions (X−C−N−Y) of every peptide bond C(i)−N(i+1), by atom index; X and Y are the
    heavy atoms bonded to C and N along the chain (CA, or the methyl C of ACE/NME caps)."""
    heavy: dict[int, list[int]] = {}
    for a, b in topology.bonds():
        for one, other in ((a, b), (b, a)):
            if other.element is not None and other.element.symbol != "H":
                heavy.setdefault(one.index, []).append(other.index)
    names = {a.index: a.name for a in topology.atoms()}
    found = []
    for chain in topology.chains():
        residues = _residue_atoms(chain)
        for before, after in zip(residues[:-1], residues[1:]):
            c, n = before.get("C"), after.get("N")
            if c is None or n is None or n not in heavy.get(c, []):
                continue
            x = [i for i in heavy[c] if i != n and not names[i].startswith("O")]
            y = [i for i in heavy.get(n, []) if i != c]
            if x and y:
                found.append((x[0], c, n, y[0]))
    return found


def alanine_dipeptide(implicit_solvent: bool = False, temperature: float = 300.0, platform: str = "auto",
                      workers: int = 1, backend: str = "auto") -> Molecule:
    """Capped alanine (Ace-Ala-Nme, 22 atoms) with amber99sbildn (+ amber99_obc.xml implicit solvent).

    Vacuum: no cutoff, no constraints; 300 K by default. The PDB ships with mlmol (built by
    tools/build_alanine_dipeptide.py from ideal geometry and minimised).
    """
    molecule = from_pdb(ALANINE_DIPEPTIDE_PDB, forcefield=("amber99sbildn.xml",),
                        implicit_solvent="amber99_obc.xml" if implicit_solvent else None, temperature=temperature,
                        add_hydrogens=False, platform=platform, workers=workers, backend=backend,
                        name="alanine-dipeptide" + ("-implicit" if implicit_solvent else ""),
                        states=("phi > 0", "phi < 0"),  # ΔF(φ > 0 − φ < 0), radians
                        # training MD starts in β, αL and C7ax: one plain trajectory never reaches φ > 0
                        starts=[{"phi": -80.0, "psi": 150.0}, {"phi": 60.0, "psi": 40.0}, {"phi": 70.0, "psi": -70.0}])
    if molecule.torsions != {"phi": PHI, "psi": PSI}:
        raise MlmolError(f"the shipped alanine dipeptide PDB gave backbone torsions {molecule.torsions}; "
                         "reinstall mlmol")
    return molecule


PHI, PSI = (4, 6, 8, 10), (6, 8, 10, 16)  # backbone torsions of the shipped alanine dipeptide


def chiral_centres(topology: app.Topology) -> list[tuple[int, int, int, int]]:
    """(N, CA, C, CB) atom indices of every residue that has all four (the Cα stereocentres)."""
    centres = []
    for residue in topology.residues():
        names = {atom.name: atom.index for atom in residue.atoms()}
        if all(k in names for k in ("N", "CA", "C", "CB")):
            centres.append((names["N"], names["CA"], names["C"], names["CB"]))
    return centres


def handedness(x: torch.Tensor, centres: list[tuple[int, int, int, int]]) -> torch.Tensor:
    """Sign of (N − CA)·[(C − CA) × (CB − CA)] per centre, ``[*batch, n_centres]``; +1 is L for amino acids."""
    p = x.reshape(*x.shape[:-1], -1, 3)
    idx = torch.as_tensor(centres, dtype=torch.long)
    n, ca, c, cb = (p[..., idx[:, k], :] for k in range(4))
    return torch.sign((torch.cross(c - ca, cb - ca, dim=-1) * (n - ca)).sum(-1))


def wrong_handed_fraction(x: torch.Tensor, reference: torch.Tensor, centres: list[tuple[int, int, int, int]]) -> float:
    """Fraction of configurations with at least one Cα of the other hand than in ``reference``."""
    if not centres:
        return 0.0
    flipped = handedness(x, centres) != handedness(reference, centres)
    return float(flipped.any(-1).double().mean())


MOLECULES: dict[str, tuple[Callable[..., Molecule], str]] = {  # name -> (factory, one line for listings)
    "alanine-dipeptide": (partial(alanine_dipeptide, implicit_solvent=False),
                          "Ace-Ala-Nme, amber99sbildn, vacuum, 300 K"),
    "alanine-dipeptide-implicit": (partial(alanine_dipeptide, implicit_solvent=True),
                                   "Ace-Ala-Nme, amber99sbildn + amber99_obc.xml, 300 K"),
}


def molecule(name: str, **kwargs) -> Molecule:
    """A built-in molecule by name (see ``MOLECULES``); ``kwargs`` go to its factory
    (``temperature``, ``backend``, ``workers``, ``platform``)."""
    if name not in MOLECULES:
        raise MlmolError(f"unknown molecule {name!r}. Known molecules: {', '.join(MOLECULES)}; "
                         "for your own use --pdb FILE")
    return MOLECULES[name][0](**kwargs)


__all__ = [
    "ALANINE_DIPEPTIDE_PDB",
    "MOLECULES",
    "Molecule",
    "alanine_dipeptide",
    "backbone_torsions",
    "chiral_centres",
    "dihedral",
    "from_pdb",
    "handedness",
    "molecule",
    "peptide_bonds",
    "read_pdb",
    "wrong_handed_fraction",
]
