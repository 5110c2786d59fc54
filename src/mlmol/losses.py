"""Training losses as composable objects: ``ForwardKL() + 0.5 * ReverseKL(system)``.

Each loss maps a :class:`Batch` to a scalar tensor and a dict of metrics. Generated
samples are drawn once per batch and shared by every loss that needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .errors import MlmolError
from .flows import FlowModel
from .flows.equivariant import EquivariantFlow
from .flows.equivariant import align as _align
from .systems import Energy


def linlog(u: torch.Tensor, high: float, cap: float) -> torch.Tensor:
    """Regularised energy: u below ``high``, high + log(1 + u − high) above, at most ``cap``.

    NaN and +inf become ``cap`` (their gradients are zeroed by the caller).
    """
    finite = torch.isfinite(u)
    u = torch.where(finite, u, torch.zeros_like(u))
    soft = high + torch.log1p(torch.clamp(u - high, min=0.0))
    regular = torch.clamp(torch.where(u > high, soft, u), max=cap)
    return torch.where(finite, regular, torch.full_like(u, cap))


class Diverged(MlmolError):
    """Raised by a loss when this step cannot be taken (e.g. every local energy non-finite, a
    variance explosion): a recipe with ``max_recoveries`` goes back to its last checkpoint."""


@dataclass
class Batch:
    """What one training step sees: the ``model`` being trained (a flow, a neural operator, a
    wavefunction), the system, the training data and the step's random generator. Draws data
    and flow samples lazily, in a fixed order."""

    model: torch.nn.Module
    system: Energy | None
    data: torch.Tensor | None
    generator: torch.Generator
    batch_size: int = 1000
    data_batch_size: int | None = None
    _generated: dict = field(default_factory=dict)
    _data_x: torch.Tensor | None = None

    @property
    def flow(self) -> FlowModel:
        """The model as a flow (for the losses of Boltzmann generators)."""
        if not isinstance(self.model, FlowModel):
            raise MlmolError(f"this loss trains a flow, not a {type(self.model).__name__}")
        return self.model

    def data_x(self) -> torch.Tensor:
        """This step's data batch ``[data_batch_size, dim]``, drawn once with the step's generator."""
        if self._data_x is None:
            if self.data is None or len(self.data) == 0:
                raise MlmolError("the ML loss needs training data; pass data or drop the ML term")
            m = self.data_batch_size or self.batch_size
            idx = torch.randint(len(self.data), (m,), generator=self.generator, device=self.generator.device)
            self._data_x = self.data[idx.to(self.data.device)]
        return self._data_x

    def generated(self, tau: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow samples x and log q(x) at latent temperature τ = ``tau``, drawn once per batch."""
        if tau not in self._generated:
            x, log_q = self.flow.sample_with_log_prob(self.batch_size, tau, self.generator)
            if x.requires_grad:  # NaN gradients at non-finite energies must not reach the weights
                x.register_hook(lambda g: torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0))
            self._generated[tau] = (x, log_q)
        return self._generated[tau]


class Loss:
    """Base class: ``loss(batch) -> (value, metrics)``. Add losses and scale them by numbers.

    A loss that evaluates the target energy reports how many configurations it evaluated this step
    as ``metrics["evaluations"]`` (the field's cost measure; :func:`mlmol.fit` keeps the running total).

    A loss with state that must survive a resume (e.g. MCMC walkers) returns it from
    :meth:`state_dict` and takes it back in :meth:`load_state_dict`; the checkpoint holds it.
    """

    name = "loss"

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """What a checkpoint must hold to continue this loss bit for bit (nothing by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""

    def __add__(self, other: Loss) -> Sum:
        return Sum(_terms(self) + _terms(other))

    def __rmul__(self, weight: float) -> Sum:
        return Sum([(float(weight) * w, loss) for w, loss in _terms(self)])

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _terms(loss: Loss) -> list[tuple[float, Loss]]:
    return list(loss.terms) if isinstance(loss, Sum) else [(1.0, loss)]


class Sum(Loss):
    """A weighted sum of losses; metrics of every term are reported under its name, and their target
    energy ``evaluations`` are added up."""

    def __init__(self, terms: list[tuple[float, Loss]]):
        self.terms = [(w, loss) for w, loss in terms if w != 0.0]

    def __call__(self, batch):
        total, metrics = 0.0, {}
        for w, loss in self.terms:
            value, m = loss(batch)
            total = total + w * value
            evaluations = metrics.get("evaluations", 0) + m.get("evaluations", 0)
            metrics.update(m)
            if evaluations:
                metrics["evaluations"] = evaluations
        return total, metrics

    def __repr__(self) -> str:
        return " + ".join(f"{w:g} * {loss!r}" for w, loss in self.terms) or "Sum([])"


class ForwardKL(Loss):
    """Maximum likelihood on data (the paper's J_ML): −E_data[log q(x)]."""

    name = "ml"

    def __call__(self, batch):
        value = -batch.flow.log_prob(batch.data_x()).mean()
        return value, {"ml": float(value.detach())}


class ReverseKL(Loss):
    """Reverse KL on the energy (the paper's J_KL): E_q[u(x)/τ + log q(x)] = KL(q‖p) − log Z.

    Energies above ``high`` are regularised linearly-logarithmically and capped at ``cap``;
    the counts of regularised and of non-finite energies are reported, never hidden.
    """

    name = "kl"

    def __init__(self, system: Energy, tau: float = 1.0, high: float = 1e3, cap: float = 1e6):
        self.system, self.tau, self.high, self.cap = system, tau, high, cap

    def __call__(self, batch):
        x, log_q = batch.generated(self.tau)
        u = self.system.energy(x) / self.tau
        finite = torch.isfinite(u)
        value = (linlog(u, self.high, self.cap) + log_q).mean()
        return value, {"kl": float(value.detach()), "n_high_energy": int((u > self.high).sum()),
                       "n_nonfinite_energy": int((~finite).sum()), "evaluations": len(x)}

    def __repr__(self):
        return f"ReverseKL({self.system.name}, tau={self.tau:g})"


class ReactionCoordinate(Loss):
    """The paper's RC loss: minus the entropy of generated samples along a coordinate.

    A soft histogram (Gaussian kernels at ``bins`` centres in [lo, hi]) of r(x) = x[index]
    over the batch; minimising −H spreads samples along r, including the barrier.
    """

    name = "rc"

    def __init__(self, index: int, lo: float, hi: float, bins: int = 11):
        self.index, self.lo, self.hi, self.bins = index, lo, hi, bins

    def __call__(self, batch):
        x, _ = batch.generated(1.0)
        r = x[:, self.index]
        centres = torch.linspace(self.lo, self.hi, self.bins, dtype=r.dtype, device=r.device)
        width = (self.hi - self.lo) / (self.bins - 1)
        membership = torch.softmax(-0.5 * ((r[:, None] - centres) / width) ** 2, dim=1)
        hist = membership.mean(0)
        entropy = -(hist * torch.log(hist + 1e-12)).sum()
        return -entropy, {"rc_entropy": float(entropy.detach())}

    def __repr__(self):
        return f"ReactionCoordinate(x{self.index} in [{self.lo:g}, {self.hi:g}])"


class FlowMatching(Loss):
    """Conditional flow matching on straight paths: E‖v(t, x_t) − (x₁ − x₀)‖² / dim.

    x₀ is a base sample, x₁ a data point (centred), x_t = (1 − t) x₀ + t x₁ + σ ε. With
    ``align=True`` each x₀ is first permuted and rotated onto its x₁ (equivariant OT, Klein et al.
    2023), which straightens the paths; since the velocity is equivariant, the result is the
    flow-matching field of the symmetrised data.
    """

    name = "fm"

    def __init__(self, sigma: float = 0.01, align: bool = True):
        self.sigma, self.align = sigma, align

    def __call__(self, batch):
        value = flow_matching(batch.flow, batch.data_x(), batch.generator, self.sigma, self.align)
        return value, {"fm": float(value.detach())}

    def __repr__(self) -> str:
        return f"FlowMatching(sigma={self.sigma:g}, align={self.align})"


def flow_matching(flow: FlowModel, x1: torch.Tensor, generator: torch.Generator, sigma: float = 0.01,
                  align: bool = True) -> torch.Tensor:
    """The conditional flow-matching loss of :class:`FlowMatching` on the targets ``x1`` ``[n, dim]``."""
    if not isinstance(flow, EquivariantFlow):
        raise MlmolError("flow matching (recipe klein2023) trains an EquivariantFlow (flow kind equivariant); "
                         "train coupling flows with the noe2019 recipe (ML and KL)")
    x1 = flow.centre(x1)
    x0 = flow.base_sample(len(x1), generator=generator)
    if align:
        x0 = _align(x0, x1, flow.n_particles, flow.spatial_dim)
    t = torch.rand(len(x1), 1, generator=generator, dtype=x1.dtype, device=x1.device)
    noise = flow.base_sample(len(x1), generator=generator)
    xt = (1 - t) * x0 + t * x1 + sigma * noise
    return ((flow.velocity(t[:, 0], xt) - (x1 - x0)) ** 2).mean()
