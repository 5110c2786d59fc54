"""Equivariant flow matching (Klein, Krämer & Noé, NeurIPS 2023) for identical-particle systems."""

from __future__ import annotations

import torch

from ..errors import MlmolError
from ..losses import FlowMatching
from ..systems import Energy
from ..train import Recipe, Stage


def klein2023(system: Energy, data: torch.Tensor | None, steps: int = 3000, batch: int = 256, lr: float = 1e-3,
              lr_end: float = 1e-5, sigma: float = 0.01, align: bool = True) -> Recipe:
    """Flow matching of an :class:`~mlmol.flows.EquivariantFlow` on ``data`` for ``steps`` steps.

    Straight paths between base samples aligned to data (permutation + rotation) with noise
    ``sigma``; Adam with the learning rate annealed from ``lr`` to ``lr_end`` on a cosine.
    """
    if data is None or len(data) == 0:
        raise MlmolError("flow matching learns from data: give the run a sampler (data.sampler) or data")
    stage = Stage(steps, FlowMatching(sigma=sigma, align=align), lr=lr, lr_end=lr_end, batch_size=batch, name="fm")
    return Recipe([stage], system, data)
