"""Temperature annealing from the energy alone (after Schopmans & Friederich, ICML 2025): train the flow
by reverse KL at a high temperature, where it covers the metastable states, then walk down a ladder of
temperatures, each step maximum likelihood on the flow's own samples importance-weighted to the next
temperature (:class:`ReweightedML`; :class:`ReweightedFlowMatching` for continuous flows, whose density has
no gradient: then the ladder starts from the untrained flow, without the reverse KL stage).
"""

from __future__ import annotations

import math

import torch

from .data import zero_weight_nonfinite
from .errors import MlmolError
from .estimators import ess_fraction
from .losses import Batch, Loss, flow_matching
from .samplers.ais import adapted_step, annealed_importance_sampling
from .systems import Energy, State


class ReweightedPool(Loss):
    """A pool of the flow's own samples weighted to a target p ∝ exp(−u), for fitting the flow to p
    (the base of :class:`ReweightedML` and :class:`ReweightedFlowMatching`).

    Every ``refresh`` steps the flow draws ``pool`` samples (no gradient) and weighs them by
    log w = −u(x) − log q(x); each step fits the flow to ``batch_size`` of them drawn in proportion to
    w (with replacement). The pool's effective sample fraction is reported as ``pool_ess``; it is the
    overlap between the flow and the target, so a small value on a temperature ladder says its steps
    are too large. With ``levels`` > 0 each pool is moved towards the target by annealed importance
    sampling (that many intermediate distributions, one MALA step each, the step size adapted between
    draws towards acceptance 0.65), which raises the overlap at the cost of more energy evaluations.
    With ``clip`` > 0 the largest fraction ``clip`` of the log weights is lowered to the smallest of them
    before fitting (as TA-BG does with 1e-4): no single sample then dominates the fit, at a small bias
    that the final importance weights, computed afresh, do not carry. ``pool_ess`` is the unclipped overlap.
    With ``min_ess`` > 0 a pool whose ESS fraction is below it is fitted with its log weights times the
    largest α < 1 that lifts it to ``min_ess`` (reported as ``pool_power``; the clip, applied after, lifts it
    further): the fit's target is then
    q^(1−α) p^α, a partial step from the flow q towards p, as adaptive tempering in sequential Monte Carlo
    chooses its steps, so that a pool dominated by a few samples does not collapse the flow onto them;
    later rungs, whose pools overlap better, take the whole step. For a system with ``states`` every draw
    also reports the first state's probability: in the flow's samples (``pool_state_flow``), weighted to the
    target (``pool_state``) and under the weights the flow is fitted to (``pool_state_fit``).

    Arguments:
        system: the target, typically :class:`~mlmol.systems.Tempered` at the ladder's next temperature.
        pool: samples drawn per refresh.
        refresh: steps between refreshes of the pool.
        chunk: samples drawn per call of the flow when the pool is refreshed (memory).
        levels: AIS intermediate distributions between the flow and the target (0: plain importance weights).
        step_size: the initial MALA step of the AIS moves.
        clip: the fraction of largest log weights clipped (0: none).
        min_ess: the smallest ESS fraction of the weights the flow is fitted to (0: plain weights).
    """

    name = "pool"

    def __init__(self, system: Energy, pool: int = 20_000, refresh: int = 100, chunk: int = 10_000, levels: int = 0,
                 step_size: float = 0.01, clip: float = 0.0, min_ess: float = 0.0):
        if (pool < 2 or refresh < 1 or chunk < 1 or levels < 0 or not step_size > 0 or not 0 <= clip < 1
                or not 0 <= min_ess < 1):
            raise MlmolError(f"{type(self).__name__} needs a pool of at least 2 samples, refresh ≥ 1, chunk ≥ 1, "
                             "levels ≥ 0, a positive step size, a clipped fraction in [0, 1) and a smallest "
                             "ESS fraction in [0, 1)")
        self.system, self.pool, self.refresh, self.chunk = system, pool, refresh, chunk
        self.levels, self.step_size, self.clip, self.min_ess = levels, float(step_size), clip, min_ess
        self.x: torch.Tensor | None = None
        self.log_w: torch.Tensor | None = None
        self.age = 0
        self.pool_ess: float | None = None
        self.draw_metrics: dict = {}

    def draw(self, batch: Batch) -> dict:
        """Refresh the pool from the current flow; returns the metrics of the draw."""
        xs, log_ws, evaluations = [], [], 0
        for start in range(0, self.pool, self.chunk):
            with torch.no_grad():
                x, log_q = batch.flow.sample_with_log_prob(min(self.chunk, self.pool - start), generator=batch.generator)
            if self.levels:  # AIS moves the pool towards the target: weights of a better overlap
                out = annealed_importance_sampling(x, batch.flow.log_prob, self.system,
                                                   torch.linspace(0, 1, self.levels + 2), self.step_size,
                                                   batch.generator)
                x, log_w, evaluations = out.x, out.log_weights, evaluations + out.evaluations
                self.step_size = adapted_step(self.step_size, float(out.acceptance.mean()))  # for the next draw
            else:
                with torch.no_grad():
                    log_w = -self.system.energy(x) - log_q
                evaluations += len(x)
            xs.append(x.detach())
            log_ws.append(zero_weight_nonfinite(log_w.detach()).double())
        self.x, self.log_w, self.age = torch.cat(xs), torch.cat(log_ws), 0
        self.pool_ess = ess_fraction(self.log_w)  # reported every step, as the pool serves several
        if not bool(torch.isfinite(self.log_w).any()):
            raise MlmolError(f"none of the flow's {self.pool} samples has a finite energy at {self.system.name}; "
                             "train longer at the higher temperature or add temperatures to the ladder")
        target_log_w = self.log_w
        power = weight_power(self.log_w, self.min_ess) if self.min_ess else 1.0
        if power < 1:
            self.log_w = self.log_w * power
        if self.clip:
            largest = torch.topk(self.log_w, math.ceil(self.clip * len(self.log_w))).values
            self.log_w = torch.minimum(self.log_w, largest[-1])
        self.draw_metrics = {"pool_power": power}
        if self.system.states is not None:  # which share of the first state the flow keeps, and is taught
            inside = State(self.system.states[0], self.system.variables)(self.x).double()
            self.draw_metrics.update(
                pool_state_flow=float(inside.mean()),
                pool_state=float((torch.softmax(target_log_w, 0) * inside).sum()),
                pool_state_fit=float((torch.softmax(self.log_w, 0) * inside).sum()))
        return {"evaluations": evaluations}

    def points(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        """This step's ``batch_size`` pool points, drawn in proportion to their weights, and metrics."""
        metrics = {}
        if self.x is None or self.age >= self.refresh:
            metrics = self.draw(batch)
        index = torch.multinomial(torch.softmax(self.log_w, 0), batch.batch_size, replacement=True,
                                  generator=batch.generator)
        self.age += 1
        return self.x[index.to(self.x.device)], {"pool_ess": self.pool_ess, **self.draw_metrics, **metrics}

    def state_dict(self) -> dict:
        """The pool, its age and the AIS step size (a resume continues bit for bit)."""
        return {"x": self.x, "log_w": self.log_w, "age": self.age, "step_size": self.step_size,
                "pool_ess": self.pool_ess, "draw_metrics": self.draw_metrics}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.x, self.log_w, self.age = state["x"], state["log_w"], state["age"]
        self.step_size = state.get("step_size", self.step_size)
        self.pool_ess = state.get("pool_ess", None if self.log_w is None else ess_fraction(self.log_w))
        self.draw_metrics = state.get("draw_metrics", {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.system.name}, pool={self.pool}, refresh={self.refresh})"


class ReweightedML(ReweightedPool):
    """−E_p[log q] on the weighted pool (:class:`ReweightedPool`): maximum likelihood towards the target."""

    name = "rml"

    def __call__(self, batch):
        x, metrics = self.points(batch)
        value = -batch.flow.log_prob(x).mean()
        return value, {"rml": float(value.detach()), **metrics}


class ReweightedFlowMatching(ReweightedPool):
    """Flow matching (:func:`~mlmol.losses.flow_matching`) towards the weighted pool's points, for flows
    whose density has no gradient (the equivariant continuous flow).

    Arguments:
        sigma: the path noise of flow matching.
        align: align base points to their targets (equivariant OT).
    """

    name = "rfm"

    def __init__(self, system: Energy, pool: int = 20_000, refresh: int = 100, chunk: int = 10_000,
                 sigma: float = 0.01, align: bool = True, clip: float = 0.0, min_ess: float = 0.0):
        # no AIS: the continuous flow's density has no gradient
        super().__init__(system, pool, refresh, chunk, clip=clip, min_ess=min_ess)
        self.sigma, self.align = sigma, align

    def __call__(self, batch):
        x, metrics = self.points(batch)
        value = flow_matching(batch.flow, x, batch.generator, self.sigma, self.align)
        return value, {"rfm": float(value.detach()), **metrics}


def weight_power(log_w: torch.Tensor, min_ess: float, iterations: int = 50) -> float:
    """The largest α in (0, 1] with ESS fraction of α · ``log_w`` at least ``min_ess`` (bisection; 1 when
    the weights themselves reach it). ``log_w`` ``[n]``; −∞ entries stay zero weights, so when fewer than
    ``min_ess`` of the weights are finite no α reaches it and the smallest positive α tried (nearly flat
    weights over the finite ones) is returned.

    Example:
        >>> log_w = torch.tensor([0.0, 0.0, 0.0, 10.0])
        >>> alpha = weight_power(log_w, 0.5)
        >>> round(alpha, 3), round(ess_fraction(alpha * log_w), 3)
        (0.187, 0.5)
    """
    if ess_fraction(log_w) >= min_ess:
        return 1.0
    low, high = 0.0, 1.0  # ESS(low · log w) ≥ min_ess > ESS(high · log w)
    for _ in range(iterations):
        middle = (low + high) / 2
        if ess_fraction(middle * log_w) >= min_ess:
            low = middle
        else:
            high = middle
    return low if low > 0 else high  # never 0: 0 · (−∞) would be NaN


def ladder(high: float, count: int) -> list[float]:
    """``count`` temperature factors from ``high`` down to 1, equally spaced in log T.

    Example:
        >>> [round(f, 3) for f in ladder(4.0, 3)]
        [4.0, 2.0, 1.0]
    """
    if not high > 1 or count < 2:
        raise MlmolError(f"a temperature ladder needs a highest factor above 1 and at least 2 temperatures, got "
                         f"{high} and {count}")
    return [high ** (1 - i / (count - 1)) for i in range(count)]
