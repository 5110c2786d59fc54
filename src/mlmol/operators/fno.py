"""The Fourier neural operator (Li et al., ICLR 2021) in 1D and 2D.

    v₀ = P(a(x), x);   v_{l+1} = σ(W_l v_l + F⁻¹(R_l · (F v_l)|_modes));   u = Q(v_L)

P lifts the input function and the grid coordinates to ``width`` channels, each Fourier layer
multiplies the lowest ``modes`` Fourier modes (per dimension) by learnt complex matrices R_l
and adds a pointwise linear map W_l, and Q projects back (width → 128 → out). No activation
after the last Fourier layer, GELU elsewhere, as in the paper's code. Because R acts on a fixed
number of modes, the same weights apply at any grid resolution (zero-shot super-resolution).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import MlmolError


class SpectralConv(nn.Module):
    """Multiply the lowest ``modes`` Fourier modes of each of ``dim`` (1 or 2) spatial axes by
    learnt complex ``[in, out]`` matrices, zero the rest. Input ``[B, in, *grid]``."""

    def __init__(self, channels_in: int, channels_out: int, modes: int, dim: int):
        super().__init__()
        if dim not in (1, 2):
            raise MlmolError(f"SpectralConv supports 1 or 2 spatial dimensions, got {dim}")
        self.modes, self.dim, self.channels_out = modes, dim, channels_out
        scale = 1 / (channels_in * channels_out)
        # 1D: one block of modes; 2D: the low positive and the low negative frequencies of the first axis
        blocks = 1 if dim == 1 else 2
        shape = (blocks, channels_in, channels_out, *([modes] * dim))
        self.weight = nn.Parameter(scale * torch.randn(*shape, dtype=torch.cfloat))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        grid = v.shape[2:]
        axes = tuple(range(-self.dim, 0))
        spectrum = torch.fft.rfftn(v, dim=axes)
        out = torch.zeros(v.shape[0], self.channels_out, *spectrum.shape[2:], dtype=spectrum.dtype, device=v.device)
        m = self.modes
        if any(s < 2 * m for s in grid[:-1]) or spectrum.shape[-1] < m:
            raise MlmolError(f"the grid {tuple(grid)} is too coarse for {m} Fourier modes; use at least {2 * m} points "
                             "per axis or fewer modes")
        if self.dim == 1:
            out[..., :m] = torch.einsum("bix,iox->box", spectrum[..., :m], self.weight[0])
        else:
            out[..., :m, :m] = torch.einsum("bixy,ioxy->boxy", spectrum[..., :m, :m], self.weight[0])
            out[..., -m:, :m] = torch.einsum("bixy,ioxy->boxy", spectrum[..., -m:, :m], self.weight[1])
        return torch.fft.irfftn(out, s=grid, dim=axes)


class FNO(nn.Module):
    """Fourier neural operator on a ``dim``-dimensional periodic-or-not grid over [0, 1]^dim.

    Input ``[B, *grid, channels_in]`` (the function's values on the grid), output
    ``[B, *grid, channels_out]``. Defaults are the paper's: 1D 16 modes × width 64, 2D 12 modes ×
    width 32, 4 Fourier layers."""

    def __init__(self, dim: int = 1, modes: int | None = None, width: int | None = None, layers: int = 4,
                 channels_in: int = 1, channels_out: int = 1, hidden: int = 128):
        super().__init__()
        if dim not in (1, 2):
            raise MlmolError(f"FNO supports dim 1 or 2, got {dim}")
        self.dim = dim
        self.modes = modes or (16 if dim == 1 else 12)
        self.width = width or (64 if dim == 1 else 32)
        self.lift = nn.Linear(channels_in + dim, self.width)
        self.spectral = nn.ModuleList(SpectralConv(self.width, self.width, self.modes, dim) for _ in range(layers))
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        self.pointwise = nn.ModuleList(conv(self.width, self.width, 1) for _ in range(layers))
        self.project = nn.Sequential(nn.Linear(self.width, hidden), nn.GELU(), nn.Linear(hidden, channels_out))

    def grid(self, shape: tuple[int, ...], device=None) -> torch.Tensor:
        """Coordinates ``[*shape, dim]`` of the grid points on [0, 1]^dim (endpoints included)."""
        axes = [torch.linspace(0, 1, n, device=device) for n in shape]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if a.ndim != self.dim + 2:
            raise MlmolError(f"FNO{self.dim}d expects [batch, {', '.join(['points'] * self.dim)}, channels], "
                             f"got shape {tuple(a.shape)}")
        shape = a.shape[1:-1]
        coordinates = self.grid(tuple(shape), a.device).expand(a.shape[0], *shape, self.dim).to(a.dtype)
        v = self.lift(torch.cat([a, coordinates], -1)).movedim(-1, 1)  # [B, width, *grid]
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise, strict=True)):
            v = spectral(v) + pointwise(v)
            if i < len(self.spectral) - 1:
                v = nn.functional.gelu(v)
        return self.project(v.movedim(1, -1))


def relative_l2(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ‖prediction − target‖₂ / ‖target‖₂ (the paper's loss and metric)."""
    difference = (prediction - target).flatten(1).norm(dim=1)
    return (difference / target.flatten(1).norm(dim=1)).mean()
