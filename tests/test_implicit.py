"""The four principles of learning implicit models at their known optima."""

import math

import pytest
import torch

from mlmol.implicit import ClassProbability, FDivergenceKL, MomentMatching, RatioMatching, mmd2


def gaussian_samples(n: int, mean: float, g: torch.Generator) -> torch.Tensor:
    return mean + torch.randn(n, 1, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("principle", [ClassProbability(), FDivergenceKL(), RatioMatching()])
def test_critic_optimum_is_the_true_log_ratio(principle):
    """p = N(0, 1), q = N(1, 1): log p/q = 0.5 − x. A quadratic critic can represent it exactly."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    data, model = gaussian_samples(20_000, 0.0, g), gaussian_samples(20_000, 1.0, g)
    weights = torch.zeros(3, dtype=torch.float64, requires_grad=True)

    def critic(x):
        x = x[:, 0]
        return weights[0] + weights[1] * x + weights[2] * x**2

    optimizer = torch.optim.Adam([weights], lr=0.05)
    for _ in range(600):
        optimizer.zero_grad()
        principle.critic_loss(critic, data, model).backward()
        optimizer.step()
    grid = torch.linspace(-1.0, 2.0, 31, dtype=torch.float64)[:, None]
    with torch.no_grad():
        error = (principle.log_ratio(critic, grid) - (0.5 - grid[:, 0])).abs().max()
        kl_qp = principle.generator_loss(critic, model)  # KL(q ‖ p) = 0.5 for unit Gaussians 1 apart
    assert error < 0.1
    assert kl_qp.item() == pytest.approx(0.5, abs=0.05)


def test_mmd2_matches_its_closed_form_for_gaussians():
    """For N(a, s²) and N(b, s²) in 1D with kernel exp(−Δ²/2ℓ²):
    MMD² = 2 c (1 − exp(−(a − b)² / 2(ℓ² + 2s²))), c = (ℓ² / (ℓ² + 2s²))^{1/2}."""
    g = torch.Generator().manual_seed(3)
    length, shift = 1.0, 1.5
    c = math.sqrt(length**2 / (length**2 + 2))
    exact = 2 * c * (1 - math.exp(-shift**2 / (2 * (length**2 + 2))))
    estimates = [mmd2(gaussian_samples(1000, 0.0, g), gaussian_samples(1000, shift, g), [length]) for _ in range(10)]
    assert torch.stack(estimates).mean().item() == pytest.approx(exact, abs=0.01)
    same = torch.stack([mmd2(gaussian_samples(1000, 0.0, g), gaussian_samples(1000, 0.0, g), [length])
                        for _ in range(10)])
    assert abs(same.mean().item()) < 0.005  # unbiased: zero in expectation for equal distributions


def test_moment_matching_moves_a_generator_onto_the_data():
    g = torch.Generator().manual_seed(4)
    data = gaussian_samples(256, 2.0, g)
    shift = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([shift], lr=0.1)
    principle = MomentMatching()
    for _ in range(100):
        model = torch.randn(256, 1, generator=g, dtype=torch.float64) + shift
        optimizer.zero_grad()
        principle.generator_loss(None, model, data).backward()
        optimizer.step()
    assert shift.item() == pytest.approx(2.0, abs=0.2)
    with pytest.raises(ValueError, match="pass data"):
        principle.generator_loss(None, model)
