"""Likelihood-free inference: which simulator parameters θ explain an observation x_obs?

- :func:`simulations`: (θ, x) pairs from the prior and a simulator; failed simulations
  (non-finite output or an exception) are counted and dropped with a warning.
- :func:`rejection_abc`: the baseline: keep the prior draws whose (z-scored) data lie nearest x_obs.
- :class:`RatioEstimator` / :func:`train_ratio`: neural ratio estimation (Hermans et al. 2020),
  the classifier principle of :mod:`mlmol.implicit.principles` on pairs (θ, x): joint pairs
  against shuffled ones, so the optimal logit is log p(x | θ) / p(x).
- :func:`npe`: neural posterior estimation with the ``sbi`` package (the field's standard).
- :func:`sample_posterior`: samples of prior(θ) · exp(log_likelihood(θ)) for a likelihood known
  up to a constant (exact, or a learned ratio): importance resampling from the prior, then
  Metropolis. Every sample stays inside a bounded prior's support.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Uniform

from ..errors import MlmolError
from ..flows.bijections import mlp
from ..progress import progress as progress_bar
from .principles import ClassProbability

if TYPE_CHECKING:
    from sbi.inference.posteriors.base_posterior import NeuralPosterior


class SimulationWarning(UserWarning):
    """Some simulations failed and were left out."""


@dataclass
class Simulations:
    """``theta`` ``[n, d_θ]`` and ``x`` ``[n, d_x]`` of the successful simulations; ``failed`` counts the rest."""

    theta: torch.Tensor
    x: torch.Tensor
    failed: int
    wall_s: float

    def __repr__(self) -> str:
        return (f"Simulations(n={len(self.theta)}, theta_dim={self.theta.shape[-1]}, x_dim={self.x.shape[-1]}, "
                f"failed={self.failed}, wall_s={self.wall_s:.2f})")


def simulations(simulate: Callable[[torch.Tensor], torch.Tensor], prior: Distribution, n: int, seed: int = 0,
                batch_size: int = 1000, max_failed_fraction: float = 0.5) -> Simulations:
    """``n`` successful simulations x = simulate(θ), θ ~ prior, in batches.

    Rows with a non-finite x, and whole batches whose ``simulate`` raised, are counted and
    left out with a :class:`SimulationWarning`; once more than ``max_failed_fraction`` of all
    attempts failed, an :class:`MlmolError` stops the loop (it never retries forever).

    Arguments:
        simulate: the simulator, parameters ``[b, d_θ]`` to data ``[b, ...]`` (flattened to ``[b, d_x]``).
        prior: the distribution of θ.
        n: the number of successful simulations.
        seed: seeds the prior draws (and a simulator that uses torch's global generator).
        batch_size: parameters per call of ``simulate``.
        max_failed_fraction: the largest tolerated fraction of failed simulations.

    Example:
        >>> from mlmol.implicit import LinearGaussian
        >>> task = LinearGaussian()
        >>> simulations(task.simulate, task.prior, 100)  # doctest: +ELLIPSIS
        Simulations(n=100, theta_dim=10, x_dim=10, failed=0, wall_s=...)
    """
    started = time.perf_counter()
    kept_theta, kept_x, done, failed, attempted, first_error = [], [], 0, 0, 0, None
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        while done < n:
            theta = prior.sample((min(batch_size, n - done),))
            attempted += len(theta)
            try:
                x = simulate(theta)
            except Exception as error:  # noqa: BLE001 - any crash of a user's simulator counts as failed
                first_error = first_error or error
                failed += len(theta)
            else:
                if x.shape[0] != len(theta):
                    raise MlmolError(f"simulate returned {x.shape[0]} rows for {len(theta)} parameter sets: "
                                     "it must map θ [n, d] to x [n, d_x]")
                x = x.reshape(len(theta), -1)
                ok = torch.isfinite(x).all(-1)
                failed += int((~ok).sum())
                kept_theta.append(theta[ok])
                kept_x.append(x[ok])
                done += int(ok.sum())
            if failed > max_failed_fraction * max(attempted, batch_size) and failed >= batch_size // 2:
                cause = f"; the first exception was {first_error!r}" if first_error else ""
                raise MlmolError(f"{failed} of {attempted} simulations failed (non-finite output or an exception"
                                 f"{cause}). Check the simulator at prior draws, or narrow the prior")
    if failed:
        warnings.warn(f"{failed} of {attempted} simulations failed (non-finite output or an exception) and were "
                      "left out", SimulationWarning, stacklevel=2)
    return Simulations(torch.cat(kept_theta), torch.cat(kept_x), failed, time.perf_counter() - started)


def _zscore(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return values.mean(0), values.std(0).clamp(min=1e-12)


def rejection_abc(theta: torch.Tensor, x: torch.Tensor, x_obs: torch.Tensor, n: int = 100) -> torch.Tensor:
    """The ``n`` parameters ``[n, d_θ]`` of ``theta`` ``[N, d_θ]`` whose simulations ``x`` ``[N, d_x]`` lie
    nearest ``x_obs`` ``[d_x]`` (Euclidean, per-dimension z-scored data: the summary statistics are the data
    themselves)."""
    scale = _zscore(x)[1]
    distance = (((x - x_obs) / scale) ** 2).sum(-1)
    return theta[distance.argsort()[:n]]


class RatioEstimator(nn.Module):
    """log r(θ, x) = log p(x | θ) / p(x) by an MLP on standardised (θ, x).

    Arguments:
        theta: training parameters ``[N, d_θ]``, whose mean and standard deviation standardise θ.
        x: training data ``[N, d_x]``, likewise for x.
        hidden: the widths of the hidden layers.
    """

    def __init__(self, theta: torch.Tensor, x: torch.Tensor, hidden: Sequence[int] = (128, 128, 128)) -> None:
        super().__init__()
        for name, values in (("theta", theta), ("x", x)):
            loc, scale = _zscore(values.float())
            self.register_buffer(f"{name}_loc", loc)
            self.register_buffer(f"{name}_scale", scale)
        self.net = mlp(theta.shape[-1] + x.shape[-1], 1, hidden)

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[n]`` for θ ``[n, d_θ]`` and x ``[n, d_x]`` (or ``[1, d_x]``, shared)."""
        theta, x = theta.float(), x.float().expand(len(theta), -1)
        pair = torch.cat([(theta - self.theta_loc) / self.theta_scale, (x - self.x_loc) / self.x_scale], -1)
        return self.net(pair)[:, 0]


def train_ratio(theta: torch.Tensor, x: torch.Tensor, seed: int = 0, hidden: Sequence[int] = (128, 128, 128),
                epochs: int = 300, batch_size: int = 256, negatives: int = 16, lr: float = 1e-3,
                validation_fraction: float = 0.1, patience: int = 30, contrastive: bool = True,
                progress: bool = False) -> RatioEstimator:
    """Neural ratio estimation: a classifier that picks each joint pair (θᵢ, xᵢ) out of it and
    ``negatives`` shuffled pairs (θⱼ, xᵢ): the softmax over the candidates (NRE-B, Durkan et al.
    2020; the logit converges to log p(x | θ) / p(x) up to a function of x, which posteriors
    ignore). ``contrastive=False``: binary classification of joint against shuffled pairs (the
    :class:`ClassProbability` loss, balanced; the logit converges to log r itself). On two
    moons the contrastive loss learnt far better than the binary one in our trials. Adam with the
    learning rate halved after 10 epochs without improvement, early stopping on a held-out fraction (the best
    epoch's weights are returned).

    Arguments:
        theta: parameters ``[N, d_θ]``.
        x: their simulated data ``[N, d_x]``.
        seed: seeds the split, the batches and torch's global generator.
        hidden: the network's hidden widths.
        epochs: the most epochs.
        batch_size: pairs per batch.
        negatives: shuffled pairs per joint pair.
        lr: Adam's initial learning rate.
        validation_fraction: the held-out fraction (at least 2 pairs).
        patience: epochs without improvement before stopping.
        contrastive: the NRE-B loss (else binary classification).
        progress: show a progress bar.

    Returns:
        The trained estimator, in evaluation mode.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(theta), generator=g)
    n_val = max(int(validation_fraction * len(theta)), 2)
    val, train = order[:n_val], order[n_val:]
    model = RatioEstimator(theta[train], x[train], hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=10, threshold=1e-4,
                                                          threshold_mode="abs")
    principle = ClassProbability()

    def loss(t, d, generator):
        shifts = torch.randint(1, len(t), (negatives,), generator=generator)
        shuffled_t = torch.cat([t.roll(int(s), 0) for s in shifts])
        if contrastive:
            logits = model(torch.cat([t, shuffled_t]), d.repeat(negatives + 1, 1)).reshape(negatives + 1, len(t))
            return (torch.logsumexp(logits, 0) - logits[0]).mean()
        return principle.critic_loss(lambda pair: model(pair[0], pair[1]), (t, d), (shuffled_t, d.repeat(negatives, 1)))

    best, best_state, waited = math.inf, None, 0
    epochs_iter = range(epochs)
    if progress:
        epochs_iter = progress_bar(epochs_iter, desc="ratio estimator", unit="epoch")
    val_g = torch.Generator().manual_seed(seed + 1)
    for _ in epochs_iter:
        model.train()
        for batch in train[torch.randperm(len(train), generator=g)].split(batch_size):
            if len(batch) < 2:
                continue
            optimizer.zero_grad()
            loss(theta[batch], x[batch], g).backward()
            optimizer.step()
        with torch.no_grad():
            val_g.manual_seed(seed + 1)
            value = float(loss(theta[val], x[val], val_g))
        schedule.step(value)
        if value < best - 1e-4:
            best, best_state, waited = value, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            waited += 1
            if waited > patience:
                break
    model.load_state_dict(best_state)
    return model.eval()


def sample_posterior(log_likelihood: Callable[[torch.Tensor], torch.Tensor], prior: Distribution, n: int,
                     seed: int = 0, candidates: int | None = None, steps: int = 100) -> torch.Tensor:
    """``n`` samples (float64 ``[n, d]``) of prior(θ) · exp(log_likelihood(θ)).

    Importance resampling from ``candidates`` prior draws (default 20 n) starts ``n``
    independent Metropolis chains; ``steps`` Metropolis steps with a Gaussian proposal of the
    resampled covariance (scaled by 2.38² / d) remove the resampling's duplicates and bias.
    Proposals outside the prior's support have zero density and are rejected.
    """
    candidates = candidates or 20 * n
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        pool = prior.sample((candidates,)).double()
        log_w = log_likelihood(pool).double()
        log_w = torch.where(torch.isfinite(log_w), log_w, -torch.inf)
        if not torch.isfinite(log_w).any():
            raise MlmolError("the likelihood is zero or non-finite at every prior draw: check the observation")
        theta = pool[torch.multinomial(torch.softmax(log_w, 0), n, replacement=True, generator=g)]
        d = theta.shape[-1]
        cov = torch.cov(theta.T).reshape(d, d) + 1e-12 * torch.eye(d, dtype=theta.dtype)
        chol = torch.linalg.cholesky(cov * 2.38**2 / d)

        def log_density(t):
            value = prior.log_prob(t.to(pool.dtype)).double() + log_likelihood(t).double()
            return torch.where(torch.isfinite(value), value, -torch.inf)

        current = log_density(theta)
        for _ in range(steps):
            proposal = theta + torch.randn(theta.shape, generator=g, dtype=theta.dtype) @ chol.T
            inside = torch.isfinite(prior.log_prob(proposal.to(pool.dtype)))
            value = torch.full_like(current, -torch.inf)
            if inside.any():
                value[inside] = log_density(proposal[inside])
            accept = torch.log(torch.rand(n, generator=g, dtype=theta.dtype)) < value - current
            theta = torch.where(accept[:, None], proposal, theta)
            current = torch.where(accept, value, current)
    return theta


def ratio_posterior(estimator: RatioEstimator, prior: Distribution, x_obs: torch.Tensor, n: int,
                    seed: int = 0) -> torch.Tensor:
    """``n`` posterior samples (float64 ``[n, d_θ]``) of prior(θ) · r(θ, x_obs) from a trained ratio estimator,
    by :func:`sample_posterior`, for one observation ``x_obs`` ``[d_x]``."""
    return sample_posterior(lambda t: estimator(t, x_obs[None]), prior, n, seed=seed)


def sbi_prior(prior: Distribution) -> Distribution:
    """A float32 copy of a box-uniform or Gaussian prior, as ``sbi`` expects."""
    from sbi.utils import BoxUniform

    if isinstance(prior, Independent) and isinstance(prior.base_dist, Uniform):
        return BoxUniform(prior.base_dist.low.float(), prior.base_dist.high.float())
    if isinstance(prior, MultivariateNormal):
        return MultivariateNormal(prior.loc.float(), prior.covariance_matrix.float())
    raise MlmolError(f"no float32 version of the prior {prior!r}: use box_prior(low, high) or a MultivariateNormal")


class _NoTracker:
    """sbi's tracker protocol, logging nothing (sbi otherwise writes TensorBoard logs to ./sbi-logs)."""

    log_dir = None

    def log_metric(self, name, value, step=None):
        pass

    def log_metrics(self, metrics, step=None):
        pass

    def log_params(self, params):
        pass

    def add_figure(self, name, figure, step=None):
        pass

    def flush(self):
        pass


def npe(theta: torch.Tensor, x: torch.Tensor, prior: Distribution, seed: int = 0, density_estimator: str = "nsf",
        **train_kwargs: Any) -> NeuralPosterior:
    """Neural posterior estimation with ``sbi``: a neural spline flow (sbibm's choice; its C2ST per task at
    10⁴ simulations is in benchmarks/results/sbi_tasks.md; sbi's default MAF did worse on two moons in our
    trials), sbi's training defaults (early stopping; ``train_kwargs`` go to sbi's ``train``); returns
    sbi's posterior (``.sample((n,), x=x_obs)``), which rejects samples outside a bounded prior's support.

    Arguments:
        theta: parameters ``[N, d_θ]``.
        x: their simulated data ``[N, d_x]``.
        prior: the prior of θ (box-uniform or Gaussian, see :func:`sbi_prior`).
        seed: seeds torch's global generator.
        density_estimator: sbi's density estimator name.
    """
    try:
        from sbi.inference import NPE
    except ImportError as error:  # pragma: no cover - sbi is a dependency
        raise MlmolError("neural posterior estimation needs sbi: pip install sbi") from error
    torch.manual_seed(seed)
    inference = NPE(prior=sbi_prior(prior), density_estimator=density_estimator, show_progress_bars=False,
                    tracker=_NoTracker())
    inference.append_simulations(theta.float(), x.float()).train(**train_kwargs)
    return inference.build_posterior()
