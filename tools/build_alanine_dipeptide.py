"""Build the shipped alanine dipeptide (Ace-Ala-Nme) PDB from ideal geometry, without downloads.

    python tools/build_alanine_dipeptide.py

Heavy atoms are placed from standard peptide bond lengths and angles (Engh & Huber) at
φ = −80°, ψ = 75° (C7eq), with L chirality checked; OpenMM's Modeller adds the hydrogens
for amber99sbildn and the structure is minimised in vacuum. Writes
src/mlmol/systems/data/alanine-dipeptide.pdb.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit

from mlmol.systems.peptides import place

OUT = Path(__file__).resolve().parent.parent / "src" / "mlmol" / "systems" / "data" / "alanine-dipeptide.pdb"


def heavy_atoms(phi: float = -80.0, psi: float = 75.0) -> list[tuple[str, str, np.ndarray]]:
    ch3 = np.zeros(3)
    c0 = np.array([1.52, 0.0, 0.0])
    n1 = place(np.array([0.0, 1.0, 0.0]), ch3, c0, 1.329, 116.2, 180.0)
    o0 = place(n1, ch3, c0, 1.231, 120.5, 180.0)
    ca = place(ch3, c0, n1, 1.458, 121.7, 180.0)
    c1 = place(c0, n1, ca, 1.525, 111.0, phi)
    cb = place(c0, n1, ca, 1.530, 110.5, phi + 120.0)
    if np.dot(n1 - ca, np.cross(c1 - ca, cb - ca)) < 0:  # L-alanine: (N−CA)·[(C−CA)×(CB−CA)] > 0
        cb = place(c0, n1, ca, 1.530, 110.5, phi - 120.0)
    assert np.dot(n1 - ca, np.cross(c1 - ca, cb - ca)) > 0
    o1 = place(n1, ca, c1, 1.231, 120.5, psi + 180.0)
    n2 = place(n1, ca, c1, 1.329, 116.2, psi)
    c2 = place(ca, c1, n2, 1.458, 121.7, 180.0)
    return [("ACE", "CH3", ch3), ("ACE", "C", c0), ("ACE", "O", o0),
            ("ALA", "N", n1), ("ALA", "CA", ca), ("ALA", "C", c1), ("ALA", "O", o1), ("ALA", "CB", cb),
            ("NME", "N", n2), ("NME", "C", c2)]


def main() -> None:
    topology = app.Topology()
    chain = topology.addChain()
    positions, residues = [], {}
    for res_name, atom_name, xyz in heavy_atoms():
        if res_name not in residues:
            residues[res_name] = topology.addResidue(res_name, chain)
        element = app.Element.getBySymbol(atom_name[0])
        topology.addAtom(atom_name, element, residues[res_name])
        positions.append(openmm.Vec3(*xyz) * 0.1)
    atoms = {(a.residue.name, a.name): a for a in topology.atoms()}
    for pair in [(("ACE", "CH3"), ("ACE", "C")), (("ACE", "C"), ("ACE", "O")), (("ACE", "C"), ("ALA", "N")),
                 (("ALA", "N"), ("ALA", "CA")), (("ALA", "CA"), ("ALA", "C")), (("ALA", "C"), ("ALA", "O")),
                 (("ALA", "CA"), ("ALA", "CB")), (("ALA", "C"), ("NME", "N")), (("NME", "N"), ("NME", "C"))]:
        topology.addBond(atoms[pair[0]], atoms[pair[1]])
    forcefield = app.ForceField("amber99sbildn.xml")
    modeller = app.Modeller(topology, positions * unit.nanometer)
    modeller.addHydrogens(forcefield)
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff, constraints=None)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 1e-3, 10_000)
    state = context.getState(getPositions=True, getEnergy=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w") as handle:
        app.PDBFile.writeFile(modeller.topology, state.getPositions(), handle, keepIds=False)
    print(f"wrote {OUT}: {modeller.topology.getNumAtoms()} atoms, "
          f"minimised energy {state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole):.2f} kJ/mol")


if __name__ == "__main__":
    main()
