"""Wasserstein-2 distances against closed forms: shifts, Gaussians, the torus's wrap, importance weights,
the noise floor, and TICA finding a known slow coordinate."""

import math

import numpy as np
import pytest

pytest.importorskip("ot")

from mlmol import MlmolError
from mlmol.wasserstein import (
    backbone_angles,
    energy_w2,
    euclidean_w2,
    fit_tica,
    noise_floor,
    reference_halves,
    tica_features,
    torus_w2,
)


def test_a_shift_is_transported_by_its_length():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    shift = np.array([0.3, -0.4, 1.2])  # |shift| = 1.3
    assert euclidean_w2(x + shift, x) == pytest.approx(1.3, abs=1e-9)
    assert energy_w2(x[:, 0] + 2.5, x[:, 0]) == pytest.approx(2.5, abs=1e-9)
    assert euclidean_w2(x, x) == pytest.approx(0.0, abs=1e-9)


def test_one_dimensional_w2_of_gaussians_is_the_closed_form():
    """W2²(N(μ1, σ1²), N(μ2, σ2²)) = (μ1 − μ2)² + (σ1 − σ2)², here 0.25 + 0.25: W2 = 0.7071."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.0, 1.0, 200_000), rng.normal(0.5, 1.5, 200_000)
    assert energy_w2(a, b) == pytest.approx(math.sqrt(0.5), abs=0.01)


def test_importance_weights_move_the_generator_onto_the_target():
    """Samples of N(0, 1) weighted to N(1, 1) (log w = x − ½) match N(1, 1) samples: W2 near the
    two-sample noise, far below the unweighted distance 1."""
    rng = np.random.default_rng(2)
    x, target = rng.normal(0, 1, 4000), rng.normal(1, 1, 4000)
    weighted = energy_w2(x, target, log_weights=x - 0.5)
    assert energy_w2(x, target) == pytest.approx(1.0, abs=0.08)
    assert weighted < 0.15
    two_d = euclidean_w2(x[:1500, None], target[:1500, None], log_weights=x[:1500] - 0.5)
    assert two_d < 0.2  # the same through the general transport solver
    with pytest.raises(MlmolError, match="one per sample"):
        energy_w2(x, target, log_weights=x[:10])
    with pytest.raises(MlmolError, match="zero weight"):
        energy_w2(x[:3], target, log_weights=np.full(3, -np.inf))


def test_the_torus_cost_takes_the_short_way_round():
    a = np.array([[math.pi - 0.01, 0.0]])
    b = np.array([[-math.pi + 0.01, 0.0]])
    assert torus_w2(a, b) == pytest.approx(0.02, abs=1e-9)  # not 2π − 0.02
    rng = np.random.default_rng(3)
    angles = rng.uniform(-math.pi, math.pi, size=(200, 4))
    assert torus_w2(angles, angles + 2 * math.pi * rng.integers(-2, 3, size=angles.shape)) == pytest.approx(0, abs=1e-9)
    assert torus_w2(angles, angles + 0.05) == pytest.approx(0.05 * 2, abs=1e-9)  # √(4 × 0.05²)


def test_the_noise_floor_is_the_distance_between_disjoint_halves():
    rng = np.random.default_rng(4)
    reference = rng.normal(size=(2000, 2))
    floor = noise_floor(euclidean_w2, reference, 500, seed=0)
    assert 0 < floor < 0.3
    assert floor == noise_floor(euclidean_w2, reference, 500, seed=0)  # seeded
    with pytest.raises(MlmolError, match="needs 1001 reference samples in each half"):
        noise_floor(euclidean_w2, reference, 1001)
    with pytest.raises(MlmolError, match="subsample"):
        euclidean_w2(np.zeros((20_000, 1)), np.zeros((20_000, 1)))


def test_reference_halves_come_from_disjoint_chains_or_disjoint_times():
    """Frames stored frame-major over 4 chains: one half holds chains 0 and 1, the other 2 and 3, every frame
    once; one chain: the first and the second half of its time."""
    a, b = reference_halves(400, 4, np.random.default_rng(0))
    assert set(a % 4) == {0, 1} and set(b % 4) == {2, 3} and sorted(np.concatenate([a, b])) == list(range(400))
    a, b = reference_halves(400, 1, np.random.default_rng(0))
    assert a.max() < 200 <= b.min() and len(a) == len(b) == 200 and not (np.diff(a) > 0).all()  # shuffled


def test_tica_finds_the_slow_coordinate():
    """Two AR(1) processes, one slow (φ = 0.99) one fast (φ = 0.2), mixed by a rotation: the first TIC is
    the slow one (|correlation| > 0.95) and its autocorrelation at the lag is about 0.99^lag."""
    rng = np.random.default_rng(5)
    slow, fast = np.zeros(20_000), np.zeros(20_000)
    for t in range(1, 20_000):
        slow[t] = 0.99 * slow[t - 1] + rng.normal()
        fast[t] = 0.2 * fast[t - 1] + 5 * rng.normal()
    rotation = np.array([[0.6, -0.8], [0.8, 0.6]])
    features = np.stack([slow, fast], 1) @ rotation.T
    project = fit_tica([features[:10_000], features[10_000:]], lag=5, dim=1)
    tic = project(features)[:, 0]
    assert abs(np.corrcoef(tic, slow)[0, 1]) > 0.95
    with pytest.raises(MlmolError, match="longer than 50 frames"):
        fit_tica([features[:50]], lag=50)


def test_peptide_features_and_angles_have_the_field_s_shapes():
    openmm = pytest.importorskip("openmm")
    import mdtraj
    from openmm import app

    from mlmol.systems.molecules import ALANINE_DIPEPTIDE_PDB

    pdb = app.PDBFile(str(ALANINE_DIPEPTIDE_PDB))
    topology = mdtraj.Topology.from_openmm(pdb.topology)
    x = np.array(pdb.positions.value_in_unit(openmm.unit.nanometer)).reshape(1, -1).repeat(3, 0)
    angles = backbone_angles(x, topology)
    assert angles.shape == (3, 2)  # φ and ψ of the one alanine
    heavy = len(topology.select("symbol == C or symbol == N or symbol == S"))
    assert heavy == 8  # CH3, C; N, CA, CB, C; N, C
    # sin and cos of φ and ψ (ω needs a Cα on both sides: none in a dipeptide), and 28 distances
    assert tica_features(x, topology).shape == (3, 2 * 2 + 28)
