"""Peptides from their sequence: ideal geometry (PeptideBuilder, Engh & Huber), L amino acids, optional
acetyl/N-methylamide caps, hydrogens for the chosen force field (OpenMM's Modeller), minimised.

Example:
    >>> topology, positions = build_peptide("AAA")  # doctest: +SKIP   Ace-Ala3-Nme, 42 atoms
    >>> write_peptide("GYDPETGTWG", "chignolin.pdb", caps="none")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data import atomic_write
from ..errors import MlmolError
from ..geometry import dihedral_from_points
from .molecules import chiral_centres, handedness

if TYPE_CHECKING:
    from openmm import app

THREE_LETTER = {"A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU", "G": "GLY",
                "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE", "P": "PRO", "S": "SER",
                "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL"}
CONFORMATIONS = {"extended": (-120.0, 140.0), "ppii": (-75.0, 145.0), "helix": (-57.0, -47.0)}  # (φ, ψ) degrees
CAPS = ("ace-nme", "none")
CLASH = 0.2  # nm: the closest two heavy atoms more than three bonds apart may come after minimisation


def check_sequence(sequence: str) -> str:
    """The sequence in one-letter codes, upper case, or an error that names the first bad letter.

    Example:
        >>> check_sequence(" aaa ".upper())
        'AAA'
    """
    sequence = sequence.strip()
    if not sequence:
        raise MlmolError("the sequence is empty: give one-letter amino-acid codes, e.g. AAA or GYDPETGTWG")
    for position, letter in enumerate(sequence, 1):
        if letter in THREE_LETTER:
            continue
        if letter.upper() in THREE_LETTER:
            raise MlmolError(f"residue {position} ({letter!r}) is lower case, which reads as a D-amino acid; mlmol builds "
                             "L amino acids only: write the sequence in upper case")
        raise MlmolError(f"residue {position} ({letter!r}) is not one of the 20 standard amino acids "
                         f"({''.join(sorted(THREE_LETTER))}); write the sequence in one-letter codes")
    return sequence


@contextmanager
def _seeded(seed: int = 0):
    """Python's global random stream seeded for the block and restored after it, so that the same
    sequence always gives the same structure."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def place(a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle: float, torsion: float) -> np.ndarray:
    """Point d bonded to c with |cd| = ``bond``, angle b-c-d and torsion a-b-c-d in degrees (NeRF).

    Example:
        >>> d = place(np.array([0.0, 1, 0]), np.zeros(3), np.array([1.0, 0, 0]), 1.0, 90.0, 180.0)
        >>> np.round(d, 6).tolist()
        [1.0, -1.0, 0.0]
    """
    angle, torsion = math.radians(angle), math.radians(torsion)
    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    d = np.array([-bond * math.cos(angle), bond * math.sin(angle) * math.cos(torsion),
                  bond * math.sin(angle) * math.sin(torsion)])
    return c + d[0] * bc + d[1] * m + d[2] * n


def heavy_atoms(sequence: str, caps: str = "ace-nme", conformation: str = "extended") -> list[tuple[str, str, np.ndarray]]:
    """(residue name, atom name, position Å) of every heavy atom, residue by residue: the chain from
    PeptideBuilder at the ``conformation``'s (φ, ψ), trans peptide bonds, with ACE and NME caps placed on
    the same geometry (C–N 1.329 Å, C–N–Cα 121.7°, ω = 180°) or, without caps, the C-terminal OXT."""
    import PeptideBuilder

    if caps not in CAPS:
        raise MlmolError(f"unknown caps {caps!r}; choose {' or '.join(CAPS)}")
    if conformation not in CONFORMATIONS:
        raise MlmolError(f"unknown conformation {conformation!r}; choose {', '.join(CONFORMATIONS)}")
    phi, psi = CONFORMATIONS[check_sequence(sequence) and conformation]
    with _seeded():  # PeptideBuilder draws some side-chain rotamers from Python's random
        structure = PeptideBuilder.make_structure(sequence, [phi] * (len(sequence) - 1), [psi] * (len(sequence) - 1))
    if caps == "none":
        PeptideBuilder.add_terminal_OXT(structure)
    residues = [[(r.get_resname(), a.get_id(), np.asarray(a.coord, dtype=float)) for a in r if a.element != "H"]
                for r in structure.get_residues()]
    atoms = [atom for residue in residues for atom in residue]
    if caps == "none":
        return atoms
    first = {name: xyz for _, name, xyz in residues[0]}
    carbonyl = place(first["C"], first["CA"], first["N"], 1.329, 121.7, phi)
    ace = [("ACE", "CH3", place(first["CA"], first["N"], carbonyl, 1.52, 116.2, 180.0)), ("ACE", "C", carbonyl),
           ("ACE", "O", place(first["CA"], first["N"], carbonyl, 1.231, 122.5, 0.0))]
    last = {name: xyz for _, name, xyz in residues[-1]}
    backbone = (torch.as_tensor(last[k]) for k in ("N", "CA", "C", "O"))
    last_psi = math.degrees(dihedral_from_points(*backbone)) - 180.0  # N(next) is trans to O
    nitrogen = place(last["N"], last["CA"], last["C"], 1.329, 116.2, last_psi)
    nme = [("NME", "N", nitrogen), ("NME", "C", place(last["CA"], last["C"], nitrogen, 1.458, 121.7, 180.0))]
    return ace + atoms + nme


def build_peptide(sequence: str, caps: str = "ace-nme", forcefield: Sequence[str] = ("amber14-all.xml",),
                  conformation: str = "extended") -> tuple[app.Topology, np.ndarray, float]:
    """A peptide ready for :func:`~mlmol.systems.molecules.from_pdb`: topology, positions ``[N, 3]`` (nm)
    and its minimised vacuum energy (kJ/mol).

    Heavy atoms from :func:`heavy_atoms`; hydrogens for ``forcefield`` at pH 7 (OpenMM's Modeller; free
    termini charged without caps); minimised in vacuum without constraints. Raises :class:`MlmolError`
    for a bad sequence, a residue the force field lacks, a Cα of the wrong hand or a clash that
    minimisation leaves (two heavy atoms more than three bonds apart within ``CLASH`` nm).

    Arguments:
        sequence: one-letter codes, N to C terminus, e.g. ``"AAA"`` (with caps: Ace-Ala3-Nme).
        caps: ``"ace-nme"`` (acetyl and N-methylamide) or ``"none"`` (charged termini).
        forcefield: OpenMM force-field files whose hydrogens are added.
        conformation: the starting backbone, ``extended``, ``ppii`` or ``helix``.
    """
    import openmm
    from openmm import app, unit

    atoms = heavy_atoms(sequence, caps, conformation)
    topology = app.Topology()
    chain, residue, previous = topology.addChain(), None, None
    for residue_name, atom_name, _ in atoms:
        if residue is None or residue.name != residue_name or atom_name in [a.name for a in residue.atoms()]:
            residue = topology.addResidue(residue_name, chain)
        topology.addAtom(atom_name, app.Element.getBySymbol("C" if atom_name == "CH3" else atom_name[0]), residue)
        previous = residue
    del previous
    topology.createStandardBonds()
    positions = np.array([xyz for _, _, xyz in atoms]) * 0.1
    try:
        field = app.ForceField(*forcefield)
        modeller = app.Modeller(topology, positions * unit.nanometer)
        with _seeded():  # Modeller nudges some hydrogens by random displacements, then relaxes them
            modeller.addHydrogens(field, platform=openmm.Platform.getPlatformByName("Reference"))  # in a fixed order
        system = field.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff, constraints=None)
    except (ValueError, KeyError, OSError) as error:
        raise MlmolError(f"the force field {', '.join(forcefield)} cannot build {sequence}: {error}") from None
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0, 0)
    state = context.getState(getPositions=True, getEnergy=True)
    x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    _check_structure(modeller.topology, x, energy, sequence)
    return modeller.topology, x, energy


def _check_structure(topology: app.Topology, x: np.ndarray, energy: float, sequence: str) -> None:
    """L Cα everywhere, a finite energy and no heavy-atom clash, else an error naming the atoms."""
    centres = chiral_centres(topology)
    if centres:
        hand = handedness(torch.as_tensor(x.reshape(1, -1)), centres)[0]
        if (hand < 0).any():
            residue = list(topology.atoms())[centres[int((hand < 0).nonzero()[0, 0])][1]].residue
            raise MlmolError(f"residue {residue.name}{residue.index + 1} of {sequence} came out D after minimisation; "
                             "try another --conformation")
    if not math.isfinite(energy):
        raise MlmolError(f"{sequence} has a non-finite energy after minimisation; try another --conformation")
    atoms = list(topology.atoms())
    heavy = [a.index for a in atoms if a.element is not None and a.element.symbol != "H"]
    neighbours: dict[int, set[int]] = {a.index: set() for a in atoms}
    for a, b in topology.bonds():
        neighbours[a.index].add(b.index)
        neighbours[b.index].add(a.index)
    near = {i: {i} for i in heavy}  # within three bonds
    for i in heavy:
        for _ in range(3):
            near[i] = near[i] | {k for j in near[i] for k in neighbours[j]}
    distances = np.linalg.norm(x[heavy][:, None] - x[heavy][None], axis=-1)
    for a, i in enumerate(heavy):
        for b in np.nonzero(distances[a] < CLASH)[0]:
            j = heavy[b]
            if j not in near[i]:
                first, second = atoms[i], atoms[j]
                raise MlmolError(f"{sequence} has a clash after minimisation: {first.residue.name}{first.residue.index + 1} "
                                 f"{first.name} and {second.residue.name}{second.residue.index + 1} {second.name} are "
                                 f"{10 * distances[a, b]:.2f} Å apart; try another --conformation")


def write_peptide(sequence: str, out: str | Path, caps: str = "ace-nme", forcefield: Sequence[str] = ("amber14-all.xml",),
                  conformation: str = "extended") -> tuple[Path, int, float]:
    """Build (:func:`build_peptide`) and write a PDB atomically; returns the path, the atom count and the
    minimised vacuum energy (kJ/mol)."""
    import io

    from openmm import app

    out = Path(out)
    if out.suffix.lower() != ".pdb":
        raise MlmolError(f"{out} does not end in .pdb; mlmol build writes a PDB file")
    topology, x, energy = build_peptide(sequence, caps, forcefield, conformation)
    text = io.StringIO()
    app.PDBFile.writeFile(topology, x * 10.0, text, keepIds=False)  # Å
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, text.getvalue())
    return out, topology.getNumAtoms(), energy
