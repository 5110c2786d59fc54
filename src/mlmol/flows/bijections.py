"""Bijections: maps z -> (x, log|det dx/dz|) with exact inverses x -> (z, log|det dz/dx|)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from zuko.transforms import MonotonicRQSTransform

from ..geometry import wrap_angle


class Bijection(nn.Module):
    """Base class. ``forward(z) -> (x, ladj)``; ``inverse(x) -> (z, ladj)``; ladj shape ``[*batch]``."""

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``[*batch, dim_x]`` and log|det dx/dz| ``[*batch]`` for z ``[*batch, dim_z]``."""
        raise NotImplementedError

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z ``[*batch, dim_z]`` and log|det dz/dx| ``[*batch]`` for x ``[*batch, dim_x]``."""
        raise NotImplementedError


class Chain(Bijection):
    """Bijections applied in order (forward) and in reverse order (inverse).

    Arguments:
        bijections: the bijections, first applied first in ``forward``.

    Example:
        >>> f = Chain([AffineCoupling([1], [0], hidden=(16,)), AffineCoupling([0], [1], hidden=(16,))])
        >>> x, ladj = f(torch.randn(5, 2))
        >>> x.shape, ladj.shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    def __init__(self, bijections: Sequence[Bijection]) -> None:
        super().__init__()
        self.bijections = nn.ModuleList(bijections)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x and the summed log|det dx/dz| ``[*batch]`` for z ``[*batch, dim]``."""
        ladj = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for bijection in self.bijections:
            z, step = bijection(z)
            ladj = ladj + step
        return z, ladj

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z and the summed log|det dz/dx| ``[*batch]`` for x ``[*batch, dim]``."""
        ladj = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        for bijection in reversed(self.bijections):
            x, step = bijection.inverse(x)
            ladj = ladj + step
        return x, ladj


class Standardize(Bijection):
    """Fixed affine map x = loc + scale · z (e.g. the mean and std of the training data).

    Coordinates listed in ``periodic`` are angles (radians): x is wrapped to [−π, π) and z is
    read from the periodic difference x − loc, a bijection while |scale · z| < π.

    Arguments:
        loc: the shift ``[dim]``, in x's units.
        scale: the positive scale ``[dim]``, in x's units.
        periodic: indices of the angle coordinates.
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, periodic: Sequence[int] = ()) -> None:
        super().__init__()
        self.register_buffer("loc", torch.as_tensor(loc, dtype=torch.get_default_dtype()))
        self.register_buffer("log_scale", torch.as_tensor(scale, dtype=torch.get_default_dtype()).log())
        self.periodic = [int(i) for i in periodic]

    def _wrap(self, x):
        if not self.periodic:
            return x
        x = x.clone()
        x[..., self.periodic] = wrap_angle(x[..., self.periodic])
        return x

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = loc + scale · z ``[*batch, dim]`` and Σ log scale ``[*batch]``."""
        x = self._wrap(self.loc + self.log_scale.exp() * z)
        return x, self.log_scale.sum().expand(z.shape[:-1])

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = (x − loc) / scale ``[*batch, dim]`` and −Σ log scale ``[*batch]``."""
        z = self._wrap(x - self.loc) * (-self.log_scale).exp()
        return z, (-self.log_scale.sum()).expand(x.shape[:-1])


def mlp(n_in: int, n_out: int, hidden: Sequence[int],
        activation: Callable[[], nn.Module] = nn.SiLU) -> nn.Sequential:
    """A multilayer perceptron whose last layer starts at zero, so couplings start as identity.

    Arguments:
        n_in: input features (``[*batch, n_in]``).
        n_out: output features (``[*batch, n_out]``).
        hidden: the widths of the hidden layers.
        activation: builds the activation after each hidden layer.

    Example:
        >>> net = mlp(3, 2, (8, 8))
        >>> net(torch.randn(4, 3)).shape
        torch.Size([4, 2])
    """
    sizes = [n_in, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), activation()]
    last = nn.Linear(sizes[-1], n_out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class Coupling(Bijection):
    """Transforms coordinates ``transformed`` elementwise, conditioned on ``conditioning``.

    Conditioning coordinates listed in ``angles`` enter the network as (cos, sin), so the
    map is continuous on the circle. Subclasses define the elementwise map from the
    conditioner outputs (``params_per_dim`` each).

    Arguments:
        transformed: indices of the transformed coordinates.
        conditioning: indices of the coordinates the network reads.
        hidden: the widths of the network's hidden layers (:func:`mlp`).
        angles: indices (among ``conditioning``) of angles in radians, fed as (cos, sin).
    """

    params_per_dim = 2

    def __init__(self, transformed: Sequence[int], conditioning: Sequence[int], hidden: Sequence[int],
                 angles: Sequence[int] = ()) -> None:
        super().__init__()
        angles = set(angles)
        linear = [i for i in conditioning if i not in angles]
        circular = [i for i in conditioning if i in angles]
        self.register_buffer("transformed", torch.as_tensor(transformed, dtype=torch.long))
        self.register_buffer("conditioning", torch.as_tensor(linear, dtype=torch.long))
        self.register_buffer("conditioning_angles", torch.as_tensor(circular, dtype=torch.long))
        self.net = mlp(len(linear) + 2 * len(circular), len(transformed) * self.params_per_dim, hidden)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.conditioning_angles) == 0:
            return x[..., self.conditioning]
        angles = x[..., self.conditioning_angles]
        return torch.cat([x[..., self.conditioning], torch.cos(angles), torch.sin(angles)], dim=-1)

    def _params(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(self._features(x))
        return out.reshape(*out.shape[:-1], len(self.transformed), self.params_per_dim)

    def _couple(self, x: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        params = self._params(x)
        y, ladj = self.elementwise(x[..., self.transformed], params, inverse)
        out = x.clone()
        out[..., self.transformed] = y
        return out, ladj.sum(-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``[*batch, dim]`` (the ``transformed`` coordinates mapped) and log|det dx/dz| ``[*batch]``."""
        return self._couple(z, inverse=False)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z ``[*batch, dim]`` and log|det dz/dx| ``[*batch]``."""
        return self._couple(x, inverse=True)

    def elementwise(self, v: torch.Tensor, params: torch.Tensor,
                    inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The map of the transformed values ``v`` ``[*batch, T]`` given ``params`` ``[*batch, T, params_per_dim]``
        (its inverse if ``inverse``): the new values and the log-derivatives ``[*batch, T]``."""
        raise NotImplementedError


class AffineCoupling(Coupling):
    """RealNVP coupling (Dinh et al. 2017): y = v · exp(s) + t, s softly clamped to ±``clamp``."""

    params_per_dim = 2

    def __init__(self, transformed: Sequence[int], conditioning: Sequence[int], hidden: Sequence[int],
                 clamp: float = 5.0, angles: Sequence[int] = ()) -> None:
        super().__init__(transformed, conditioning, hidden, angles)
        self.clamp = clamp

    def elementwise(self, v: torch.Tensor, params: torch.Tensor,
                    inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """y = v · exp(s) + t (or its inverse) and log|dy/dv| = s, each ``[*batch, T]``."""
        shift, raw = params.unbind(-1)
        log_scale = self.clamp * torch.tanh(raw / self.clamp)
        if inverse:
            return (v - shift) * torch.exp(-log_scale), -log_scale
        return v * torch.exp(log_scale) + shift, log_scale


class SplineCoupling(Coupling):
    """Rational-quadratic spline coupling (Durkan et al. 2019) on [−bound, bound], identity outside.

    The spline itself is zuko's :class:`~zuko.transforms.MonotonicRQSTransform`; its slope is 1
    at ±bound, so with ``bound = π`` it is a smooth map of the circle onto itself (for angles).

    Arguments:
        transformed: as for :class:`Coupling`.
        conditioning: as for :class:`Coupling`.
        hidden: as for :class:`Coupling`.
        angles: as for :class:`Coupling`.
        bins: the number of spline bins.
        bound: the half-width of the spline's interval, in the coordinates' units.
    """

    def __init__(self, transformed: Sequence[int], conditioning: Sequence[int], hidden: Sequence[int],
                 bins: int = 8, bound: float = 5.0, angles: Sequence[int] = ()) -> None:
        self.params_per_dim = 3 * bins - 1
        super().__init__(transformed, conditioning, hidden, angles)
        self.bins, self.bound = bins, bound

    def elementwise(self, v: torch.Tensor, params: torch.Tensor,
                    inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The spline of ``v`` ``[*batch, T]`` (or its inverse) and its log-derivatives ``[*batch, T]``."""
        k = self.bins
        spline = MonotonicRQSTransform(params[..., :k], params[..., k:2 * k], params[..., 2 * k:],
                                       bound=self.bound)
        if inverse:
            u = spline.inv(v)
            return u, -spline.call_and_ladj(u)[1]
        return spline.call_and_ladj(v)


class CircularShift(Bijection):
    """Rotates angles ``indices`` by a fixed ``shift`` (radians), wrapped to [−π, π); log-det 0.

    Moves the seam of circular splines between blocks.

    Arguments:
        indices: indices of the rotated angle coordinates.
        shift: the rotation (radians).
    """

    def __init__(self, indices: Sequence[int], shift: float) -> None:
        super().__init__()
        self.register_buffer("indices", torch.as_tensor(indices, dtype=torch.long))
        self.shift = float(shift)

    def _rotate(self, x, shift):
        out = x.clone()
        out[..., self.indices] = wrap_angle(x[..., self.indices] + shift)
        return out, torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z with the angles rotated by ``shift`` ``[*batch, dim]``, and zeros ``[*batch]``."""
        return self._rotate(z, self.shift)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x with the angles rotated by −``shift`` ``[*batch, dim]``, and zeros ``[*batch]``."""
        return self._rotate(x, -self.shift)
