"""Temperature-annealed Boltzmann generators (after Schopmans & Friederich, ICML 2025): reverse KL at a
high temperature, then maximum likelihood on reweighted samples down a ladder to the system's."""

from __future__ import annotations

import torch

from ..annealing import ReweightedFlowMatching, ReweightedML, ladder
from ..errors import MlmolError
from ..losses import ReverseKL
from ..systems import Energy, Tempered
from ..train import Recipe, Stage


def schopmans2025(system: Energy, data: torch.Tensor | None, steps: int = 5000, kl_fraction: float = 0.5,
                  high: float = 4.0, temperatures: int = 4, batch: int = 256, lr: float = 5e-4,
                  lr_end: float | None = None, anneal_lr: float = 1e-4, pool: int = 20_000, refresh: int = 100,
                  energy_high: float = 1e3, cap: float = 1e6, grad_clip: float = 100.0, fit: str = "ml",
                  levels: int = 0, step_size: float = 0.01, clip: float = 0.0, min_ess: float = 0.0) -> Recipe:
    """Reverse KL at ``high`` times the system's temperature for ``kl_fraction`` of ``steps``, then the
    rest split evenly over the ``temperatures − 1`` lower rungs of :func:`~mlmol.annealing.ladder`
    (geometric down to the system's temperature), each trained by
    :class:`~mlmol.annealing.ReweightedML` on pools of ``pool`` samples refreshed every ``refresh``
    steps, at learning rate ``anneal_lr``. ``energy_high`` and ``cap`` regularise the KL stage's energies
    as in :class:`~mlmol.losses.ReverseKL`. With ``levels`` > 0 each pool is moved to its rung by AIS
    (``levels`` intermediate distributions, MALA from ``step_size``); ``clip`` is the fraction of each
    pool's largest weights clipped and ``min_ess`` the smallest ESS fraction of the weights a rung is fitted
    to (:class:`~mlmol.annealing.ReweightedPool`). ``data`` are not used.

    With ``kl_fraction`` = 0 there is no reverse KL stage: the ladder starts at ``high`` itself, its first
    rung fitted to the untrained flow's own samples reweighted (mass covering where reverse KL is mode
    seeking). ``fit="fm"`` (flows whose density has no gradient, e.g. the equivariant flow) fits every
    rung by :class:`~mlmol.annealing.ReweightedFlowMatching` instead and needs ``kl_fraction`` = 0.
    """
    if fit not in ("ml", "fm"):
        raise MlmolError(f"unknown fit {fit!r} for temperature annealing; choose ml or fm")
    if fit == "fm" and kl_fraction != 0:
        raise MlmolError("temperature annealing with fit fm has no reverse KL stage: set kl_fraction to 0")
    factors = ladder(high, temperatures)
    kl_steps = round(steps * kl_fraction)
    stages = []
    if kl_steps:
        stages.append(Stage(kl_steps, ReverseKL(Tempered(system, factors[0]), high=energy_high, cap=cap), lr=lr,
                            lr_end=lr_end, batch_size=batch, name=f"kl at {factors[0]:.3g} T"))
        factors = factors[1:]
    per_rung = (steps - kl_steps) // len(factors)
    if fit == "fm" and levels:
        raise MlmolError("AIS pools need the flow's density gradient; with fit fm set levels to 0")
    for i, factor in enumerate(factors):
        rung_steps = per_rung if i < len(factors) - 1 else steps - kl_steps - per_rung * (len(factors) - 1)
        target = system if factor == 1.0 else Tempered(system, factor)
        loss = (ReweightedFlowMatching(target, pool=pool, refresh=refresh, clip=clip, min_ess=min_ess)
                if fit == "fm" else
                ReweightedML(target, pool=pool, refresh=refresh, levels=levels, step_size=step_size, clip=clip,
                             min_ess=min_ess))
        stages.append(Stage(rung_steps, loss, lr=anneal_lr if kl_steps else lr,
                            lr_end=None if kl_steps else lr_end, batch_size=batch,
                            name=f"reweighted {fit.upper()} at {factor:.3g} T"))
    return Recipe([s for s in stages if s.steps > 0], system, None, grad_clip=grad_clip)
