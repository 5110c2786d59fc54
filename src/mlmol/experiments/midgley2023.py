"""Flow annealed importance sampling bootstrap (Midgley et al., ICLR 2023): training from the energy
alone with the α = 2 divergence, AIS and (by default) a prioritised replay buffer."""

from __future__ import annotations

import torch

from ..fab import FAB, ReplayBuffer
from ..systems import Energy
from ..train import Recipe, Stage


def midgley2023(system: Energy, data: torch.Tensor | None, steps: int = 5000, batch: int = 256, lr: float = 3e-4,
                lr_end: float | None = None, levels: int = 1, moves: int = 1, step_size: float = 0.5,
                buffer: bool = True, capacity: int = 25_600, min_length: int = 2560, updates: int = 4,
                grad_clip: float = 100.0) -> Recipe:
    """``steps`` Adam steps of the FAB loss (:class:`~mlmol.fab.FAB`) with ``batch`` samples each.

    AIS runs ``levels`` intermediate distributions with ``moves`` MALA steps each (step size adapted
    from ``step_size``). With ``buffer`` the AIS samples go to a prioritised replay buffer of
    ``capacity`` samples (filled to ``min_length`` before the first step) and each AIS batch serves
    ``updates`` steps; without, each step runs AIS on a fresh batch. ``data`` are not used.
    """
    replay = ReplayBuffer(system.dim, capacity, min_length) if buffer else None
    loss = FAB(system, levels=levels, step_size=step_size, moves=moves, buffer=replay, updates=updates)
    stage = Stage(steps, loss, lr=lr, lr_end=lr_end, batch_size=batch, name="fab")
    return Recipe([stage], system, None, grad_clip=grad_clip)
