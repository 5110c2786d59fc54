"""Metropolis–Hastings walkers for |ψ|² and the blocking analysis of correlated energies."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import nn

from .systems import ElectronicSystem


def initial_positions(molecule: ElectronicSystem, n: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``[n, N, 3]`` (bohr, ``dtype``): electrons placed round the nuclei (each nucleus gets about Z electrons,
    alternating spins), spread by unit Gaussians.

    Example:
        >>> from mlmol.vmc.systems import get
        >>> initial_positions(get("LiH"), 8).shape
        torch.Size([8, 4, 3])
    """
    _, positions = molecule.tensors(dtype)
    slots = [i for i, z in enumerate(molecule.charges) for _ in range(max(1, round(z)))]
    up, down = slots[0::2], slots[1::2] or slots
    owner = [up[k % len(up)] for k in range(molecule.n_up)] + [down[k % len(down)] for k in range(molecule.n_down)]
    centres = positions[torch.tensor(owner)]
    return centres + torch.randn(n, molecule.n_electrons, 3, generator=generator, dtype=dtype)


class Walkers:
    """n Metropolis–Hastings walkers sampling |ψ(x)|² with Gaussian moves whose width adapts
    towards an acceptance of ``target`` (between 0.4 and 0.6 by default).

    Arguments:
        wavefunction: maps electrons ``[n, N, 3]`` (bohr) to ``(sign ψ, log|ψ|)``, each ``[n]``.
        molecule: the molecule (walkers start by :func:`initial_positions`).
        n: the number of walkers.
        seed: seeds the walkers.
        width: the initial standard deviation of a move per coordinate (bohr).
        target: the target acceptance.

    Example:
        >>> from mlmol.vmc.systems import get
        >>> from mlmol.vmc.wavefunctions import HydrogenGroundState
        >>> walkers = Walkers(HydrogenGroundState(), get("H"), 100)
        >>> 0 < walkers.step(10) <= 1, walkers.x.shape
        (True, torch.Size([100, 1, 3]))
    """

    def __init__(self, wavefunction: nn.Module, molecule: ElectronicSystem, n: int, seed: int = 0, width: float = 0.2,
                 target: float = 0.5) -> None:
        self.wavefunction, self.width, self.target = wavefunction, width, target
        self.generator = torch.Generator().manual_seed(seed)
        self.place(initial_positions(molecule, n, self.generator))
        self.acceptance = float("nan")

    def place(self, x: torch.Tensor, width: float | None = None) -> None:
        """Put the walkers at ``x`` ``[n, N, 3]`` (bohr; e.g. from a checkpoint), optionally with a move width."""
        self.x = x
        self.log_prob = self._log_prob(x)
        if width is not None:
            self.width = width

    @torch.no_grad()
    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.wavefunction(x)[1]

    @torch.no_grad()
    def step(self, steps: int = 10) -> float:
        """``steps`` Metropolis sweeps (all electrons moved at once); returns the mean acceptance and
        nudges the width by 10% towards the target acceptance."""
        accepted = 0.0
        for _ in range(steps):
            proposal = self.x + self.width * torch.randn(self.x.shape, generator=self.generator, dtype=self.x.dtype)
            log_prob = self._log_prob(proposal)
            accept = torch.log(torch.rand(len(self.x), generator=self.generator, dtype=self.x.dtype)) < log_prob - self.log_prob
            accept &= torch.isfinite(log_prob)
            self.x = torch.where(accept[:, None, None], proposal, self.x)
            self.log_prob = torch.where(accept, log_prob, self.log_prob)
            accepted += float(accept.double().mean())
        self.acceptance = accepted / steps
        if self.acceptance > self.target + 0.1:
            self.width *= 1.1
        elif self.acceptance < self.target - 0.1:
            self.width /= 1.1
        return self.acceptance


def blocking_error(series: np.ndarray) -> tuple[float, float, int]:
    """Mean, standard error and block length of a correlated series by blocking (Flyvbjerg &
    Petersen 1989): the series is averaged in pairs repeatedly; the standard error of the mean at
    each level rises until the blocks are uncorrelated. Returned is the first level whose error the
    next level does not exceed by more than the next level's own uncertainty (the plateau).

    Arguments:
        series: the correlated values ``[T]`` (at least 4), e.g. local energies per step (hartree).

    Returns:
        The mean, its standard error (both in the series' units) and the block length (steps).
    """
    levels = blocking_levels(series)
    for (se, _, block), (se_next, d_next, _) in itertools.pairwise(levels):
        if se_next - se <= d_next:
            return float(np.mean(series)), se, block
    se, _, block = max(levels)
    return float(np.mean(series)), se, block


def blocking_levels(series: np.ndarray) -> list[tuple[float, float, int]]:
    """(standard error of the mean, its uncertainty, block length) at each blocking level of a
    correlated ``series`` ``[T]`` (at least 4 values): the series averaged in pairs repeatedly."""
    x = np.asarray(series, dtype=float)
    if len(x) < 4:
        raise ValueError(f"blocking needs at least 4 values, got {len(x)}")
    levels = []
    block = 1
    while len(x) >= 4:
        se = math.sqrt(x.var(ddof=1) / len(x))
        levels.append((se, se / math.sqrt(2 * (len(x) - 1)), block))
        x = 0.5 * (x[: len(x) // 2 * 2 : 2] + x[1 : len(x) // 2 * 2 : 2])
        block *= 2
    return levels
