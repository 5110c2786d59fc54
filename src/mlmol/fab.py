"""Flow annealed importance sampling bootstrap (FAB; Midgley et al., ICLR 2023): training a flow q
from the energy alone by minimising the α-divergence D_α(p‖q) (α = 2: the variance of the importance
weights), its gradient estimated with AIS from q towards p^α q^(1−α), optionally through a
prioritised replay buffer of AIS samples.

Without the buffer each step's loss is −Σᵢ w̄ᵢ log q(xᵢ), with xᵢ and w̄ᵢ (self-normalised) from AIS
targeting p^α q^(1−α): an estimate of the gradient of D_α up to a positive factor. With the buffer
every AIS batch is stored with its log weight and the log q it was drawn under; each step samples the
buffer in proportion to the weights (without replacement) and corrects for the flow having moved
since: loss = −mean (q_old(x) / q(x))^(α−1) log q(x), after which the stored weights and log q are
updated to the current flow.
"""

from __future__ import annotations

import math

import torch

from .errors import MlmolError
from .losses import Batch, Loss
from .samplers.ais import adapted_step, annealed_importance_sampling
from .systems import Energy


class ReplayBuffer:
    """A prioritised replay buffer: AIS samples ``x`` ``[capacity, dim]`` with their log weights and the
    log q under which the weights hold; the oldest entries are overwritten first.

    Arguments:
        dim: the dimension of x.
        capacity: the most samples kept.
        min_length: samples needed before the first draw (the loss fills the buffer up to it).

    Example:
        >>> buffer = ReplayBuffer(dim=2, capacity=8, min_length=4)
        >>> buffer.add(torch.zeros(4, 2), torch.tensor([0.0, -1e9, -1e9, -1e9]), torch.zeros(4))
        >>> buffer.sample(1, torch.Generator().manual_seed(0)).tolist()  # the one sample with weight
        [0]
    """

    def __init__(self, dim: int, capacity: int, min_length: int):
        if not 0 < min_length <= capacity:
            raise MlmolError(f"the replay buffer needs 0 < min_length ≤ capacity, got {min_length} and {capacity}")
        self.dim, self.capacity, self.min_length = dim, capacity, min_length
        self.x = torch.zeros(capacity, dim, dtype=torch.float64)
        self.log_w = torch.full((capacity,), -math.inf, dtype=torch.float64)
        self.log_q = torch.zeros(capacity, dtype=torch.float64)
        self.next, self.length = 0, 0

    def __len__(self) -> int:
        return self.length

    @property
    def ready(self) -> bool:
        """Whether the buffer holds ``min_length`` samples."""
        return self.length >= self.min_length

    def add(self, x: torch.Tensor, log_w: torch.Tensor, log_q: torch.Tensor) -> None:
        """Store ``x`` ``[n, dim]``, their log weights ``[n]`` and log q ``[n]``."""
        index = (self.next + torch.arange(len(x))) % self.capacity
        self.x[index] = x.detach().double().cpu()
        self.log_w[index] = torch.nan_to_num(log_w.detach().double().cpu(), nan=-math.inf, neginf=-math.inf)
        self.log_q[index] = log_q.detach().double().cpu()
        self.next = int(self.next + len(x)) % self.capacity
        self.length = min(self.capacity, self.length + len(x))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Up to ``n`` distinct indices drawn in proportion to the weights without replacement (Gumbel top-k,
        then shuffled; as FAB does, so a draw of a large part of the buffer flattens the proportions);
        entries of weight zero are never drawn, so fewer than ``n`` come back when fewer have weight."""
        if not self.ready:
            raise MlmolError(f"the replay buffer holds {self.length} samples; it needs {self.min_length} to be sampled")
        if n > self.length:
            raise MlmolError(f"cannot draw {n} distinct samples from a buffer of {self.length}")
        logits = self.log_w[: self.length]
        uniform = torch.rand(self.length, generator=generator, dtype=torch.float64, device=generator.device).cpu()
        top = torch.topk(logits - torch.log(-torch.log(uniform)), n).indices
        top = top[torch.isfinite(logits[top])]
        if len(top) == 0:
            raise MlmolError("every sample in the replay buffer has weight zero (non-finite energies or densities); "
                             "check the energy where the flow samples, or lower the learning rate")
        return top[torch.randperm(len(top), generator=generator, device=generator.device).cpu()]

    def adjust(self, index: torch.Tensor, log_q: torch.Tensor, alpha: float) -> None:
        """Move the weights of ``index`` to the current flow: log w += (1 − α)(log q − log q_old) and
        log q_old = log q. Entries whose new log q is not finite get weight zero."""
        log_q = log_q.detach().double().cpu()
        finite = torch.isfinite(log_q)
        self.log_w[index] = torch.where(finite, self.log_w[index] + (1 - alpha) * (log_q - self.log_q[index]),
                                        torch.full_like(log_q, -math.inf))
        self.log_q[index] = torch.where(finite, log_q, self.log_q[index])

    def state_dict(self) -> dict:
        """Everything a checkpoint needs to continue bit for bit."""
        return {"x": self.x.clone(), "log_w": self.log_w.clone(), "log_q": self.log_q.clone(), "next": self.next,
                "length": self.length}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.x, self.log_w, self.log_q = state["x"].clone(), state["log_w"].clone(), state["log_q"].clone()
        self.next, self.length = int(state["next"]), int(state["length"])


class FAB(Loss):
    """FAB's α-divergence loss with AIS towards p^α q^(1−α) (see the module docstring).

    Arguments:
        system: the target (reduced energy u; p ∝ exp(−u)).
        levels: intermediate AIS distributions between q and p^α q^(1−α) (equally spaced in β).
        step_size: the initial MALA step (adapted towards ``acceptance`` when ``adapt``).
        moves: MALA steps per intermediate distribution.
        alpha: the divergence's α (2 in the paper).
        buffer: a :class:`ReplayBuffer`, or None to train on each AIS batch once.
        updates: gradient steps per AIS batch with the buffer (each on a fresh buffer draw).
        acceptance: the target MALA acceptance of the step-size adaptation.
        adapt: adapt the step size between AIS batches (each AIS run uses one fixed step, so its
            weights stay exact).

    Each step reports ``evaluations``: the target energy evaluations it made (AIS start points and
    every MALA proposal).
    """

    name = "fab"

    def __init__(self, system: Energy, levels: int = 1, step_size: float = 0.5, moves: int = 1, alpha: float = 2.0,
                 buffer: ReplayBuffer | None = None, updates: int = 4, acceptance: float = 0.65,
                 adapt: bool = True):
        if levels < 0 or moves < 1 or updates < 1 or not step_size > 0:
            raise MlmolError("FAB needs levels ≥ 0, moves ≥ 1, updates ≥ 1 and a positive step size")
        self.system, self.levels, self.moves, self.alpha = system, levels, moves, alpha
        self.step_size, self.buffer, self.updates = float(step_size), buffer, updates
        self.acceptance, self.adapt = acceptance, adapt
        self.pending: torch.Tensor | None = None  # buffer indices drawn for the coming steps
        self.last_acceptance: float | None = None

    def ais(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """``batch_size`` AIS samples from the flow towards p^α q^(1−α): x, log w, log q and metrics."""
        flow = batch.flow
        with torch.no_grad():
            x = flow.sample(batch.batch_size, generator=batch.generator)
        betas = torch.linspace(0, 1, self.levels + 2)
        out = annealed_importance_sampling(x, flow.log_prob, self.system, betas, self.step_size, batch.generator,
                                           alpha=self.alpha, moves=self.moves)
        with torch.no_grad():
            log_q = flow.log_prob(out.x)
        metrics = {"evaluations": out.evaluations}
        if len(out.acceptance):
            self.last_acceptance = float(out.acceptance.mean())
            if self.adapt:
                self.step_size = adapted_step(self.step_size, self.last_acceptance, self.acceptance)
        return out.x, out.log_weights, log_q, metrics

    def _report(self) -> dict:
        """The latest AIS batch's acceptance and the step size, reported every step (a batch serves several)."""
        return {"ais_step_size": self.step_size, "ais_acceptance": self.last_acceptance}

    def __call__(self, batch):
        flow = batch.flow
        if self.buffer is None:
            x, log_w, _, metrics = self.ais(batch)
            weights = torch.softmax(torch.nan_to_num(log_w, nan=-math.inf, neginf=-math.inf), 0)
            value = -(weights * flow.log_prob(x)).sum()
            return value, {"fab": float(value.detach()), **metrics, **self._report()}
        metrics = {"evaluations": 0}
        if self.pending is None or len(self.pending) == 0:
            while True:  # one new AIS batch per `updates` steps; more at first, to fill the buffer
                x, log_w, log_q, ais_metrics = self.ais(batch)
                self.buffer.add(x, log_w, log_q)
                metrics = {**ais_metrics, "evaluations": metrics["evaluations"] + ais_metrics["evaluations"]}
                if self.buffer.ready:
                    break
            self.pending = self.buffer.sample(min(self.updates * batch.batch_size, len(self.buffer)), batch.generator)
        index, self.pending = self.pending[: batch.batch_size], self.pending[batch.batch_size:]
        x = self.buffer.x[index].to(device=flow.device, dtype=flow.dtype)
        log_q = flow.log_prob(x)
        log_q_old = self.buffer.log_q[index].to(log_q)
        correction = torch.exp((1 - self.alpha) * (log_q.detach() - log_q_old))
        correction = torch.nan_to_num(correction, nan=0.0, posinf=0.0)
        value = -(correction * torch.nan_to_num(log_q, nan=0.0, neginf=0.0)).mean()
        self.buffer.adjust(index, log_q, self.alpha)
        return value, {"fab": float(value.detach()), "buffer": len(self.buffer), **metrics, **self._report()}

    def state_dict(self) -> dict:
        """The step size, the pending draw and the buffer (a resume continues bit for bit)."""
        return {"step_size": self.step_size, "pending": self.pending, "acceptance": self.last_acceptance,
                "buffer": None if self.buffer is None else self.buffer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.step_size, self.pending = state["step_size"], state["pending"]
        self.last_acceptance = state.get("acceptance")
        if self.buffer is not None and state.get("buffer") is not None:
            self.buffer.load_state_dict(state["buffer"])

    def __repr__(self) -> str:
        replay = "" if self.buffer is None else f", buffer={self.buffer.capacity}, updates={self.updates}"
        return f"FAB({self.system.name}, alpha={self.alpha:g}, levels={self.levels}{replay})"
