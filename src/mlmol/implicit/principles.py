"""The four principles for learning implicit models (Mohamed & Lakshminarayanan 2016, section 3).

Each principle trains a *critic* (a network ``[n, dim] → [n]``) on data samples x ~ p and
model samples x ~ q, so that at its optimum the critic gives log r(x) = log p(x) / q(x):

- :class:`ClassProbability`: logistic regression, data against model (the GAN objective);
  the optimal logit is log r for balanced batches.
- :class:`FDivergenceKL`: the variational lower bound of KL(p ‖ q),
  E_p[T] − E_q[exp(T − 1)], whose maximiser is T = 1 + log r.
- :class:`RatioMatching`: least-squares importance fitting (LSIF, a Bregman divergence),
  ½ E_q[r̂²] − E_p[r̂], minimised by r̂ = r; the critic outputs log r̂.
- :class:`MomentMatching`: no critic; the generator minimises the kernel MMD² between the
  two sample sets (:func:`mmd2`, Gaussian kernels).

For the ratio-based principles the generator minimises the critic's estimate of
KL(q ‖ p) = −E_q[log r(x)] (``generator_loss``), differentiable through the model samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from typing import TypeVar

    Batch = TypeVar("Batch")  # what a critic takes: samples [n, dim], or (θ, x) pairs in train_ratio

Critic = Callable[[torch.Tensor], torch.Tensor]


class _RatioPrinciple:
    """A principle that learns log r with a critic; subclasses define the critic's loss."""

    name = "ratio"
    needs_critic = True

    def critic_loss(self, critic: Critic, data: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
        """The critic's loss (a scalar) on data samples ``[n, dim]`` and model samples ``[m, dim]``."""
        raise NotImplementedError

    def log_ratio(self, critic: Critic, x: torch.Tensor) -> torch.Tensor:
        """The estimate ``[n]`` of log p_data(x) / q_model(x) at ``x`` ``[n, dim]`` (exact at the critic's optimum)."""
        return critic(x)

    def generator_loss(self, critic: Critic, model: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        """The estimate (a scalar) of KL(q ‖ p) = −E_q[log r] on model samples ``[m, dim]`` (``data`` is unused)."""
        return -self.log_ratio(critic, model).mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ClassProbability(_RatioPrinciple):
    """Class-probability estimation: a classifier of data (label 1) against model samples (label 0)."""

    name = "class-probability"

    def critic_loss(self, critic: Callable[[Batch], torch.Tensor], data: Batch, model: Batch) -> torch.Tensor:
        """The logistic loss E_p[softplus(−T)] + E_q[softplus(T)] (a scalar) of the critic's logits T.

        ``data`` and ``model`` are samples ``[n, dim]`` and ``[m, dim]``, or any batches the critic takes
        (:func:`~mlmol.implicit.inference.train_ratio` passes (θ, x) pairs).
        """
        return F.softplus(-critic(data)).mean() + F.softplus(critic(model)).mean()


class FDivergenceKL(_RatioPrinciple):
    """Divergence minimisation: the f-divergence bound for KL(p ‖ q) with f*(t) = exp(t − 1)."""

    name = "f-divergence (KL)"

    def critic_loss(self, critic: Critic, data: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
        """The negated bound −(E_p[T] − E_q[exp(T − 1)]) (a scalar)."""
        return -(critic(data).mean() - torch.exp(critic(model) - 1).mean())

    def log_ratio(self, critic: Critic, x: torch.Tensor) -> torch.Tensor:
        """log r = T − 1 ``[n]`` at ``x`` ``[n, dim]``."""
        return critic(x) - 1


class RatioMatching(_RatioPrinciple):
    """Density-ratio matching by least squares (LSIF): ½ E_q[r̂²] − E_p[r̂] with r̂ = exp(critic)."""

    name = "ratio matching (LSIF)"

    def critic_loss(self, critic: Critic, data: torch.Tensor, model: torch.Tensor) -> torch.Tensor:
        """½ E_q[r̂²] − E_p[r̂] (a scalar), r̂ = exp(critic)."""
        return 0.5 * torch.exp(2 * critic(model)).mean() - torch.exp(critic(data)).mean()


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] = (0.5, 1.0, 2.0)) -> torch.Tensor:
    """Unbiased MMD² between samples ``x`` ``[n, d]`` and ``y`` ``[m, d]`` (n, m ≥ 2).

    Kernel: the sum over ``bandwidths`` ℓ of exp(−|a − b|² / 2ℓ²) (lengths in the data's units).

    Example:
        >>> x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
        >>> bool(mmd2(x, x + 2) > mmd2(x[:250], x[250:]))
        True
    """
    def kernel(a, b):
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * length**2)) for length in bandwidths)

    n, m = len(x), len(y)
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
            - 2 * kxy.mean())


class MomentMatching:
    """Moment matching: the generator minimises MMD² to the data (no critic).

    Arguments:
        bandwidths: the kernel lengths ℓ of :func:`mmd2` (the data's units).
    """

    name = "moment matching (MMD)"
    needs_critic = False

    def __init__(self, bandwidths: Sequence[float] = (0.5, 1.0, 2.0)) -> None:
        self.bandwidths = tuple(float(b) for b in bandwidths)

    def generator_loss(self, critic: Critic | None, model: torch.Tensor,
                       data: torch.Tensor | None = None) -> torch.Tensor:
        """MMD² (a scalar) between model samples ``[m, dim]`` and data samples ``[n, dim]`` (``critic`` is unused)."""
        if data is None:
            raise ValueError("moment matching compares the model samples with data samples: pass data")
        return mmd2(model, data, self.bandwidths)

    def __repr__(self) -> str:
        return f"MomentMatching(bandwidths={self.bandwidths})"
