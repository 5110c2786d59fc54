"""FAB: the α = 2 loss's gradient against finite differences of the divergence, the replay buffer's
weights, and a bit-for-bit resume with the buffer."""

import math

import pytest
import torch

from mlmol import flows, systems
from mlmol.errors import MlmolError
from mlmol.experiments import midgley2023
from mlmol.fab import FAB, ReplayBuffer
from mlmol.losses import Batch

TARGET = systems.Gaussian(mean=(0.5, -0.3), covariance=((0.6, 0.15), (0.15, 0.4)))  # narrower than q: ∫ p²/q finite


def _perturbed_flow(seed: int = 0) -> flows.RealNVP:
    """A RealNVP moved away from the identity in its couplings' output biases only: an affine map, so q
    keeps Gaussian tails and ∫ p²/q stays finite (a nonlinear coupling's clamped scales make it infinite)."""
    torch.manual_seed(seed)
    flow = flows.RealNVP(2, blocks=2, hidden=(8,))
    with torch.no_grad():
        for p in _output_biases(flow):
            p.add_(0.3 * torch.randn_like(p))
    return flow.double()


def _output_biases(flow) -> list[torch.Tensor]:
    return [p for name, p in flow.named_parameters() if name.endswith("net.2.bias")]


def _log_divergence(flow, grid_x: torch.Tensor, cell: float) -> torch.Tensor:
    """log ∫ p̃(x)² / q(x) dx by quadrature (p̃ = exp(−u)): log D₂ up to a constant."""
    with torch.no_grad():
        integrand = -2 * TARGET.energy(grid_x) - flow.log_prob(grid_x)
    return torch.logsumexp(integrand, 0) + math.log(cell)


def test_alpha_2_loss_gradient_matches_finite_differences_of_the_divergence():
    """E[∇ FAB loss] = −E_{p²/q}[∇ log q] = ∇ log ∫ p²/q: checked along a random parameter direction."""
    flow = _perturbed_flow()
    edges = torch.linspace(-9, 9, 601, dtype=torch.float64)
    grid = torch.cartesian_prod(edges, edges)
    cell = float(edges[1] - edges[0]) ** 2
    params = _output_biases(flow)  # directions that keep the map affine
    direction = [torch.randn(p.shape, generator=torch.Generator().manual_seed(i), dtype=p.dtype)
                 for i, p in enumerate(params)]

    def shifted(eps: float) -> torch.Tensor:
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.add_(eps * d)
        value = _log_divergence(flow, grid, cell)
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.sub_(eps * d)
        return value

    eps = 1e-4
    finite_difference = float((shifted(eps) - shifted(-eps)) / (2 * eps))
    assert abs(finite_difference) > 1.0  # the direction moves the divergence: the check can fail

    def gradient(alpha: float) -> tuple[float, float]:
        """The loss gradient along ``direction`` over independent AIS batches: mean and standard error."""
        estimates = []
        for seed in range(8):
            loss = FAB(TARGET, levels=2, step_size=0.6, adapt=False, alpha=alpha)
            batch = Batch(flow, TARGET, None, torch.Generator().manual_seed(seed), batch_size=20_000)
            value, metrics = loss(batch)
            grads = torch.autograd.grad(value, params)
            estimates.append(sum(float((g * d).sum()) for g, d in zip(grads, direction)))
            assert metrics["evaluations"] == 20_000 * 3  # the start points and one MALA move at each of 2 levels
        estimates = torch.tensor(estimates, dtype=torch.float64)
        return float(estimates.mean()), float(estimates.std() / math.sqrt(len(estimates)))

    tolerance = 0.02 * abs(finite_difference)
    mean, stderr = gradient(2.0)
    assert stderr < tolerance  # precise enough that a wrong gradient is told apart
    assert abs(mean - finite_difference) < 4 * stderr + tolerance, (mean, stderr, finite_difference)
    # negative control: α = 1 (AIS to p, the forward-KL gradient) is another gradient, which the check rejects
    mean, stderr = gradient(1.0)
    assert abs(mean - finite_difference) > 4 * stderr + tolerance, (mean, stderr, finite_difference)


def test_buffer_draws_in_proportion_to_the_weights_without_replacement():
    buffer = ReplayBuffer(dim=1, capacity=6, min_length=4)
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0])
    buffer.add(torch.arange(4.0)[:, None], torch.log(weights), torch.zeros(4))
    counts = torch.zeros(6)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20_000):
        counts[buffer.sample(1, generator)] += 1
    torch.testing.assert_close(counts[:4] / counts.sum(), weights / weights.sum(), atol=0.01, rtol=0)
    assert counts[4:].sum() == 0  # empty slots are never drawn
    drawn = buffer.sample(4, generator)
    assert sorted(drawn.tolist()) == [0, 1, 2, 3]  # distinct
    with pytest.raises(MlmolError, match="distinct"):
        buffer.sample(5, generator)
    buffer.add(torch.zeros(1, 1), torch.tensor([-math.inf]), torch.zeros(1))  # weight zero: never drawn
    assert sorted(buffer.sample(5, generator).tolist()) == [0, 1, 2, 3]


def test_buffer_overwrites_the_oldest_and_adjusts_weights_to_the_current_flow():
    buffer = ReplayBuffer(dim=1, capacity=4, min_length=2)
    assert not buffer.ready
    buffer.add(torch.zeros(3, 1), torch.zeros(3), torch.zeros(3))
    buffer.add(torch.ones(2, 1), torch.ones(2), torch.ones(2))  # wraps: slot 0 gets the newest
    assert len(buffer) == 4 and buffer.x[:, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
    # the flow moved: log q went from 1 to 3 at slot 0, from 0 to -inf (weight zero) at slot 1
    buffer.adjust(torch.tensor([0, 1]), torch.tensor([3.0, -math.inf]), alpha=2.0)
    assert buffer.log_w[0].item() == pytest.approx(1.0 + (1 - 2.0) * (3.0 - 1.0))
    assert buffer.log_q[0].item() == 3.0 and buffer.log_w[1].item() == -math.inf
    state = buffer.state_dict()
    other = ReplayBuffer(dim=1, capacity=4, min_length=2)
    other.load_state_dict(state)
    assert torch.equal(other.log_w, buffer.log_w) and other.next == buffer.next


def test_buffer_loss_corrects_for_the_flow_moving_since_the_draw():
    """loss = −mean (q_old/q)^(α−1) log q on the drawn points, and the weights follow the flow."""
    flow = _perturbed_flow(1)
    loss = FAB(TARGET, buffer=ReplayBuffer(2, capacity=64, min_length=8), updates=1)
    generator = torch.Generator().manual_seed(3)
    loss(Batch(flow, TARGET, None, generator, batch_size=8))  # fills the buffer and takes one step
    before = loss.buffer.log_w.clone(), loss.buffer.log_q.clone()
    with torch.no_grad():  # the flow moves, as after an optimiser step
        for p in flow.parameters():
            p.add_(0.05)
    loss.pending = torch.tensor([0, 1, 2, 3])
    value, metrics = loss(Batch(flow, TARGET, None, generator, batch_size=4))
    index = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        log_q = flow.log_prob(loss.buffer.x[index])
    expected = -(torch.exp(-(log_q - before[1][index])) * log_q).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-10)
    torch.testing.assert_close(loss.buffer.log_w[index], before[0][index] - (log_q - before[1][index]))
    assert metrics["evaluations"] == 0  # no AIS on a step served by the pending draw


def test_fab_with_buffer_resumes_bit_for_bit(resumes_bit_for_bit):
    system = systems.get("gmm-40")
    log = resumes_bit_for_bit(lambda: midgley2023(system, None, steps=12, batch=16, capacity=256, min_length=32,
                                                  updates=3), seed=5, until=7)
    counts = [r["energy_evaluations"] for r in log]
    assert counts[0] >= 32 and counts == sorted(counts) and counts[-1] > counts[0]  # AIS batches add up
