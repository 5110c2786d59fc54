"""The training schedule of Noé et al., Science 2019: ML pre-training, then ML + KL (+ RC)."""

from __future__ import annotations

import torch

from ..errors import MlmolError
from ..losses import ForwardKL, ReactionCoordinate, ReverseKL
from ..systems import Energy
from ..train import Recipe, Stage

LOSSES = ("ml", "ml+kl", "ml+kl+rc", "kl")


def noe2019(system: Energy, data: torch.Tensor | None, losses: str = "ml+kl+rc", steps: int = 3000,
            ml_fraction: float = 0.2, ml_batch: int = 256, ml_lr: float = 1e-3, batch: int = 1000,
            lr: float = 5e-4, w_ml: float = 1.0, w_kl: float = 1.0, w_rc: float = 1.0,
            high: float = 1e3, cap: float = 1e6, ml_lr_end: float | None = None,
            lr_end: float | None = None, validation: float = 0.0) -> Recipe:
    """ML pre-training for ``ml_fraction`` of ``steps``, then the combined losses.

    ``losses`` picks the terms of the second stage: "ml" (ML only throughout), "ml+kl",
    "ml+kl+rc" (the paper's full schedule) or "kl" (energy only, no pre-training). RC
    spreads samples along ``system.rc``; systems without one fall back to "ml+kl".
    ``ml_lr_end`` and ``lr_end`` (optional) anneal each stage's learning rate on a cosine.
    ``validation`` is the fraction of ``data`` (a fixed random subset) kept out of training
    to log the validation loss.
    """
    if losses not in LOSSES:
        raise MlmolError(f"unknown loss combination {losses!r}; choose one of {', '.join(LOSSES)}")
    if not 0.0 <= validation < 1.0:
        raise MlmolError(f"validation must be a fraction in [0, 1), got {validation}")
    held = None
    if data is not None and validation > 0:
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
        n_held = max(1, int(round(validation * len(data))))
        data, held = data[order[n_held:]], data[order[:n_held]]
    terms = set(losses.split("+"))
    if "ml" in terms and (data is None or len(data) == 0):
        raise MlmolError(f"--losses {losses} learns from data, and this run has none: give it a sampler "
                         "(data.sampler) or train from the energy alone with --losses kl, fab or ta")
    kl = ReverseKL(system, high=high, cap=cap)
    if terms == {"kl"}:
        return Recipe([Stage(steps, kl, lr=lr, batch_size=batch, name="kl", lr_end=lr_end)], system, data,
                      validation=held)
    pre = int(round(steps * ml_fraction))
    second = w_ml * ForwardKL()
    if "kl" in terms:
        second = second + w_kl * kl
    if "rc" in terms and system.rc is not None:
        index, lo, hi = system.rc
        second = second + w_rc * ReactionCoordinate(index, lo, hi)
    stages = [Stage(pre, ForwardKL(), lr=ml_lr, batch_size=ml_batch, name="ml", lr_end=ml_lr_end),
              Stage(steps - pre, second, lr=lr, batch_size=batch, data_batch_size=ml_batch, name=losses,
                    lr_end=lr_end)]
    return Recipe([s for s in stages if s.steps > 0], system, data, validation=held)
