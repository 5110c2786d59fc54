"""Temperature annealing from the energy alone (after Schopmans & Friederich, ICML 2025): train the flow
by reverse KL at a high temperature, where it covers the metastable states, then walk down a ladder of
temperatures, each step maximum likelihood on the flow's own samples importance-weighted to the next
temperature (:class:`ReweightedML`).
"""

from __future__ import annotations

import math

import torch

from .errors import MlmolError
from .estimators import ess_fraction
from .losses import Batch, Loss
from .systems import Energy


class ReweightedML(Loss):
    """−E_p[log q] estimated on a pool of the flow's own samples, weighted to the target p ∝ exp(−u).

    Every ``refresh`` steps the flow draws ``pool`` samples (no gradient) and weighs them by
    log w = −u(x) − log q(x); each step trains by maximum likelihood on ``batch_size`` of them drawn
    in proportion to w (with replacement). The pool's effective sample fraction is reported as
    ``pool_ess``; it is the overlap between the flow and the next temperature, so a small value says
    the ladder's steps are too large.

    Arguments:
        system: the target, typically :class:`~mlmol.systems.Tempered` at the ladder's next temperature.
        pool: samples drawn per refresh.
        refresh: steps between refreshes of the pool.
        chunk: samples drawn per call of the flow when the pool is refreshed (memory).
    """

    name = "rml"

    def __init__(self, system: Energy, pool: int = 20_000, refresh: int = 100, chunk: int = 10_000):
        if pool < 2 or refresh < 1 or chunk < 1:
            raise MlmolError("ReweightedML needs a pool of at least 2 samples, refresh ≥ 1 and chunk ≥ 1")
        self.system, self.pool, self.refresh, self.chunk = system, pool, refresh, chunk
        self.x: torch.Tensor | None = None
        self.log_w: torch.Tensor | None = None
        self.age = 0

    def draw(self, batch: Batch) -> dict:
        """Refresh the pool from the current flow; returns the metrics of the draw."""
        xs, log_ws = [], []
        with torch.no_grad():
            for start in range(0, self.pool, self.chunk):
                x, log_q = batch.flow.sample_with_log_prob(min(self.chunk, self.pool - start), generator=batch.generator)
                u = self.system.energy(x)
                xs.append(x)
                log_ws.append(torch.nan_to_num(-u - log_q, nan=-math.inf, posinf=-math.inf).double())
        self.x, self.log_w, self.age = torch.cat(xs), torch.cat(log_ws), 0
        if not bool(torch.isfinite(self.log_w).any()):
            raise MlmolError(f"none of the flow's {self.pool} samples has a finite energy at {self.system.name}; "
                             "train longer at the higher temperature or add temperatures to the ladder")
        return {"evaluations": self.pool, "pool_ess": ess_fraction(self.log_w)}

    def __call__(self, batch):
        metrics = {}
        if self.x is None or self.age >= self.refresh:
            metrics = self.draw(batch)
        probabilities = torch.softmax(self.log_w, 0)
        index = torch.multinomial(probabilities, batch.batch_size, replacement=True, generator=batch.generator)
        self.age += 1
        value = -batch.flow.log_prob(self.x[index.to(self.x.device)]).mean()
        return value, {"rml": float(value.detach()), **metrics}

    def state_dict(self) -> dict:
        """The pool and its age (a resume continues bit for bit)."""
        return {"x": self.x, "log_w": self.log_w, "age": self.age}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.x, self.log_w, self.age = state["x"], state["log_w"], state["age"]

    def __repr__(self) -> str:
        return f"ReweightedML({self.system.name}, pool={self.pool}, refresh={self.refresh})"


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
