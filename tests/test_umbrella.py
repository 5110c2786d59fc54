"""Umbrella sampling + MBAR: exact on synthetic periodic potentials (1D and 2D), and a short real run."""

import math

import numpy as np
import pytest

from mlmol.samplers.umbrella import UmbrellaTraces, _periodic, mbar_delta_f, sweep_order, window_centres

pytest.importorskip("pymbar")


def _biased_windows(u, points, centres, k, kT, n, rng):
    """Exact samples of each window's biased density on a grid of points ``[G, T]``."""
    p = np.exp(-u)
    traces = []
    for c in centres:
        w = p * np.exp(-0.5 * k * (_periodic(points - c) ** 2).sum(-1) / kT)
        traces.append(points[rng.choice(len(points), size=n, p=w / w.sum())])
    return UmbrellaTraces(centres, np.full(centres.shape, k), traces, kT)


def test_mbar_recovers_the_exact_torsion_free_energy():
    """Windows sampled exactly from biased densities of u(θ) = 3 sin θ + cos 2θ (kT)."""
    rng = np.random.default_rng(0)
    points = np.linspace(-np.pi, np.pi, 20_001)[:-1, None]
    u = 3 * np.sin(points[:, 0]) + np.cos(2 * points[:, 0])
    inside = (points[:, 0] > 0) & (points[:, 0] < np.pi)
    exact = -math.log(np.exp(-u)[inside].sum() / np.exp(-u)[~inside].sum())
    data = _biased_windows(u, points, np.radians(window_centres(20.0, 1)), 40.0, 2.5, 2000, rng)
    value, stderr, details = mbar_delta_f(data, subsample=False)
    assert exact > 3  # the sin θ term makes 0 < θ < π unfavourable
    assert abs(value - exact) < 4 * stderr + 0.02 and stderr < 0.1
    assert details["min_neighbour_overlap"] > 0.01


def test_mbar_recovers_a_2d_free_energy_with_a_coupled_second_torsion():
    """u(φ, ψ) = 2 sin φ + 2 cos(ψ − φ) + cos 2ψ: the φ states differ in their ψ wells."""
    rng = np.random.default_rng(1)
    axis = np.linspace(-np.pi, np.pi, 241)[:-1]
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    phi, psi = points.T
    u = 2 * np.sin(phi) + 2 * np.cos(psi - phi) + np.cos(2 * psi)
    inside = (phi > 0) & (phi < np.pi)
    exact = -math.log(np.exp(-u)[inside].sum() / np.exp(-u)[~inside].sum())
    data = _biased_windows(u, points, np.radians(window_centres(45.0, 2)), 10.0, 2.5, 400, rng)
    value, stderr, details = mbar_delta_f(data, subsample=False)
    assert abs(value - exact) < 4 * stderr + 0.02 and stderr < 0.1
    assert details["min_neighbour_overlap"] > 0.01


def test_grid_and_sweep_visit_every_window_once_by_small_steps():
    centres = np.radians(window_centres(30.0, 2))
    assert centres.shape == (144, 2)
    order = sweep_order(centres, np.zeros(2))
    assert sorted(order) == list(range(144))
    jumps = np.linalg.norm(_periodic(np.diff(centres[order], axis=0)), axis=-1)
    assert np.mean(jumps < np.radians(31)) > 0.9


def test_the_reverse_sweep_visits_every_window_once_in_the_other_direction():
    centres = np.radians(window_centres(30.0, 2))
    start = np.radians([-80.0, 70.0])  # nearest window (−90°, 60°)
    forward, reverse = sweep_order(centres, start), sweep_order(centres, start, reverse=True)
    assert sorted(reverse) == list(range(144)) and forward[0] == reverse[0]  # the same nearest first window
    step = [_periodic(centres[order[1]] - centres[order[0]]) for order in (forward, reverse)]
    assert np.allclose(step[0], -step[1])  # the first move goes the opposite way
    jumps = np.linalg.norm(_periodic(np.diff(centres[reverse], axis=0)), axis=-1)
    assert np.mean(jumps < np.radians(31)) > 0.9


def test_held_torsions_and_order_round_trip_and_count_cis_frames(tmp_path):
    trans, cis = np.radians([[179.0, -170.0]] * 3), np.radians([[179.0, 10.0]])
    data = UmbrellaTraces(np.zeros((2, 2)), np.ones((2, 2)), [np.zeros((3, 2)), np.zeros((1, 2))], 2.5,
                          held=[trans, cis], order=np.array([1, 0]))
    assert data.cis_fraction() == 0.125  # one bond of one frame out of 4 frames × 2 bonds
    data.save(tmp_path / "u.npz")
    back = UmbrellaTraces.load(tmp_path / "u.npz")
    assert np.array_equal(back.order, [1, 0]) and back.cis_fraction() == 0.125
    with pytest.raises(Exception, match="held-torsion"):
        UmbrellaTraces(np.zeros((1, 2)), np.ones((1, 2)), [np.zeros((3, 2))], 2.5).cis_fraction()


def test_traces_round_trip_through_a_file(tmp_path):
    data = UmbrellaTraces(np.zeros((2, 2)), np.ones((2, 2)), [np.zeros((3, 2)), np.ones((5, 2))], 2.5)
    data.save(tmp_path / "u.npz")
    back = UmbrellaTraces.load(tmp_path / "u.npz")
    assert back.kT == 2.5 and [t.shape for t in back.traces] == [(3, 2), (5, 2)]
    assert np.array_equal(back.traces[1], data.traces[1])


def test_short_umbrella_run_on_alanine_dipeptide():
    pytest.importorskip("openmm")
    from mlmol.samplers.umbrella import umbrella
    from mlmol.systems.molecules import PHI, PSI, alanine_dipeptide, peptide_bonds

    energy = alanine_dipeptide()
    assert peptide_bonds(energy.topology) == [(0, 4, 6, 8), (8, 10, 16, 18)]  # ACE CH3-C-N-CA, CA-C-N-NME C
    centres = [[-80.0, 150.0], [60.0, -70.0]]
    data = umbrella(energy, [PHI, PSI], centres, force_constants=500.0, steps=2000, equilibration=500, interval=50,
                    hold_trans=peptide_bonds(energy.topology))
    energy.close()
    assert [t.shape for t in data.traces] == [(40, 2), (40, 2)]
    assert [h.shape for h in data.held] == [(40, 2), (40, 2)] and data.cis_fraction() == 0.0
    assert sorted(data.order) == [0, 1]
    for centre, trace in zip(data.centres, data.traces):  # restrained near their centres, in both torsions
        assert np.degrees(np.abs(_periodic(trace - centre))).mean(0).max() < 25


@pytest.mark.parametrize("omega_deg, expected", [(180.0, 0.0), (-100.0, 0.0), (95.0, 0.0), (60.0, 30.0), (-10.0, 80.0)])
def test_flat_bottom_restraint_is_zero_in_the_trans_well_and_harmonic_outside(omega_deg, expected):
    """½ k (|ω − 180°| − 90°)² outside ±90° of trans, in kJ/mol; ``expected`` is the excess in degrees."""
    openmm = pytest.importorskip("openmm")
    from mlmol.samplers.md import flat_bottom_restraint

    system = openmm.System()
    for _ in range(4):
        system.addParticle(1.0)
    system.addForce(flat_bottom_restraint([(0, 1, 2, 3)], force_constant=1000.0))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    w = math.radians(omega_deg)  # a-b-c-d with torsion ω: a in the xy-plane, d rotated about the b-c axis (x)
    context.setPositions([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, math.cos(w), math.sin(w)]])
    energy = context.getState(getEnergy=True).getPotentialEnergy()._value
    assert math.isclose(energy, 0.5 * 1000.0 * math.radians(expected) ** 2, abs_tol=1e-9)


def test_mcmc_umbrella_and_mbar_recover_the_exact_double_well_free_energy():
    import torch

    from mlmol.estimators import exact_delta_f, exact_profile
    from mlmol.samplers.umbrella import mbar_delta_f, mbar_profile, umbrella_mcmc
    from mlmol.systems import DoubleWell

    system = DoubleWell()
    centres = np.linspace(-2.6, 2.6, 27)
    data = umbrella_mcmc(system, lambda x: x[..., 0], centres, 25.0, lambda c: torch.tensor([c, 0.0]),
                         steps=10_000, burn=500, interval=10, chains=8, step=0.3, seed=0)
    value, stderr, _ = mbar_delta_f(data, lambda theta: theta[:, 0] < 0)
    exact = exact_delta_f(system, "x0 < 0", "x0 > 0")
    assert 0 < stderr < 0.06 and abs(value - exact) < 4 * stderr + 0.02, (value, stderr, exact)
    edges = np.linspace(-2.4, 2.4, 25)
    profile, reference = mbar_profile(data, edges), exact_profile(system, 0, edges)
    low = reference.f - reference.f.min() < 8
    shift = np.nanmean((profile.f - reference.f)[low])
    assert np.nanmax(np.abs(profile.f - reference.f - shift)[low]) < 0.3


def test_mcmc_umbrella_with_single_particle_sweeps():
    from mlmol.errors import MlmolError
    from mlmol.samplers.umbrella import umbrella_mcmc
    from mlmol.systems import DoubleWell, SolvatedDimer
    from mlmol.systems.particles import dimer_distance

    system = SolvatedDimer()
    data = umbrella_mcmc(system, dimer_distance, [1.0, 2.0], 500.0, system.lattice, steps=40, burn=10, interval=10,
                         chains=3, step=0.1, moves="particle")
    assert [len(t) for t in data.traces] == [12, 12] and not data.periodic
    assert abs(data.traces[0].mean() - 1.0) < 0.1 and abs(data.traces[1].mean() - 2.0) < 0.1
    with pytest.raises(MlmolError, match="particle_energy"):
        umbrella_mcmc(DoubleWell(), lambda x: x[..., 0], [0.0], 1.0, lambda c: [c, 0.0], steps=10, moves="particle")


def test_the_statistical_inefficiency_is_set_by_the_slowest_restrained_torsion():
    """Two torsions in one window: φ white noise, ψ an AR(1) process with ρ = 0.8, whose
    integrated g is (1 + ρ)/(1 − ρ) = 9; the window's g follows ψ."""
    from mlmol.samplers.umbrella import statistical_inefficiency

    rng = np.random.default_rng(1)
    n, rho = 20_000, 0.8
    psi = np.zeros(n)
    for t in range(1, n):
        psi[t] = rho * psi[t - 1] + math.sqrt(1 - rho**2) * 0.2 * rng.standard_normal()
    trace = np.stack([0.2 * rng.standard_normal(n), psi], -1)
    data = UmbrellaTraces(np.zeros((1, 2)), np.full((1, 2), 250.0), [trace], 2.5)
    assert statistical_inefficiency(data, 0) == pytest.approx(9.0, rel=0.25)
    white = UmbrellaTraces(np.zeros((1, 2)), np.full((1, 2), 250.0), [0.2 * rng.standard_normal((n, 2))], 2.5)
    assert statistical_inefficiency(white, 0) < 1.3
