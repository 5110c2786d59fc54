"""Training an implicit generator with one of the four principles.

The generator is any module with a differentiable ``sample(n)`` (here a flow, whose density
the training never uses: it only scores the result). Each step draws a data batch and a
model batch; a critic (an MLP ``[n, dim] → [n]``) takes ``critic_steps`` steps on its loss,
then the generator one step on ``principle.generator_loss`` (the critic's estimate of
KL(q ‖ p), or MMD² for moment matching).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..flows.bijections import mlp
from ..progress import progress as progress_bar

if TYPE_CHECKING:
    from .principles import MomentMatching, _RatioPrinciple


class Critic(nn.Module):
    """An MLP ``[n, dim] → [n]`` on standardised inputs; starts at zero (log r = 0).

    The output is softly bounded to (−``bound``, ``bound``) (``bound`` tanh(f / ``bound``)): the
    f-divergence and LSIF losses exponentiate it, and without a bound one large output
    overflows and the adversarial game diverges; |log r| < 15 covers every target here.

    Arguments:
        data: samples ``[N, dim]`` whose mean and standard deviation standardise the inputs.
        hidden: the widths of the hidden layers.
        bound: the bound on the output.
    """

    def __init__(self, data: torch.Tensor, hidden: Sequence[int] = (64, 64), bound: float = 15.0) -> None:
        super().__init__()
        self.bound = bound
        self.register_buffer("loc", data.mean(0).float())
        self.register_buffer("scale", data.std(0).float().clamp(min=1e-6))
        self.net = mlp(data.shape[-1], 1, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The critic's values ``[n]`` (float32) at ``x`` ``[n, dim]``."""
        return self.bound * torch.tanh(self.net((x.float() - self.loc) / self.scale)[:, 0] / self.bound)


def train_implicit(generator: nn.Module, principle: _RatioPrinciple | MomentMatching, data: torch.Tensor,
                   steps: int = 3000, batch_size: int = 512, lr: float = 1e-3, critic_lr: float = 1e-3,
                   critic_steps: int = 2, hidden: Sequence[int] = (64, 64), seed: int = 0,
                   gradient_penalty: float = 1.0, max_grad_norm: float | None = 1.0,
                   betas: tuple[float, float] = (0.5, 0.9), progress: bool = False) -> list[dict[str, float]]:
    """Train ``generator`` on samples ``data`` ``[N, dim]`` with ``principle``; one record per 100 steps.

    Stabilisers of the adversarial game (the usual GAN recipe): an R1 penalty
    ``gradient_penalty``/2 · E_data|∇ₓ critic|² keeps the critic smooth, the generator's gradient
    norm is clipped to ``max_grad_norm`` and Adam uses ``betas`` (0.5, 0.9). Without them the
    class-probability generator chased the critic's extrapolation out of the data's box within
    1,000 steps on the double well (samples at |y| ~ 10⁵); with them it stayed inside.

    Arguments:
        generator: a module with a differentiable ``sample(n)`` returning ``[n, dim]``.
        principle: one of the four principles of :mod:`mlmol.implicit.principles`.
        data: the data samples ``[N, dim]``.
        steps: generator steps.
        batch_size: data and model samples per step.
        lr: the generator's learning rate.
        critic_lr: the critic's learning rate.
        critic_steps: critic steps per generator step.
        hidden: the critic's hidden widths.
        seed: seeds the batches and torch's global generator.
        gradient_penalty: the R1 weight (0: none).
        max_grad_norm: the clip on the generator's gradient norm, or None.
        betas: Adam's betas for both optimisers.
        progress: show a progress bar.

    Returns:
        Records ``{"step", "generator_loss", "critic_loss"}`` (no critic loss without a critic), every 100 steps.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    critic = Critic(data, hidden) if principle.needs_critic else None
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_c = torch.optim.Adam(critic.parameters(), lr=critic_lr, betas=betas) if critic is not None else None
    records = []
    iterator = range(steps)
    if progress:
        iterator = progress_bar(iterator, desc=principle.name, unit="step")
    for step in iterator:
        real = data[torch.randint(len(data), (batch_size,), generator=g)].float()
        if critic is not None:
            for _ in range(critic_steps):
                with torch.no_grad():
                    fake = generator.sample(batch_size)
                opt_c.zero_grad()
                critic_loss = principle.critic_loss(critic, real, fake)
                if gradient_penalty:
                    x = real.detach().requires_grad_(True)
                    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
                    critic_loss = critic_loss + 0.5 * gradient_penalty * grad.pow(2).sum(-1).mean()
                critic_loss.backward()
                opt_c.step()
        opt_g.zero_grad()
        loss = principle.generator_loss(critic, generator.sample(batch_size), real)
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(generator.parameters(), max_grad_norm)
        opt_g.step()
        if step % 100 == 99:
            records.append({"step": step + 1, "generator_loss": loss.item(),
                            **({"critic_loss": critic_loss.item()} if critic is not None else {})})
    return records
