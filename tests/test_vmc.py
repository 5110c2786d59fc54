"""Variational Monte Carlo: antisymmetry, the exact Laplacian, the hydrogen atom, blocking, bad input."""

import json
import math

import numpy as np
import pytest
import torch

from mlmol.errors import MlmolError
from mlmol.vmc import FermiNet, HydrogenGroundState, SlaterJastrow, Walkers, blocking_error, get, local_energy, molecule
from mlmol.vmc.hamiltonian import kinetic_energy, potential_energy
from mlmol.vmc.sampling import initial_positions


def needs_pyscf() -> None:
    """Skip this test without pyscf (optional: only Hartree–Fock needs it, so the other tests here still run)."""
    try:  # any ImportError, as hartree_fock treats it (pytest.importorskip skips on ModuleNotFoundError only)
        import pyscf  # noqa: F401
    except ImportError:
        pytest.skip('Hartree–Fock needs pyscf: pip install -e ".[vmc]"')


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


@pytest.mark.parametrize("name, ansatz", [
    ("He", lambda s: FermiNet(s, one=(16, 16), two=(4, 4), determinants=2)),
    # one determinant with two same-spin electrons: the case torch.linalg.slogdet gets wrong under
    # vmap(jacfwd(grad)) in PyTorch 2.13 (see wavefunctions.slogdet)
    ("Li", lambda s: SlaterJastrow(s)),
    ("LiH", lambda s: FermiNet(s, one=(16, 16), two=(4, 4), determinants=1)),
])
def test_laplacian_matches_finite_differences(name, ansatz):
    system = get(name)
    torch.manual_seed(0)
    wf = ansatz(system).double()
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
    assert first["steps"] == 6 and (tmp_path / "h" / "metrics.json").is_file()
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


def test_a_divergence_or_crash_before_the_first_checkpoint_goes_back_to_the_start(tmp_path, monkeypatch):
    from mlmol.vmc import optimize
    from mlmol.vmc import run as vmc_run

    real, calls = optimize.local_energy, {"n": 0}

    def nan_at_third(wf, x, molecule):
        calls["n"] += 1
        energies = real(wf, x, molecule)
        return torch.full_like(energies, torch.nan) if calls["n"] == 3 else energies

    monkeypatch.setattr(optimize, "local_energy", nan_at_third)
    for optimizer in ("adam", "natural-gradient"):
        calls["n"] = 0
        config = vmc_run.make_config("H", ansatz="slater-jastrow", optimizer=optimizer, steps=6, walkers=16,
                                     burn_in=5, eval_steps=8)
        result = vmc_run.train(config, tmp_path / optimizer)
        assert result["steps"] == 6 and result["recoveries"] == 1 and math.isfinite(result["value"])
        steps = [json.loads(line)["step"] for line in (tmp_path / optimizer / "metrics.jsonl").read_text().splitlines()]
        assert steps == [1, 2, 3, 4, 5, 6]  # the steps abandoned by going back are not in the log

    def crash_at_third(wf, x, molecule):  # the process dies mid-run: only the checkpoint at step 0 is on disk
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(wf, x, molecule)

    calls["n"] = 0
    monkeypatch.setattr(optimize, "local_energy", crash_at_third)
    config = vmc_run.make_config("H", ansatz="slater-jastrow", steps=6, walkers=16, burn_in=5, eval_steps=8)
    with pytest.raises(RuntimeError, match="killed"):
        vmc_run.train(config, tmp_path / "crashed")
    assert torch.load(tmp_path / "crashed" / "checkpoint.pt", weights_only=False)["step"] == 0
    monkeypatch.setattr(optimize, "local_energy", real)
    resumed = vmc_run.train(None, tmp_path / "crashed", resume=True)
    straight = vmc_run.train(config, tmp_path / "straight")
    assert resumed["steps"] == 6 and resumed["value"] == straight["value"]  # the same run, bit for bit


def test_max_minutes_stops_training_and_checkpoints_where_it_stopped(tmp_path):
    from mlmol.vmc import run as vmc_run

    config = vmc_run.make_config("H", ansatz="slater-jastrow", steps=10_000, walkers=16, burn_in=5, eval_steps=8,
                                 max_minutes=1e-4)
    result = vmc_run.train(config, tmp_path / "h")
    assert 1 <= result["steps"] < 10_000
    assert torch.load(tmp_path / "h" / "checkpoint.pt", weights_only=False)["step"] == result["steps"]
    with pytest.raises(MlmolError, match="max_minutes"):
        vmc_run.make_config("H", max_minutes=-1)


def test_evaluation_is_a_shared_estimate_with_n_eff():
    from mlmol.estimators import Estimate
    from mlmol.vmc import evaluate

    system = get("H")
    walkers = Walkers(HydrogenGroundState(), system, 64, seed=0)
    walkers.step(50)
    energy = evaluate(HydrogenGroundState(), walkers, system, steps=8, mcmc_steps=2)
    assert isinstance(energy, Estimate) and energy.samples == 8 * 64
    assert energy.value == pytest.approx(-0.5, abs=1e-10)  # the exact eigenfunction: zero variance


@pytest.mark.parametrize("name", ["Li", "LiH"])  # unrestricted (open shell) and restricted
def test_hartree_fock_orbitals_reproduce_the_pyscf_density(name):
    needs_pyscf()
    from pyscf import scf
    from pyscf.dft import numint

    from mlmol.vmc.hartree_fock import hartree_fock

    system = get(name)
    hf = hartree_fock(system, "sto-3g")
    x = initial_positions(system, 20, torch.Generator().manual_seed(4))
    up, down = hf.orbitals(x)
    assert up.shape == (20, 1, system.n_up, system.n_up) and down.shape == (20, 1, system.n_down, system.n_down)
    # ρ(r) = Σ_spin Σ_occupied φ²: evaluate every orbital at every electron's position
    points = x.reshape(-1, 3)
    ours = sum((torch.from_numpy(hf.mol.eval_gto("GTOval_sph", points.numpy()) @ c) ** 2).sum(-1)
               for c in hf.coefficients)
    ao = numint.eval_ao(hf.mol, points.numpy())
    solver = (scf.UHF if system.n_up != system.n_down else scf.RHF)(hf.mol)
    assert solver.kernel() == pytest.approx(hf.energy, abs=1e-8)
    dm = solver.make_rdm1()
    rho = numint.eval_rho(hf.mol, ao, dm if dm.ndim == 2 else dm[0] + dm[1])
    assert ours.numpy() == pytest.approx(rho, rel=1e-6, abs=1e-10)
    # the orbitals at the electrons, in the [a, j] layout: column j holds electron j
    direct = torch.from_numpy(hf.mol.eval_gto("GTOval_sph", x[0, :system.n_up].numpy()) @ hf.coefficients[0]).T
    assert torch.allclose(up[0, 0], direct)


def test_pretraining_fits_the_network_to_hartree_fock():
    needs_pyscf()
    from mlmol.vmc.hartree_fock import HartreeFockWavefunction, hartree_fock, pretrain

    system = get("Li")
    hf = hartree_fock(system, "sto-3g")
    torch.manual_seed(0)
    wf = FermiNet(system, one=(16, 16), two=(4, 4), determinants=2).double()
    reference = HartreeFockWavefunction(hf)
    sampler = Walkers(reference, system, 256, seed=5)
    sampler.step(200)
    x = sampler.x  # held-out samples of |ψ_HF|²

    def spread():  # robust std (interquartile range / 1.349) of log|ψ_net / ψ_HF|: 0 when ψ_net ∝ ψ_HF
        with torch.no_grad():  # (robust: far out the Gaussian basis decays faster than any envelope)
            q = torch.quantile(wf(x)[1] - reference(x)[1], torch.tensor([0.25, 0.75], dtype=x.dtype))
        return float(q[1] - q[0]) / 1.349

    before = spread()
    _, losses = pretrain(wf, hf, system, steps=300, walkers=64, lr=1e-3)
    after = spread()
    assert losses[-1] < 0.1 * losses[0]
    assert after < 0.6 and after < 0.4 * before, (before, after)


def test_hartree_fock_without_pyscf_says_how_to_install_it(monkeypatch):
    import sys

    from mlmol.vmc.hartree_fock import hartree_fock

    monkeypatch.setitem(sys.modules, "pyscf", None)
    with pytest.raises(MlmolError, match=r'pip install -e "\.\[vmc\]"') as error:
        hartree_fock(get("He"))
    assert "\n" not in str(error.value)


def test_without_pyscf_only_the_hartree_fock_tests_skip(tmp_path):
    """This file under a pyscf whose import fails: the install-hint test runs, the pyscf tests skip one by one."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "pyscf").mkdir()
    (tmp_path / "pyscf" / "__init__.py").write_text("raise ImportError('pyscf hidden for this test')\n")
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", __file__, "-k",
                             "without_pyscf_says or pyscf_density or pretraining_fits or natural_gradient_step"],
                            cwd=Path(__file__).parent.parent, env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert "2 passed, 3 skipped" in result.stdout, result.stdout + result.stderr
    assert 'Hartree–Fock needs pyscf: pip install -e ".[vmc]"' in result.stdout, result.stdout  # the skip reason


def test_natural_gradient_step_is_the_damped_sr_solve_in_parameter_space():
    from mlmol.vmc.optimize import NaturalGradient, log_abs_jacobian

    system = get("He")
    torch.manual_seed(0)
    wf = SlaterJastrow(system, exponents=2).double()
    x = initial_positions(system, 12, torch.Generator().manual_seed(6))  # fewer samples than parameters
    jacobian = log_abs_jacobian(wf, x)
    for b in (0, 7):  # rows are the per-sample gradients of log|ψ|
        wf.zero_grad()
        wf(x[b:b + 1])[1].sum().backward()
        assert torch.allclose(jacobian[b], torch.cat([p.grad.flatten() for p in wf.parameters()]))
    energies = torch.randn(12, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    o = (jacobian - jacobian.mean(0)) / math.sqrt(12)
    eps = (energies - energies.mean()) / math.sqrt(12)
    damping = 1e-2
    expected = torch.linalg.solve(o.T @ o + damping * torch.eye(o.shape[1], dtype=o.dtype), o.T @ eps)
    before = torch.cat([p.detach().flatten() for p in wf.parameters()])
    NaturalGradient(wf.parameters(), lr=1.0, damping=damping, max_norm=1e30).step(jacobian, energies)
    after = torch.cat([p.detach().flatten() for p in wf.parameters()])
    assert torch.allclose(before - after, expected, rtol=1e-6, atol=1e-9)


def test_an_exploding_variance_sends_the_run_back_to_its_checkpoint(tmp_path, monkeypatch):
    from mlmol.vmc import optimize
    from mlmol.vmc import run as vmc_run

    real, calls = optimize.local_energy, {"n": 0}

    def exploding(wf, x, molecule):  # step 105 sees local energies spread 10⁵ times wider (variance 10¹⁰)
        calls["n"] += 1
        energies = real(wf, x, molecule)
        return energies.mean() + 1e5 * (energies - energies.mean()) if calls["n"] == 105 else energies

    monkeypatch.setattr(optimize, "local_energy", exploding)
    config = vmc_run.make_config("H", ansatz="slater-jastrow", steps=120, walkers=16, burn_in=5, eval_steps=8,
                                 checkpoint_every=50)
    result = vmc_run.train(config, tmp_path / "h")
    assert result["steps"] == 120 and result["recoveries"] == 1
    assert calls["n"] == 120 + 1 + 4 + 8  # 101–104 redone, then the 8 evaluation sweeps