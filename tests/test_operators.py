"""Neural operators: the Burgers solver against Cole–Hopf (shocks included), the random field's covariance,
spectral convolution."""

import math

import numpy as np
import pytest
import torch

from mlmol.errors import MlmolError
from mlmol.operators import burgers
from mlmol.operators.burgers import gaussian_random_field, solve, wavenumbers
from mlmol.operators.fno import FNO, SpectralConv, relative_l2


def cole_hopf(x: torch.Tensor, t: float, nu: float = 0.1) -> torch.Tensor:
    """u = −2ν φₓ/φ with φ(x, t) = 2 + e^{−ν(2π)²t} sin 2πx + ½ e^{−ν(4π)²t} cos 4πx, an exact solution."""
    a, b = math.exp(-nu * (2 * math.pi) ** 2 * t), math.exp(-nu * (4 * math.pi) ** 2 * t)
    phi = 2 + a * torch.sin(2 * math.pi * x) + 0.5 * b * torch.cos(4 * math.pi * x)
    dphi = 2 * math.pi * a * torch.cos(2 * math.pi * x) - 2 * math.pi * b * torch.sin(4 * math.pi * x)
    return -2 * nu * dphi / phi


@pytest.mark.parametrize("t", [0.1, 1.0])
def test_burgers_solver_matches_the_cole_hopf_solution(t):
    x = torch.arange(256, dtype=torch.float64) / 256
    u = solve(cole_hopf(x, 0.0)[None], time=t, dt=1e-3)
    assert (u[0] - cole_hopf(x, t)).abs().max() < 1e-9


def test_the_hopf_formula_reproduces_the_closed_form_cole_hopf_solution():
    x = torch.arange(256, dtype=torch.float64) / 256
    u0 = cole_hopf(x, 0.0)
    u0 = u0 - u0.mean()  # mean zero to 1e-17 already; the Hopf formula needs it exactly
    for t in (0.1, 1.0):
        assert np.abs(burgers.cole_hopf(u0.numpy(), t, 0.1) - cole_hopf(x, t).numpy()).max() < 1e-9


def grad(u: torch.Tensor) -> torch.Tensor:
    n = u.shape[-1]
    return torch.fft.irfft(torch.fft.rfft(u) * 2j * math.pi * torch.arange(n // 2 + 1), n=n)


def test_burgers_solver_resolves_the_shocks_of_the_released_generators_setting():
    """ν = 1/1000 and the rougher field of gen_burgers1.m: the waves break before t = 1 (at 1 / max(−u₀'))
    and the gradients steepen 3.8–12× into shocks, and ETDRK4 (dt 2e-3) stays within 2e-7 of the exact
    solution."""
    setting = burgers.RELEASED
    u0 = gaussian_random_field(3, 1024, setting.scale, setting.shift, setting.power,
                               generator=torch.Generator().manual_seed(0))
    u1 = solve(u0, viscosity=setting.viscosity, dt=setting.dt)
    assert torch.all(1 / (-grad(u0)).amax(1) < 1) and torch.all(grad(u1).abs().amax(1) > 3 * grad(u0).abs().amax(1))
    for i in range(3):
        exact = burgers.cole_hopf(u0[i].numpy(), 1.0, setting.viscosity)
        assert np.linalg.norm(u1[i].numpy() - exact) / np.linalg.norm(exact) < 2e-7


def test_burgers_data_at_8192_points_are_resolved_at_the_released_viscosity():
    """The spectrum of u(·, 1) has fallen to 1e-14 of its peak by mode 512 (measured 2e-16), and
    doubling the grid to 16384 points changes the solution by < 1e-12 (measured 3e-16)."""
    setting = burgers.RELEASED
    u0 = gaussian_random_field(1, 8192, setting.scale, setting.shift, setting.power,
                               generator=torch.Generator().manual_seed(1))
    u1 = solve(u0, viscosity=setting.viscosity, dt=setting.dt)
    spectrum = torch.fft.rfft(u1)[0].abs()
    assert spectrum[512:].max() < 1e-14 * spectrum.max()
    finer = solve(torch.fft.irfft(torch.fft.rfft(u0), n=16384) * 2, viscosity=setting.viscosity, dt=setting.dt)
    assert float((finer[:, ::2] - u1).norm() / u1.norm()) < 1e-12


def test_burgers_time_step_is_shortened_where_the_explicit_term_would_blow_up():
    u0 = gaussian_random_field(1, 1024, 2401.0, 49.0, 2.5, generator=torch.Generator().manual_seed(0))
    u0 = 1.6 * u0 / u0.abs().max()  # beyond the largest of 3000 fields (1.17); dt 5e-3 unshortened diverges
    assert burgers.stable_dt(u0, 1e-3, 5e-3) == pytest.approx(2e-3 / 1.6**2)
    u1 = solve(u0, viscosity=1e-3, dt=5e-3)
    exact = burgers.cole_hopf(u0[0].numpy(), 1.0, 1e-3)
    assert np.linalg.norm(u1[0].numpy() - exact) / np.linalg.norm(exact) < 1e-6
    assert burgers.stable_dt(u0, 0.1, 5e-3) == 5e-3  # ν = 0.1: no change (its data are as before)


def test_the_released_setting_is_grf1_of_gen_burgers1():
    """GRF1(N, 0, gamma = 2.5, tau = 7, sigma = 7^2) is
    Σ_k √2 σ((2πk)² + τ²)^(−γ/2) (ξ_k cos 2πkx + η_k sin 2πkx),
    whose pointwise variance is Σ_k 2σ² ((2πk)² + τ²)^−γ; and ν = 1/1000."""
    gamma, tau, sigma = 2.5, 7.0, 7.0**2
    setting = burgers.RELEASED
    assert (setting.scale, setting.shift, setting.power, setting.viscosity) == (sigma**2, tau**2, gamma, 1e-3)
    n = 64
    u = gaussian_random_field(20_000, n, setting.scale, setting.shift, setting.power,
                              generator=torch.Generator().manual_seed(0))
    k = 2 * math.pi * torch.arange(1, n // 2, dtype=torch.float64)  # the Nyquist mode is negligible here
    assert float(u.var(0).mean()) == pytest.approx(float((2 * sigma**2 * (k**2 + tau**2) ** -gamma).sum()), rel=0.02)


def test_random_field_has_the_covariance_it_claims():
    n, scale, shift = 32, 625.0, 25.0
    u = gaussian_random_field(20_000, n, scale, shift, generator=torch.Generator().manual_seed(0))
    k = wavenumbers(n)
    eigenvalues = scale * (k**2 + shift) ** -2.0
    variance = 2 * eigenvalues[1:-1].sum() + eigenvalues[-1]  # modes ±1 … n/2; no constant mode
    assert u.var(0).mean() == pytest.approx(float(variance), rel=0.02)
    assert u.mean(1).abs().max() < 1e-12  # every draw has mean zero
    # the lag-one covariance: Σ_k λ_k cos(2πk/n)
    lag = (u * u.roll(1, 1)).mean()
    expected = 2 * (eigenvalues[1:-1] * torch.cos(k[1:-1] / n)).sum() - eigenvalues[-1]
    assert float(lag) == pytest.approx(float(expected), rel=0.03)


def test_spectral_convolution_is_a_truncated_fourier_multiplier():
    torch.manual_seed(0)
    conv = SpectralConv(1, 1, modes=5, dim=1)
    v = torch.randn(3, 1, 64)
    multiplier = torch.zeros(33, dtype=torch.cfloat)
    multiplier[:5] = conv.weight[0, 0, 0]
    expected = torch.fft.irfft(torch.fft.rfft(v) * multiplier, n=64)
    assert torch.allclose(conv(v), expected, atol=1e-6)


def test_fno_runs_at_any_resolution_and_refuses_too_coarse_grids():
    torch.manual_seed(0)
    model = FNO(dim=1, modes=8, width=16)
    for n in (32, 128):
        assert model(torch.randn(2, n, 1)).shape == (2, n, 1)
    with pytest.raises(MlmolError, match="too coarse"):
        FNO(dim=2, modes=12, width=8)(torch.randn(1, 16, 16, 1))
    assert float(relative_l2(torch.ones(2, 4), torch.ones(2, 4))) == 0.0


def test_darcy_solver_is_second_order_on_a_manufactured_solution():
    import numpy as np

    from mlmol.operators.darcy import convergence_order, solve

    def error(n):  # u = sin πx sin πy with a = 1 + x + y², f = −∇·(a∇u)
        x = np.linspace(0, 1, n)
        X, Y = np.meshgrid(x, x, indexing="ij")
        u, a = np.sin(np.pi * X) * np.sin(np.pi * Y), 1 + X + Y**2
        f = 2 * np.pi**2 * a * u - np.pi * (np.cos(np.pi * X) * np.sin(np.pi * Y) + 2 * Y * np.sin(np.pi * X) * np.cos(np.pi * Y))
        return np.abs(solve(a, f) - u).max()

    sizes = [17, 33, 65]
    assert convergence_order([error(n) for n in sizes], sizes) == pytest.approx(2.0, abs=0.05)
    with pytest.raises(MlmolError, match="positive"):
        solve(-np.ones((5, 5)))


def test_darcy_coefficient_is_thresholded_to_twelve_and_three():
    import numpy as np

    from mlmol.operators.darcy import dataset

    a, u = dataset(2, 9, fine=33, seed=0)
    assert a.shape == u.shape == (2, 9, 9) and set(np.unique(a)) <= {3.0, 12.0}
    assert np.all(u[:, 0] == 0) and np.all(u[:, 1:-1, 1:-1] > 0)  # f = 1 > 0: u positive inside
    with pytest.raises(MlmolError, match="subsample"):
        dataset(1, 10, fine=33)


def test_smoluchowski_reference_solves_the_ornstein_uhlenbeck_process():
    import numpy as np

    from mlmol.operators.smoluchowski import Propagator, cell_centres

    def error(n):  # βU = x²/2, D = 1: N(m, s²) stays Gaussian, m e^{−t}, 1 + (s² − 1) e^{−2t}
        x, h = cell_centres(n, 8.0), 16.0 / n
        propagate = Propagator(x**2 / 2, h)
        p0 = np.exp(-0.5 * ((x - 1.5) / 0.4) ** 2) / (0.4 * np.sqrt(2 * np.pi))
        pt = propagate(p0, 0.5)
        mean, var = 1.5 * np.exp(-0.5), 1 + (0.16 - 1) * np.exp(-1.0)
        exact = np.exp(-0.5 * (x - mean) ** 2 / var) / np.sqrt(2 * np.pi * var)
        assert abs(pt.sum() * h - p0.sum() * h) < 1e-12  # probability conserved
        return np.abs(pt - exact).max()

    errors = [error(n) for n in (100, 200, 400)]
    assert errors[-1] < 2e-3 and errors[0] / errors[-1] == pytest.approx(16, rel=0.15)  # second order in h
    x = cell_centres(200, 3.0)
    stationary = Propagator((x**2 - 1) ** 2, 6.0 / 200)(np.ones(200) / 6.0, 1e3)
    boltzmann = np.exp(-((x**2 - 1) ** 2))
    assert np.allclose(stationary, boltzmann / (boltzmann.sum() * 6.0 / 200), atol=1e-10)


def test_smoluchowski_dataset_conserves_probability():
    import numpy as np

    from mlmol.operators.smoluchowski import dataset

    inputs, outputs = dataset(8, n=64, seed=1)
    h = 5.0 / 64
    assert inputs.shape == (8, 64, 2) and outputs.shape == (8, 64)
    assert np.allclose(inputs[..., 0].sum(1) * h, 1) and np.allclose(outputs.sum(1) * h, 1, atol=1e-12)
    assert outputs.min() > -1e-12


def test_smoluchowski_propagator_stays_accurate_under_walls_of_a_hundred_kt():
    import numpy as np

    from mlmol.operators.smoluchowski import Propagator, cell_centres

    x, h = cell_centres(256, 2.5), 5.0 / 256
    propagate = Propagator(5 * (x**2 - 1) ** 2, h)  # 138 kT at the ends
    p0 = np.exp(-0.5 * ((x - 2.0) / 0.5) ** 2)
    p0 /= p0.sum() * h
    p1, p2 = propagate(p0, 0.05), propagate(p0, 0.1)
    assert p2.min() > -1e-12 and abs(p2.sum() * h - 1) < 1e-12
    assert np.allclose(propagate(p1, 0.05), p2, atol=1e-10)  # semigroup: P(t)P(t) = P(2t)


def test_spectral_convolution_in_2d_equals_the_fft_definition():
    torch.manual_seed(0)
    conv = SpectralConv(3, 4, modes=6, dim=2).double()
    v = torch.randn(2, 3, 40, 31, dtype=torch.float64)
    weight, m = conv.weight.to(torch.complex128), 6
    spectrum = torch.fft.rfft2(v)
    out = torch.zeros(2, 4, *spectrum.shape[2:], dtype=spectrum.dtype)
    out[..., :m, :m] = torch.einsum("bixy,ioxy->boxy", spectrum[..., :m, :m], weight[0])
    out[..., -m:, :m] = torch.einsum("bixy,ioxy->boxy", spectrum[..., -m:, :m], weight[1])
    assert torch.allclose(conv(v), torch.fft.irfft2(out, s=(40, 31)), atol=1e-12)
