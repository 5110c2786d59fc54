"""Umbrella sampling + MBAR: exact on a synthetic periodic potential, and a short real run."""

import math

import numpy as np
import pytest

from mlmol.samplers.umbrella import UmbrellaTraces, _periodic, mbar_torsion_delta_f

pytest.importorskip("pymbar")


def test_mbar_recovers_the_exact_torsion_free_energy():
    """Windows sampled exactly from biased densities of u(θ) = 3 sin θ + cos 2θ (kT)."""
    rng = np.random.default_rng(0)
    grid = np.linspace(-np.pi, np.pi, 20_001)[:-1]
    u = 3 * np.sin(grid) + np.cos(2 * grid)
    p = np.exp(-u)
    exact = -math.log(p[(grid > 0) & (grid < np.pi)].sum() / p[~((grid > 0) & (grid < np.pi))].sum())
    centres = np.radians(np.arange(-180, 180, 20.0))
    k, kT = 40.0, 2.5  # kJ/mol/rad², kJ/mol
    traces = []
    for c in centres:
        w = p * np.exp(-0.5 * k * _periodic(grid - c) ** 2 / kT)
        traces.append(rng.choice(grid, size=2000, p=w / w.sum()))
    value, stderr, details = mbar_torsion_delta_f(UmbrellaTraces(centres, np.full(len(centres), k), traces, kT),
                                                  subsample=False)
    assert exact > 3  # the sin θ term makes 0 < θ < π unfavourable
    assert abs(value - exact) < 4 * stderr + 0.02 and stderr < 0.1
    assert details["min_neighbour_overlap"] > 0.01


def test_short_umbrella_run_on_alanine_dipeptide():
    pytest.importorskip("openmm")
    from mlmol.samplers.umbrella import umbrella_torsion
    from mlmol.systems.molecules import PHI, alanine_dipeptide

    energy = alanine_dipeptide()
    data = umbrella_torsion(energy, PHI, [-80.0, 60.0], force_constants=500.0, steps=2000, equilibration=500,
                            interval=50)
    energy.bridge.close()
    assert [len(t) for t in data.traces] == [40, 40]
    for centre, trace in zip(data.centres, data.traces):  # restrained near their centres
        assert np.degrees(np.abs(_periodic(trace - centre))).mean() < 25
