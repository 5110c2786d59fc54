"""The Fourier neural operator (Li et al., ICLR 2021) in 1D and 2D.

    v₀ = P(a(x), x);   v_{l+1} = σ(W_l v_l + F⁻¹(R_l · (F v_l)|_modes));   u = Q(v_L)

P lifts the input function and the grid coordinates to ``width`` channels, each Fourier layer
multiplies the lowest ``modes`` Fourier modes (per dimension) by learnt complex matrices R_l
and adds a pointwise linear map W_l, and Q projects back (width → 128 → out). No activation
after the last Fourier layer, GELU elsewhere, as in the paper's code. Because R acts on a fixed
number of modes, the same weights apply at any grid resolution (zero-shot super-resolution).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from ..errors import MlmolError


@functools.lru_cache(maxsize=32)
def _dft_bases(n: int, m: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Truncated DFT matrices for a length-``n`` axis and ``m`` modes.

    ``real_forward`` [n, 2m]: real signal → interleaved (Re, Im) of modes 0..m−1 (as ``rfft``).
    ``real_inverse`` [2m, n]: those modes → real signal (as ``irfft(n=n)`` with the rest zero).
    ``complex_forward`` [n, 2m] and ``complex_inverse`` [2m, n]: complex DFT to and from the
    frequencies 0..m−1 and −m..−1 (as ``fft``/``ifft`` restricted to them).
    """
    position = torch.arange(n, dtype=torch.float64)
    k = torch.arange(m, dtype=torch.float64)
    angle = 2 * math.pi * torch.outer(position, k) / n  # [n, m]
    real_forward = torch.stack([torch.cos(angle), -torch.sin(angle)], -1).reshape(n, 2 * m)
    weight = torch.full((m, 1), 2.0 / n, dtype=torch.float64)
    weight[0] = 1.0 / n  # the mean mode appears once in a real signal, the others twice (±k)
    real_inverse = torch.stack([weight * torch.cos(angle.T), -weight * torch.sin(angle.T)], 1).reshape(2 * m, n)
    signed = torch.cat([k, k - m])  # 0..m−1, −m..−1
    phase = 2 * math.pi * torch.outer(position, signed) / n  # [n, 2m]
    complex_forward = torch.polar(torch.ones_like(phase), -phase)
    complex_inverse = torch.polar(torch.ones_like(phase), phase).T / n
    complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    return (real_forward.to(device, dtype), real_inverse.to(device, dtype),
            complex_forward.to(device, complex_dtype), complex_inverse.to(device, complex_dtype))


class SpectralConv(nn.Module):
    """Multiply the lowest ``modes`` Fourier modes of each of ``dim`` (1 or 2) spatial axes by
    learnt complex ``[in, out]`` matrices, zero the rest. Input ``[B, in, *grid]``.

    Only the kept modes are computed, by matrix products with truncated DFT matrices: equal to
    ``irfftn(R · rfftn(v)|modes)`` and, with few modes, several times faster on CPU than FFTs
    (pocketfft is slow on grid sizes with large prime factors, such as 85 = 5 · 17).

    Arguments:
        channels_in: input channels.
        channels_out: output channels.
        modes: Fourier modes kept per axis (the grid needs at least ``2 * modes`` points per axis).
        dim: the number of spatial axes, 1 or 2.
    """

    def __init__(self, channels_in: int, channels_out: int, modes: int, dim: int) -> None:
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
        """``[B, out, *grid]`` from ``v`` ``[B, in, *grid]`` (real, float32 or float64)."""
        grid, m = v.shape[2:], self.modes
        if any(s < 2 * m for s in grid):
            raise MlmolError(f"the grid {tuple(grid)} is too coarse for {m} Fourier modes; use at least {2 * m} points "
                             "per axis or fewer modes")
        last_forward, last_inverse, _, _ = _dft_bases(grid[-1], m, v.dtype, v.device)
        spectrum = torch.view_as_complex((v @ last_forward).unflatten(-1, (m, 2)))  # [B, i, (H,) m]
        if self.dim == 2:
            _, _, first_forward, first_inverse = _dft_bases(grid[0], m, v.dtype, v.device)
            spectrum = (spectrum.transpose(-1, -2) @ first_forward).unflatten(-1, (2, m))  # [B, i, y, p, x]
            spectrum = spectrum.permute(0, 1, 3, 4, 2)  # [B, i, p, x, y]: as the weight's blocks and modes
        out = _mix_modes(spectrum, self.weight[0] if self.dim == 1 else self.weight.movedim(0, 2))
        if self.dim == 2:
            out = out.permute(0, 1, 4, 2, 3).flatten(-2) @ first_inverse  # [B, o, y, H]
            out = out.transpose(-1, -2)  # [B, o, H, m]
        return torch.view_as_real(out).flatten(-2) @ last_inverse


def _mix_modes(spectrum: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """out[b, o, modes] = Σ_i spectrum[b, i, modes] · weight[i, o, modes], one matrix per mode.

    Spectrum ``[B, i, *modes]``, weight ``[i, o, *modes]``. Done as one real batched product of
    the 2×2 real form of complex numbers: a complex ``bmm`` on CPU loops over the modes.
    """
    modes = spectrum.shape[2:]
    channels_out = weight.shape[1]
    x = torch.view_as_real(spectrum).flatten(2, -2).permute(2, 0, 3, 1).flatten(-2)  # [M, B, 2i] (re block, im block)
    w = weight.to(spectrum.dtype).flatten(2).permute(2, 0, 1)  # [M, i, o]
    real, imag = w.real, w.imag
    block = torch.cat([torch.cat([real, imag], -1), torch.cat([-imag, real], -1)], -2)  # [M, 2i, 2o]
    y = torch.bmm(x, block).unflatten(-1, (2, channels_out))  # [M, B, 2, o]
    y = torch.complex(y[:, :, 0], y[:, :, 1]).permute(1, 2, 0)  # [B, o, M]
    return y.unflatten(-1, tuple(modes))


class FNO(nn.Module):
    """Fourier neural operator on a ``dim``-dimensional periodic-or-not grid over [0, 1]^dim.

    Input ``[B, *grid, channels_in]`` (the function's values on the grid), output
    ``[B, *grid, channels_out]``. Defaults are the paper's: 1D 16 modes × width 64, 2D 12 modes ×
    width 32, 4 Fourier layers.

    Arguments:
        dim: the number of spatial axes, 1 or 2.
        modes: Fourier modes kept per axis (default 16 in 1D, 12 in 2D).
        width: channels of the Fourier layers (default 64 in 1D, 32 in 2D).
        layers: the number of Fourier layers.
        channels_in: channels of the input function.
        channels_out: channels of the output function.
        hidden: the width of the projection's hidden layer.

    Example:
        >>> model = FNO(dim=1, modes=8, width=16)
        >>> model(torch.randn(4, 64, 1)).shape
        torch.Size([4, 64, 1])
    """

    def __init__(self, dim: int = 1, modes: int | None = None, width: int | None = None, layers: int = 4,
                 channels_in: int = 1, channels_out: int = 1, hidden: int = 128) -> None:
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
        for name, channels, value in (("input_shift", channels_in, 0.0), ("input_scale", channels_in, 1.0),
                                      ("output_shift", channels_out, 0.0), ("output_scale", channels_out, 1.0)):
            self.register_buffer(name, torch.full((channels,), value))

    def normalize_with(self, inputs: torch.Tensor, outputs: torch.Tensor) -> FNO:
        """Standardise each input channel and un-standardise each output channel by the mean and
        standard deviation over ``inputs`` ``[N, *grid, c_in]`` and ``outputs`` ``[N, *grid, c_out]``
        (one scalar per channel, so the model stays resolution-free). Returns the model."""
        with torch.no_grad():
            for prefix, values in (("input", inputs), ("output", outputs)):
                flat = values.flatten(0, -2).to(self.input_shift)
                getattr(self, f"{prefix}_shift").copy_(flat.mean(0))
                getattr(self, f"{prefix}_scale").copy_(flat.std(0).clamp_min(1e-12))
        return self

    def grid(self, shape: tuple[int, ...], device: torch.device | str | None = None) -> torch.Tensor:
        """Coordinates ``[*shape, dim]`` (float32) of the grid points on [0, 1]^dim (endpoints included)."""
        axes = [torch.linspace(0, 1, n, device=device) for n in shape]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """The output function ``[B, *grid, channels_out]`` from the input ``a`` ``[B, *grid, channels_in]``."""
        if a.ndim != self.dim + 2:
            raise MlmolError(f"FNO{self.dim}d expects [batch, {', '.join(['points'] * self.dim)}, channels], "
                             f"got shape {tuple(a.shape)}")
        shape = a.shape[1:-1]
        coordinates = self.grid(tuple(shape), a.device).expand(a.shape[0], *shape, self.dim).to(a.dtype)
        a = (a - self.input_shift) / self.input_scale
        v = self.lift(torch.cat([a, coordinates], -1)).movedim(-1, 1)  # [B, width, *grid]
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise, strict=True)):
            v = spectral(v) + pointwise(v)
            if i < len(self.spectral) - 1:
                v = nn.functional.gelu(v)
        return self.project(v.movedim(1, -1)) * self.output_scale + self.output_shift


def relative_l2(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ‖prediction − target‖₂ / ‖target‖₂ (the paper's loss and metric), a scalar.

    Arguments:
        prediction: ``[B, ...]``.
        target: ``[B, ...]``, the same shape; each sample's norm runs over all but the first axis.
    """
    difference = (prediction - target).flatten(1).norm(dim=1)
    return (difference / target.flatten(1).norm(dim=1)).mean()
