"""Annealed importance sampling (Neal 2001) from a normalised proposal q to a target exp(−u): samples
and log weights for log Z and reweighting, on a geometric path log π_β = (1 − β) log q − β u.

With ``alpha`` ≠ 1 the path ends at p^α q^(1−α) instead of p = exp(−u) (for α = 2, the distribution
that minimises the variance of importance weights; FAB, Midgley et al. 2023):
log π_β = (1 − αβ) log q − αβ u."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..data import zero_weight_nonfinite
from ..errors import MlmolError
from ..systems.base import Energy


@dataclass
class AISResult:
    """``x`` ``[n, dim]`` at β = 1, their log weights ``[n]`` (log w with E[w] = Z, the target's normaliser
    over q's), the mean MALA acceptance of each transition ``[K]`` and the target energy evaluations."""

    x: torch.Tensor
    log_weights: torch.Tensor
    acceptance: torch.Tensor
    evaluations: int


def adapted_step(step_size: float, acceptance: float, target: float = 0.65) -> float:
    """The MALA step for the next AIS run: ``step_size`` · exp(½ (acceptance − target)), larger when moves are
    accepted more often than ``target``. Between runs only: each run keeps one step, so its weights stay exact.

    Example:
        >>> adapted_step(0.1, 0.65)
        0.1
    """
    return step_size * math.exp(0.5 * (acceptance - target))


def annealed_importance_sampling(x: torch.Tensor, log_q: Callable[[torch.Tensor], torch.Tensor], target: Energy,
                                 betas: Sequence[float] | torch.Tensor, step_size: float = 0.1,
                                 generator: torch.Generator | None = None, alpha: float = 1.0,
                                 moves: int = 1) -> AISResult:
    """AIS with ``moves`` MALA steps per intermediate distribution.

    Arguments:
        x: samples of q ``[n, dim]``.
        log_q: q's normalised log density ``[*batch]`` of ``[*batch, dim]``.
        target: the target (reduced energy u).
        betas: the path, increasing from 0 to 1, e.g. ``torch.linspace(0, 1, 11)``.
        step_size: MALA's step ε (proposal x + ε² ∇log π / 2 + ε ξ).
        generator: the random stream of the moves; it must not replay the stream that drew ``x`` (a
            generator seeded like the one behind ``x`` repeats x's noise in the first move and biases log Z).
        alpha: the path's end p^α q^(1−α); 1 (the default) is the target itself, 2 FAB's.
        moves: MALA steps at each intermediate distribution (``acceptance`` is their mean per level).

    With ``betas = [0, 1]`` (no transition) the log weights are plain importance weights −u(x) − log q(x).

    Example:
        >>> from mlmol.systems import Gaussian
        >>> q = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2) * 2)
        >>> out = annealed_importance_sampling(q.sample((64,)), q.log_prob, Gaussian(), torch.linspace(0, 1, 5))
        >>> out.log_weights.shape, out.acceptance.shape
        (torch.Size([64]), torch.Size([3]))
    """
    betas = torch.as_tensor(betas, dtype=torch.float64)
    if betas.ndim != 1 or len(betas) < 2 or float(betas[0]) != 0.0 or float(betas[-1]) != 1.0 \
            or not bool((betas[1:] > betas[:-1]).all()):
        raise MlmolError("the AIS path must increase from β = 0 to β = 1, e.g. torch.linspace(0, 1, 11)")
    if not step_size > 0:
        raise MlmolError(f"the MALA step size must be positive, got {step_size}")
    if moves < 1:
        raise MlmolError(f"AIS needs at least one MALA move per level, got moves={moves}")

    def pieces(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """log q, −u and their gradients at ``y``."""
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            lq, lp = log_q(y), -target.energy(y)
            (gq,) = torch.autograd.grad(lq.sum(), y, retain_graph=True)
            (gp,) = torch.autograd.grad(lp.sum(), y)
        # a NaN energy is a point of zero density: never accepted, weight zero
        lp = zero_weight_nonfinite(lp.detach())
        return lq.detach(), lp, torch.nan_to_num(gq), torch.nan_to_num(gp)

    x = x.detach()
    log_w = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    lq, lp, gq, gp = pieces(x)
    evaluations, acceptance = len(x), []
    for k in range(1, len(betas)):
        beta_old, beta = alpha * float(betas[k - 1]), alpha * float(betas[k])
        log_w = log_w + (beta - beta_old) * (lp - lq)
        if k == len(betas) - 1:
            break
        accepted = torch.zeros((), dtype=torch.float64)
        for _ in range(moves):  # MALA steps that keep π_β = q^(1−β) exp(−βu) invariant (β scaled by α)
            log_pi, grad = (1 - beta) * lq + beta * lp, (1 - beta) * gq + beta * gp
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            proposal = x + 0.5 * step_size**2 * grad + step_size * noise
            lq2, lp2, gq2, gp2 = pieces(proposal)
            evaluations += len(x)
            log_pi2, grad2 = (1 - beta) * lq2 + beta * lp2, (1 - beta) * gq2 + beta * gp2
            forward = -((proposal - x - 0.5 * step_size**2 * grad) ** 2).sum(-1) / (2 * step_size**2)
            backward = -((x - proposal - 0.5 * step_size**2 * grad2) ** 2).sum(-1) / (2 * step_size**2)
            log_accept = log_pi2 - log_pi + backward - forward
            draw = torch.rand(len(x), generator=generator, dtype=x.dtype, device=x.device)
            accept = torch.log(draw) < torch.nan_to_num(log_accept, nan=-torch.inf)
            keep = accept[:, None]
            x = torch.where(keep, proposal, x)
            lq, lp = torch.where(accept, lq2, lq), torch.where(accept, lp2, lp)
            gq, gp = torch.where(keep, gq2, gq), torch.where(keep, gp2, gp)
            accepted = accepted + accept.double().mean() / moves
        acceptance.append(accepted)
    return AISResult(x, log_w, torch.stack(acceptance) if acceptance else torch.zeros(0, dtype=torch.float64),
                     evaluations)
