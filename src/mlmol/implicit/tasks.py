"""Simulators with known posteriors: the tasks for likelihood-free inference.

A task has a ``prior`` (a torch distribution over θ ``[n, d_θ]``), a ``simulate(theta,
generator)`` that returns data x ``[n, d_x]`` (what the inference methods see), and a
``reference_posterior(x_obs, n, seed)`` (exact samples, or MCMC on the exact likelihood) that
only the scoring uses.

- :class:`LinearGaussian`: sbibm's task, θ ~ N(0, 0.1 I₁₀), x ~ N(θ, 0.1 I₁₀); the posterior
  is N(x / 2, 0.05 I).
- :class:`TwoMoons`: sbibm's task (Greenberg et al. 2019), θ ~ U[−1, 1]²; a crescent-shaped,
  bimodal posterior sampled exactly by inverting the simulator.
- :class:`LangevinDoubleWell`: an overdamped Langevin trajectory in u(y) = h (y² − 1)² + c y
  (kT = 1), θ = (tilt c, barrier h). Its Euler–Maruyama transition density is Gaussian, so the
  exact likelihood of the whole trajectory is known; the reference posterior is MCMC on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.distributions import Distribution, Independent, MultivariateNormal, Uniform

from .inference import sample_posterior


def box_prior(low: Sequence[float] | torch.Tensor, high: Sequence[float] | torch.Tensor) -> Distribution:
    """A uniform prior on the box [low, high] (per parameter), shape ``[d]`` (float64).

    Example:
        >>> box_prior([-1.0, 0.5], [1.0, 4.0]).sample((3,)).shape
        torch.Size([3, 2])
    """
    low, high = torch.as_tensor(low, dtype=torch.float64), torch.as_tensor(high, dtype=torch.float64)
    return Independent(Uniform(low, high), 1)


class Task:
    """A simulator with a prior and a reference posterior; subclasses set the names and shapes.

    Example:
        >>> task = TwoMoons()
        >>> theta, x_obs = task.observation(seed=0)
        >>> task.reference_posterior(x_obs, 100).shape
        torch.Size([100, 2])
    """

    name = "task"
    parameter_names: tuple[str, ...] = ()
    prior: Distribution

    def simulate(self, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Data x ``[n, d_x]`` (θ's dtype) for parameters θ ``[n, d_θ]``, noise from ``generator``."""
        raise NotImplementedError

    def reference_posterior(self, x_obs: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` samples ``[n, d_θ]`` (float64) of the posterior given ``x_obs`` ``[d_x]``."""
        raise NotImplementedError

    def observation(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A true θ ``[d_θ]`` from the prior and its simulated data x_obs ``[d_x]`` (deterministic in ``seed``).

        θ and the simulator's noise come from separate random streams: one seed for both would
        correlate them (for the linear Gaussian, x = 2θ exactly)."""
        with torch.random.fork_rng():
            torch.manual_seed(10_000 + seed)
            theta = self.prior.sample((1,))
        return theta[0], self.simulate(theta, torch.Generator().manual_seed(20_000 + seed))[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LinearGaussian(Task):
    """sbibm's linear Gaussian: θ ~ N(0, 0.1 I_d), x | θ ~ N(θ, 0.1 I_d), d = 10 by default.

    Arguments:
        dim: the dimension d of θ and x.
        prior_var: the prior's variance per parameter.
        noise_var: the noise variance per data coordinate.
    """

    name = "linear-gaussian"

    def __init__(self, dim: int = 10, prior_var: float = 0.1, noise_var: float = 0.1) -> None:
        self.dim, self.prior_var, self.noise_var = dim, prior_var, noise_var
        self.parameter_names = tuple(f"θ{i + 1}" for i in range(dim))
        self.prior = MultivariateNormal(torch.zeros(dim, dtype=torch.float64),
                                        prior_var * torch.eye(dim, dtype=torch.float64))

    def simulate(self, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x = θ + noise ``[n, d]`` for θ ``[n, d]``."""
        noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype)
        return theta + math.sqrt(self.noise_var) * noise

    def reference_posterior(self, x_obs: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
        """Exact: N(x · v_p / (v_p + v_n), v_p v_n / (v_p + v_n) I); ``[n, d]`` float64 for ``x_obs`` ``[d]``."""
        v = self.prior_var * self.noise_var / (self.prior_var + self.noise_var)
        mean = x_obs.double() * self.prior_var / (self.prior_var + self.noise_var)
        g = torch.Generator().manual_seed(seed)
        return mean + math.sqrt(v) * torch.randn(n, self.dim, generator=g, dtype=torch.float64)


class TwoMoons(Task):
    """sbibm's two moons: θ ~ U[−1, 1]², α ~ U(−π/2, π/2), r ~ N(0.1, 0.01²),
    x = (r cos α + 0.25, r sin α) + (−|θ₁ + θ₂| / √2, (−θ₁ + θ₂) / √2)."""

    name = "two-moons"
    parameter_names = ("θ1", "θ2")

    def __init__(self) -> None:
        self.prior = box_prior([-1.0, -1.0], [1.0, 1.0])

    @staticmethod
    def _moon(n: int, generator, dtype=torch.float64) -> torch.Tensor:
        alpha = (torch.rand(n, generator=generator, dtype=dtype) - 0.5) * math.pi
        r = 0.1 + 0.01 * torch.randn(n, generator=generator, dtype=dtype)
        return torch.stack([r * torch.cos(alpha) + 0.25, r * torch.sin(alpha)], -1)

    def simulate(self, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Points x ``[n, 2]`` for θ ``[n, 2]``."""
        shift = torch.stack([-(theta[:, 0] + theta[:, 1]).abs(), -theta[:, 0] + theta[:, 1]], -1) / math.sqrt(2)
        return self._moon(len(theta), generator, theta.dtype) + shift

    def reference_posterior(self, x_obs: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
        """Exact, by inverting the simulator: for a fresh moon point p, |θ₁ + θ₂| = −√2 (x₁ − p₁)
        and θ₂ − θ₁ = √2 (x₂ − p₂); the sign of θ₁ + θ₂ is ±1 with equal probability; draws
        outside the prior box (or with x₁ − p₁ > 0) are rejected (the prior is uniform).
        Returns ``[n, 2]`` (float64) for ``x_obs`` ``[2]``."""
        g = torch.Generator().manual_seed(seed)
        kept, total = [], 0
        while total < n:
            p = self._moon(4 * n, g)
            s = -math.sqrt(2) * (x_obs[0].double() - p[:, 0])  # |θ1 + θ2|
            d = math.sqrt(2) * (x_obs[1].double() - p[:, 1])  # θ2 − θ1
            sign = torch.where(torch.rand(4 * n, generator=g) < 0.5, -1.0, 1.0).double()
            theta = torch.stack([(sign * s - d) / 2, (sign * s + d) / 2], -1)
            ok = (s >= 0) & (theta.abs() <= 1).all(-1)
            kept.append(theta[ok])
            total += int(ok.sum())
        return torch.cat(kept)[:n]


class LangevinDoubleWell(Task):
    """Overdamped Langevin dynamics in u(y) = h (y² − 1)² + c y, kT = 1, unit friction.

    Euler–Maruyama from y₀ = −1: y_{k+1} = y_k − u'(y_k) Δt + √(2 Δt) ξ_k, ``steps`` steps of
    ``dt`` (reduced time). θ = (c, h) with prior c ~ U(−1, 1), h ~ U(0.5, 4) (kT).

    The drift −u'(y) = −h g(y) − c with g(y) = 4 y (y² − 1) is linear in θ, so the trajectory's
    log-likelihood, −Σ (Δy_k + (h g_k + c) Δt)² / (4 Δt) + const, depends on it only through
    S = (Σ Δy g, Σ Δy, Σ g², Σ g) (sums over the K steps). ``simulate`` returns S (sufficient
    statistics: the posterior given S equals that given the full path); ``trajectory`` gives the
    path and ``log_likelihood`` the exact likelihood, the same from S as from the path.
    A diverged path (|y| > 10⁶ or non-finite) gives NaN statistics.

    Arguments:
        steps: the number K of Euler–Maruyama steps.
        dt: the time step Δt (reduced time).
        y0: the starting position.
    """

    name = "langevin-double-well"
    parameter_names = ("tilt c", "barrier h")

    def __init__(self, steps: int = 2000, dt: float = 0.005, y0: float = -1.0) -> None:
        self.steps, self.dt, self.y0 = steps, dt, y0
        self.prior = box_prior([-1.0, 0.5], [1.0, 4.0])

    @staticmethod
    def force_basis(y: torch.Tensor) -> torch.Tensor:
        """g(y) = 4 y (y² − 1), elementwise: the drift is −h g(y) − c."""
        return 4 * y * (y**2 - 1)

    def trajectory(self, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Paths ``[n, steps + 1]`` (y₀ first) for parameters θ = (c, h) ``[n, 2]``."""
        c, h = theta[:, 0], theta[:, 1]
        y = torch.full_like(c, self.y0)
        path = [y]
        noise = math.sqrt(2 * self.dt)
        for _ in range(self.steps):
            y = y - (h * self.force_basis(y) + c) * self.dt + noise * torch.randn(y.shape, generator=generator,
                                                                                   dtype=y.dtype)
            y = torch.where(y.abs() < 1e6, y, torch.nan)
            path.append(y)
        return torch.stack(path, -1)

    def statistics(self, path: torch.Tensor) -> torch.Tensor:
        """The sufficient statistics S ``[n, 4]`` of paths ``[n, steps + 1]``."""
        step, g = path.diff(dim=-1), self.force_basis(path[:, :-1])
        return torch.stack([(step * g).sum(-1), step.sum(-1), (g**2).sum(-1), g.sum(-1)], -1)

    def simulate(self, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The statistics S ``[n, 4]`` of one path per θ = (c, h) ``[n, 2]``."""
        return self.statistics(self.trajectory(theta, generator))

    def log_likelihood(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The exact log-likelihood of the observed path for θ ``[n, 2]``, up to a θ-independent
        constant, from its statistics x = S ``[4]``: −[2Δt (h S₁ + c S₂) + Δt² (h² S₃ + 2 h c S₄ + K c²)] / 4Δt."""
        c, h = theta[:, 0], theta[:, 1]
        s = x.to(theta.dtype)
        quadratic = 2 * self.dt * (h * s[0] + c * s[1]) + self.dt**2 * (h**2 * s[2] + 2 * h * c * s[3]
                                                                         + self.steps * c**2)
        return -quadratic / (4 * self.dt)

    def reference_posterior(self, x_obs: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
        """Metropolis on log prior + the exact log-likelihood (:func:`~mlmol.implicit.inference.sample_posterior`):
        ``[n, 2]`` (float64) for statistics ``x_obs`` ``[4]``."""
        return sample_posterior(lambda theta: self.log_likelihood(theta, x_obs), self.prior, n, seed=seed)
