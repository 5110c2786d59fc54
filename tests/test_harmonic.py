"""The harmonic approximation and the rigid torsions: what a molecular flow trained without data is
initialised from."""

import pytest
import torch

from mlmol import systems
from mlmol.errors import MlmolError
from mlmol.flows.molecular import rigid_torsions
from mlmol.samplers.harmonic import harmonic_samples, minimise


def test_harmonic_samples_of_a_gaussian_have_its_covariance_and_the_minimum_is_found():
    g = systems.Gaussian()
    x0 = minimise(g, torch.zeros(2))
    torch.testing.assert_close(x0, g.mean, atol=1e-6, rtol=0)
    x = harmonic_samples(g, x0, 200_000, torch.Generator().manual_seed(0), zero_modes=0)
    torch.testing.assert_close(torch.cov(x.T), torch.linalg.inv(g.precision), atol=0.01, rtol=0)
    with pytest.raises(MlmolError, match="not at a minimum"):
        harmonic_samples(systems.DoubleWell(), torch.zeros(2), 10, zero_modes=0)  # the barrier top is a saddle


def test_rigid_torsions_from_chemistry():
    # N-methylacetamide's heavy atoms C-C(=O)-N-C: the O's offset and the amide rotation are rigid
    assert rigid_torsions(["C", "C", "O", "N", "C"], [(0, 1), (1, 2), (1, 3), (3, 4)]) == [0, 1]
    # butane's heavy atoms: the central rotation is free
    assert rigid_torsions(["C"] * 4, [(0, 1), (1, 2), (2, 3)]) == []
    # cyclopentane: every torsion is about a ring bond
    ring = [(i, (i + 1) % 5) for i in range(5)]
    assert rigid_torsions(["C"] * 5, ring) == [0, 1]


@pytest.mark.openmm
def test_rigid_torsions_of_alanine_dipeptide_are_the_narrow_ones_of_md_data():
    """The set that MD data select by their circular spread (< 0.5 rad): ω, Hs offsets, the Cα handedness."""
    from mlmol.systems import molecules

    ala2 = molecules.molecule("alanine-dipeptide-implicit")
    bonds = [(a.index, b.index) for a, b in ala2.topology.bonds()]
    elements = [a.element.symbol for a in ala2.topology.atoms()]
    assert rigid_torsions(elements, bonds) == [0, 1, 3, 4, 5, 7, 8, 10, 11, 13, 14, 15, 17, 18]


@pytest.mark.openmm
def test_a_molecular_flow_without_data_starts_from_the_harmonic_scales():
    """Before any training, the flow of an energy-only run puts bonds and angles at their harmonic widths: its
    samples have finite energies and the right handedness, and the structure is likely under it."""
    from mlmol.config import make_config
    from mlmol.run import build_flow, build_system
    from mlmol.systems.molecules import chiral_centres, wrong_handed_fraction

    config = make_config("alanine-dipeptide-implicit", losses="ta")
    system = build_system(config)
    flow = build_flow(config, system, None)
    assert flow.spec["narrow"] == [0, 1, 3, 4, 5, 7, 8, 10, 11, 13, 14, 15, 17, 18]
    with torch.no_grad():
        x = flow.sample(500, generator=torch.Generator().manual_seed(0)).double()
        u = system.energy(x)
    assert bool(torch.isfinite(u).all())
    reference = torch.as_tensor(system.positions)
    assert wrong_handed_fraction(x, reference, chiral_centres(system.topology)) == 0.0
    # free torsions are uniform, so clashes are common; but the median energy is that of a molecule, not of a
    # structure with bonds off by their unit scale (which gives reduced energies of order 1e6)
    assert float(u.median()) < 1e3
    # the free torsions stay uniform although the harmonic samples hold them narrow: φ > 0 half the time
    phi = system.variables["phi"](x)
    assert 0.4 < float((phi > 0).double().mean()) < 0.6
