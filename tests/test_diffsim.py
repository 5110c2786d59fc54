"""Gradient estimators through simulators: unbiasedness where exact, bias at jumps, the α rule, the tasks."""

import math

import pytest
import torch

from mlmol.diffsim import (
    BallWithWall,
    LangevinBias,
    LinearQuadratic,
    MoleculeLangevin,
    Pushing,
    alpha_blend,
    alpha_order,
    first_order,
    smoothed_gradient_quadrature,
    smoothed_value_quadrature,
    zeroth_order,
)
from mlmol.errors import MlmolError

A = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]], dtype=torch.float64)
B = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


def quadratic(theta):
    return 0.5 * ((theta @ A) * theta).sum(-1) + theta @ B


def step(theta):
    return (theta[:, 0] > 0).double()


@pytest.mark.parametrize("estimator", [zeroth_order, first_order,
                                       lambda f, t, s, n, g: alpha_order(f, t, s, n, tolerance=1.0, generator=g),
                                       lambda f, t, s, n, g: alpha_order(f, t, s, n, tolerance=1.0, generator=g,
                                                                         rule="paper")])
def test_each_estimator_is_unbiased_on_a_quadratic(estimator):
    theta = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64)
    exact = A @ theta + B  # the smoothed gradient of a quadratic is its gradient
    estimate = estimator(quadratic, theta, 0.2, 20_000, torch.Generator().manual_seed(0))
    z = (estimate.gradient - exact).abs() / estimate.stderr
    assert (z < 4).all(), (estimate.gradient, exact, estimate.stderr)
    assert (estimate.stderr < 0.15).all()


def test_first_order_has_the_lower_variance_on_a_smooth_problem():
    theta = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    zeroth, first = zeroth_order(quadratic, theta, 0.2, 4000, g), first_order(quadratic, theta, 0.2, 4000, g)
    # FoBG terms: ∇f(θ) + A w, variance σ² diag(A²); ZoBG terms are far noisier at this σ
    assert first.variance == pytest.approx((0.04 * torch.diag(A @ A)).tolist(), rel=0.1)
    assert (zeroth.variance > 10 * first.variance).all()


def test_quadrature_gives_the_smoothed_gradient_of_a_jump():
    sigma = 0.3
    for theta in (-0.4, 0.0, 0.25):
        exact = math.exp(-0.5 * (theta / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))  # dF/dθ = N(θ; 0, σ²)
        assert smoothed_gradient_quadrature(step, theta, sigma) == pytest.approx(exact, rel=1e-4)  # a jump costs the trapezoid rule O(h)
        value = 0.5 * (1 + math.erf(theta / (sigma * math.sqrt(2))))  # F(θ) = Φ(θ / σ)
        assert smoothed_value_quadrature(step, theta, sigma) == pytest.approx(value, abs=5e-4)  # O(h), h = 2.4e-4


def test_first_order_misses_a_jump_and_zeroth_order_sees_it():
    theta, sigma = torch.tensor([0.1], dtype=torch.float64), 0.3
    exact = smoothed_gradient_quadrature(step, 0.1, sigma)
    g = torch.Generator().manual_seed(2)
    assert first_order(step, theta, sigma, 2000, g).gradient.item() == 0.0  # ∇f = 0 almost everywhere
    zeroth = zeroth_order(step, theta, sigma, 20_000, g)
    assert abs(zeroth.gradient.item() - exact) < 4 * zeroth.stderr.item()


@pytest.mark.parametrize("rule", ["paper", "robust"])
def test_alpha_rule_falls_back_to_zeroth_order_when_uncertain_and_blends_when_not(rule):
    theta = torch.tensor([0.1], dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    assert alpha_order(step, theta, 0.3, 100, tolerance=1e-3, generator=g, rule=rule).alpha == 0.0  # ε ≫ γ
    smooth = alpha_order(quadratic, torch.zeros(3, dtype=torch.float64), 0.2, 4000, tolerance=10.0, generator=g,
                         rule=rule)
    assert 0.9 < smooth.alpha <= 1.0  # no gap between the two: the variance-optimal α, mostly first order
    # a jump: the FoBG–ZoBG gap is large, so the bias constraint caps α at (γ − ε) / gap (paper); the gap
    # is 90 standard errors, so the robust rule drops the first order
    capped = alpha_order(step, theta, 0.3, 20_000, tolerance=0.2, generator=g, rule=rule)
    assert (0.0 < capped.alpha < 0.5) if rule == "paper" else capped.alpha == 0.0


def _terms(n, gap, first_sd, zeroth_sd, seed):
    """Synthetic per-sample terms [n, 1]: ZoBG = FoBG + independent noise, FoBG offset by ``gap``."""
    g = torch.Generator().manual_seed(seed)
    first = first_sd * torch.randn(n, 1, generator=g, dtype=torch.float64)
    return first - gap + zeroth_sd * torch.randn(n, 1, generator=g, dtype=torch.float64), first


def test_robust_rule_keeps_a_quiet_unbiased_first_order_and_rejects_a_certain_bias():
    # unbiased, first order 100x quieter: the true optimum is α = 1 (ZoBG = FoBG + independent noise)
    alphas = {rule: [alpha_blend(*_terms(100, 0.0, 0.1, 1.0, s), tolerance=1.0, rule=rule).alpha for s in range(200)]
              for rule in ("paper", "robust")}
    assert sum(a == 1.0 for a in alphas["robust"]) > 150  # noise in B and in the gap is not taken for a signal
    assert sum(a == 1.0 for a in alphas["paper"]) < 150
    # a gap of 10 standard errors of the difference: within γ for the paper, beyond doubt for the robust rule
    zeroth, first = _terms(1000, 0.3, 0.1, 1.0, 0)
    assert alpha_blend(zeroth, first, tolerance=1.0, rule="paper").alpha > 0.5
    assert alpha_blend(zeroth, first, tolerance=1.0, rule="robust").alpha == 0.0
    # a gap of about 4 standard errors: significant, not certain; its lower confidence bound caps α
    zeroth, first = _terms(1000, 0.13, 0.1, 1.0, 0)
    capped = alpha_blend(zeroth, first, tolerance=0.08, rule="robust")
    gap = float((first.mean() - zeroth.mean()).abs())
    bound = gap - 1.959964 * float((first - zeroth).std()) / 1000**0.5
    epsilon = 1.959964 * float(zeroth.std()) / 1000**0.5
    assert 0.0 < capped.alpha < 0.5 and capped.alpha == pytest.approx((0.08 - epsilon) / bound, rel=1e-6)


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(MlmolError, match="vector"):
        zeroth_order(quadratic, torch.zeros(2, 3), 0.1, 10)
    with pytest.raises(MlmolError, match="sigma"):
        first_order(quadratic, torch.zeros(3), 0.0, 10)
    with pytest.raises(MlmolError, match=r"\[n\] values"):
        first_order(lambda t: t, torch.zeros(3, dtype=torch.float64), 0.1, 10)
    with pytest.raises(MlmolError, match="tolerance"):
        alpha_order(quadratic, torch.zeros(3), 0.1, 10, tolerance=0.0)
    with pytest.raises(MlmolError, match="robust, paper"):
        alpha_order(quadratic, torch.zeros(3), 0.1, 10, tolerance=1.0, rule="best")


def test_ball_with_wall_jumps_where_the_ball_starts_clearing_the_wall():
    ball = BallWithWall()
    theta = torch.tensor([[0.692], [0.694], [1.198], [1.200]], dtype=torch.float64)
    cost = ball(theta)
    wall = -(0.06**2)
    assert cost[0].item() == pytest.approx(wall) and cost[3].item() == pytest.approx(wall)
    reach = torch.sin(2 * theta[[1, 2], 0]) / 9.81
    assert cost[[1, 2]].tolist() == pytest.approx((-(reach**2)).tolist())


def test_pushing_exchanges_momentum_like_an_elastic_collision_without_friction():
    theta = torch.tensor([[1.0]], dtype=torch.float64)
    (p1, b1), (p2, b2) = (Pushing(stiffness=1000.0, friction=0.0, steps=s).final_positions(theta) for s in (100, 110))
    # equal masses, elastic contact: after the collision the pusher rests and the box moves at 1 m/s
    assert (b2 - b1).item() / 0.1 == pytest.approx(1.0, abs=0.01)
    assert (p2 - p1).item() == pytest.approx(0.0, abs=1e-3)


def test_first_order_variance_grows_with_contact_stiffness():
    theta, g = torch.tensor([1.0], dtype=torch.float64), torch.Generator().manual_seed(5)
    variances = [first_order(Pushing(stiffness=k, steps=150), theta, 0.1, 400, g).variance.item() for k in (10, 1000)]
    assert variances[1] > 2 * variances[0]


def test_linear_quadratic_gradient_matches_its_closed_form():
    lq = LinearQuadratic(horizon=5)
    theta = torch.randn(1, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    h = torch.autograd.functional.hessian(lambda t: lq(t[None])[0], theta[0])
    g = torch.autograd.functional.jacobian(lambda t: lq(t[None])[0], theta[0])
    g0 = torch.autograd.functional.jacobian(lambda t: lq(t[None])[0], torch.zeros(5, dtype=torch.float64))
    assert g.tolist() == pytest.approx((g0 + h @ theta[0]).tolist(), abs=1e-10)  # exactly quadratic


def test_langevin_bias_tilts_the_time_average():
    g = torch.Generator().manual_seed(4)
    task = LangevinBias(steps=400, kT=1.0, generator=g)
    theta = torch.tensor([[0.0], [-15.0]], dtype=torch.float64).repeat_interleave(200, 0)
    average = task(theta).sqrt()  # |⟨x₁⟩| with target 0
    # untilted: trapped in the left well (x₁ ≈ −1.77); a tilt of −15 removes the left well
    assert average[:200].mean().item() == pytest.approx(1.77, abs=0.1)
    assert average[200:].mean().item() > 1.5


def test_molecule_langevin_gradient_through_the_force_field_matches_finite_differences():
    """The first-order gradient backpropagates through Langevin steps whose forces come from the
    native torch force field (its second derivatives); with the noise path fixed by the seed,
    f is deterministic and smooth in θ."""
    pytest.importorskip("openmm")
    task = MoleculeLangevin(steps=4)

    def f(theta):
        task.generator = torch.Generator().manual_seed(0)
        return task(theta)

    theta = torch.tensor([[0.5], [-1.0]], dtype=torch.float64)
    x = theta.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(f(x).sum(), x)
    step = 1e-5
    finite = (f(theta + step) - f(theta - step)) / (2 * step)
    assert gradient[:, 0].abs().min() > 1e-4  # the bias moves the observable within 4 steps
    assert torch.allclose(gradient[:, 0], finite, rtol=1e-6, atol=0)
    with pytest.raises(MlmolError, match="no torsion 'chi'"):
        MoleculeLangevin(energy=task.energy, torsion="chi")
