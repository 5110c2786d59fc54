"""Variational Monte Carlo: antisymmetry, the exact Laplacian, the hydrogen atom, blocking, bad input."""

import json
import math

import numpy as np
import pytest
import torch

from mlmol.errors import MlmolError
from mlmol.vmc import FermiNet, HydrogenGroundState, SlaterJastrow, blocking_error, get, local_energy, molecule
from mlmol.vmc.hamiltonian import kinetic_energy, potential_energy
from mlmol.vmc.sampling import initial_positions


def lih_like():
    return molecule([("Li", (0, 0, 0)), ("H", (0, 0, 3.015))], charge=-1, spin=1, name="LiH- (3 up, 2 down)")


@pytest.mark.parametrize("ansatz", [FermiNet, SlaterJastrow])
def test_exchanging_same_spin_electrons_flips_the_sign(ansatz):
    system = lih_like()
    torch.manual_seed(0)
    wf = ansatz(system).double()
    x = initial_positions(system, 4, torch.Generator().manual_seed(1))
    sign, log = wf(x)
    for i, j in ((0, 2), (3, 4)):  # two up electrons, two down electrons
        swapped = x.clone()
        swapped[:, [i, j]] = x[:, [j, i]]
        s2, l2 = wf(swapped)
        assert torch.equal(s2, -sign)
        assert (l2 - log).abs().max() < 1e-10


def test_laplacian_matches_finite_differences():
    system = get("He")
    torch.manual_seed(0)
    wf = FermiNet(system, one=(16, 16), two=(4, 4), determinants=2).double()
    x = initial_positions(system, 3, torch.Generator().manual_seed(2))

    def psi(y):
        sign, log = wf(y)
        return sign * torch.exp(log)

    h = 1e-4
    with torch.no_grad():
        laplacian = torch.zeros(len(x), dtype=x.dtype)
        for k in range(x[0].numel()):
            e = torch.zeros_like(x).flatten(1)
            e[:, k] = h
            e = e.reshape(x.shape)
            laplacian += (psi(x + e) - 2 * psi(x) + psi(x - e)) / h**2
        expected = -0.5 * laplacian / psi(x)
    assert kinetic_energy(wf, x).tolist() == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-5)


def test_hydrogen_ground_state_has_local_energy_minus_one_half_everywhere():
    x = torch.randn(50, 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2
    energies = local_energy(HydrogenGroundState(), x, get("H"))
    assert energies.tolist() == pytest.approx([-0.5] * 50, abs=1e-10)


def test_potential_energy_of_a_known_configuration():
    h2 = get("H2")  # protons at z = ±0.7
    x = torch.tensor([[[0.0, 0.0, 0.7 + 1.0], [0.0, 0.0, -0.7 - 1.0]]], dtype=torch.float64)
    # each electron 1 bohr outside its proton: −(1 + 1/2.4) each, e–e 1/3.4, p–p 1/1.4
    expected = -2 * (1 + 1 / 2.4) + 1 / 3.4 + 1 / 1.4
    assert potential_energy(x, h2).item() == pytest.approx(expected, abs=1e-12)


def test_blocking_recovers_the_error_of_a_correlated_series():
    rng = np.random.default_rng(0)
    phi, n = 0.9, 2**16
    x = np.empty(n)
    x[0] = rng.normal()
    for t in range(1, n):
        x[t] = phi * x[t - 1] + math.sqrt(1 - phi**2) * rng.normal()
    _, se, block = blocking_error(x)
    exact = math.sqrt((1 + phi) / (1 - phi) / n)  # AR(1): integrated autocorrelation time (1 + φ)/(1 − φ)
    assert se == pytest.approx(exact, rel=0.25)
    assert block >= 8
    assert se > 3 * math.sqrt(1 / n)  # the naive error is far too small


@pytest.mark.parametrize("build, match", [
    (lambda: molecule([("He", (0, 0, 0))], spin=1), "cannot have spin"),
    (lambda: molecule([("H", (0, 0, 0)), ("H", (0, 0, 1e-5))]), "overlap"),
    (lambda: molecule([("Xx", (0, 0, 0))]), "unknown element"),
    (lambda: molecule([("H", (0, 0, 0))], charge=1), "leaves 0 electrons"),
    (lambda: get("CH4"), "unknown system"),
])
def test_bad_systems_are_refused_with_a_clear_message(build, match):
    with pytest.raises(MlmolError, match=match):
        build()


def test_a_run_resumes_from_its_checkpoint_and_recovers_from_nan_energies(tmp_path, monkeypatch):
    from mlmol.vmc import optimize
    from mlmol.vmc import run as vmc_run

    config = vmc_run.make_config("H", ansatz="slater-jastrow", steps=6, walkers=32, burn_in=10, eval_steps=8,
                                 checkpoint_every=2)
    first = vmc_run.train(config, tmp_path / "h")
    assert first["steps"] == 6 and (tmp_path / "h" / "energy.json").is_file()
    with pytest.raises(MlmolError, match="--resume"):
        vmc_run.train(config, tmp_path / "h")

    calls = {"n": 0}
    real = optimize.local_energy

    def flaky(wf, x, molecule):  # the third step of the resumed run sees only NaN local energies
        calls["n"] += 1
        energies = real(wf, x, molecule)
        return torch.full_like(energies, torch.nan) if calls["n"] == 3 else energies

    monkeypatch.setattr(optimize, "local_energy", flaky)
    resumed = vmc_run.train(None, tmp_path / "h", resume=True, steps=12)
    assert resumed["steps"] == 12 and resumed["recoveries"] == 1
    assert math.isfinite(resumed["value"])
    lines = (tmp_path / "h" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 12
