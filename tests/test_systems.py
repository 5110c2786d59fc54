"""Systems: the paper's constants, exact references by quadrature, forces, user energies."""

import math

import pytest
import torch

from mlmol import MlmolError, estimators, systems


def _minimise(system, x0):
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([x], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        u = system.energy(x[None])[0]
        u.backward()
        return u

    opt.step(closure)
    return x.detach(), system.energy(x.detach()[None])[0].item()


def test_double_well_minima_and_exact_delta_f():
    dw = systems.DoubleWell()
    left, u_left = _minimise(dw, [-1.7, 0.3])
    right, u_right = _minimise(dw, [1.7, 0.3])
    assert left[0].item() == pytest.approx(-1.7723, abs=1e-3) and u_left == pytest.approx(-10.7524, abs=1e-3)
    assert right[0].item() == pytest.approx(1.6889, abs=1e-3) and u_right == pytest.approx(-7.2897, abs=1e-3)
    # ΔF(left − right) = −log(Z_left / Z_right); REFERENCES.md: ≈ −3.38 kT
    exact = estimators.exact_delta_f(dw, "x0 < 0", "x0 > 0")
    assert exact == pytest.approx(-3.380, abs=0.005)
    # independent check: 1D quadrature in x1 (x2 is an exact Gaussian and cancels)
    x = torch.linspace(-4, 4, 200_001, dtype=torch.float64)
    p = torch.exp(-(x**4 - 6 * x**2 + x))
    assert exact == pytest.approx(-math.log(p[x < 0].sum() / p[x > 0].sum()), abs=1e-4)


def test_mueller_brown_minima():
    mb = systems.MuellerBrown()
    expected = [((-0.558, 1.442), -14.67), ((0.623, 0.028), -10.82), ((-0.050, 0.467), -8.07)]
    for x0, u0 in expected:
        x, u = _minimise(mb, list(x0))
        assert torch.allclose(x, torch.tensor(x0, dtype=torch.float64), atol=5e-3)
        assert u == pytest.approx(u0, abs=0.01)


def test_gaussian_log_partition_is_exact():
    g = systems.Gaussian()
    assert systems.log_partition(g) == pytest.approx(g.log_z, abs=1e-6)


@pytest.mark.parametrize("name", sorted(systems.BUILTIN))
def test_energy_shape_and_force_against_finite_differences(name):
    system = systems.get(name)
    x = torch.randn(7, system.dim, dtype=torch.float64) * 0.5
    if hasattr(system, "n_particles"):  # near a start: random particles overlap (r⁻¹² ~ 1e12)
        x = torch.tensor(system.minima[0], dtype=torch.float64) + 0.05 * x
    assert system.energy(x).shape == (7,)
    assert system.energy(x.reshape(7, 1, system.dim)).shape == (7, 1)
    force = system.force(x)
    h = 1e-6
    for i in range(system.dim):
        e = torch.zeros(system.dim, dtype=torch.float64)
        e[i] = h
        fd = -(system.energy(x + e) - system.energy(x - e)) / (2 * h)
        torch.testing.assert_close(force[:, i], fd, atol=1e-5, rtol=1e-6)


def test_unknown_system_lists_known_ones():
    with pytest.raises(MlmolError, match="double-well.*mueller-brown"):
        systems.get("double_wel")


def test_user_energy_from_file(tmp_path):
    f = tmp_path / "energy.py"
    f.write_text("def u(x):\n    return (x**2).sum(-1)\n\ndef bad_shape(x):\n    return (x**2).sum(-1, keepdim=True)\n"
                 "def needs_three(x):\n    return x[:, 0] + x[:, 2]\n")
    system = systems.from_file(f"{f}:u", dim=3)
    assert system.energy(torch.ones(5, 3)).tolist() == [3.0] * 5
    with pytest.raises(MlmolError, match=r"shape \(4, 1\).*squeeze"):
        systems.from_file(f"{f}:bad_shape", dim=2)
    with pytest.raises(MlmolError, match="--dim 2"):
        systems.from_file(f"{f}:needs_three", dim=2)
    with pytest.raises(MlmolError, match="no function 'nope'.*bad_shape"):
        systems.from_file(f"{f}:nope", dim=2)
    with pytest.raises(MlmolError, match="does not exist"):
        systems.from_file(f"{tmp_path}/missing.py:u", dim=2)
    with pytest.raises(MlmolError, match="file.py:function"):
        systems.from_file("energy.py", dim=2)
    broken = tmp_path / "broken.py"
    broken.write_text("def u(x)\n    return x\n")
    with pytest.raises(MlmolError, match="does not load: SyntaxError"):
        systems.from_file(f"{broken}:u", dim=2)


def test_state_specs():
    s = systems.State("x1 >= 0.5")
    assert s(torch.tensor([[0.0, 0.5], [0.0, 0.4]])).tolist() == [True, False]
    with pytest.raises(MlmolError, match="x0 < 0"):
        systems.State("y < 2")
