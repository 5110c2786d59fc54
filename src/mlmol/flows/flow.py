"""Flow: a Gaussian latent pushed through a bijection, with latent temperature scaling."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from ..errors import MlmolError
from .bijections import AffineCoupling, Bijection, Chain, SplineCoupling, Standardize


class DeviceAware(nn.Module):
    """A module that knows its device and dtype (from a scalar buffer that follows ``.to``)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("_anchor", torch.zeros(()))

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype


@runtime_checkable
class FlowModel(Protocol):
    """The flow contract every flow family satisfies (:class:`Flow` and its families, and
    :class:`~mlmol.flows.equivariant.EquivariantFlow`): seeded sampling with densities at latent
    temperature τ = ``tau``, densities of given points, and the ``spec`` that rebuilds it."""

    spec: dict
    event_dim: int

    @property
    def device(self) -> torch.device:
        """Where its parameters live."""
        ...

    def sample_with_log_prob(self, n: int, tau: float = 1.0, generator: torch.Generator | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples ``[n, event_dim]`` and their log q ``[n]`` at latent temperature ``tau``."""
        ...

    def sample(self, n: int, tau: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples ``[n, event_dim]``."""
        ...

    def log_prob(self, x: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """log q(x) ``[*batch]`` of ``x`` ``[*batch, event_dim]``."""
        ...


class Flow(DeviceAware):
    """Density q(x) = p_base(z) |det dz/dx| with x = transform(z).

    The base is N(0, τ I) on the latent coordinates, except those listed in ``circular``
    (angles), which are uniform on [−π, π). ``tau`` (τ) scales the Gaussian variance:
    τ > 1 samples a broader, "hotter" distribution (Noé et al. 2019, latent temperature
    scaling). ``dim`` is the latent dimension; ``event_dim`` that of x (larger when the
    transform adds fixed coordinates, e.g. internal → Cartesian).
    """

    def __init__(self, transform: Bijection, dim: int, spec: dict | None = None, event_dim: int | None = None,
                 circular: Sequence[int] = ()):
        super().__init__()
        self.transform = transform
        self.dim = dim
        self.event_dim = dim if event_dim is None else event_dim
        self.spec = dict(spec or {})
        mask = torch.zeros(dim, dtype=torch.bool)
        mask[list(circular)] = True
        self.register_buffer("_circular", mask)

    def base_log_prob(self, z: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """log p_base(z) ``[*batch]`` of latent points ``z`` ``[*batch, dim]``."""
        n_gauss = self.dim - int(self._circular.sum())
        gauss = torch.where(self._circular, torch.zeros_like(z), z)
        return (-0.5 * (gauss**2).sum(-1) / tau - 0.5 * n_gauss * math.log(2 * math.pi * tau)
                - (self.dim - n_gauss) * math.log(2 * math.pi))

    def _base_sample(self, n: int, tau: float, generator) -> torch.Tensor:
        z = math.sqrt(tau) * torch.randn(n, self.dim, generator=generator, dtype=self._anchor.dtype,
                                                 device=self._anchor.device)
        if self._circular.any():
            u = torch.rand(n, self.dim, generator=generator, dtype=self._anchor.dtype, device=self._anchor.device)
            z = torch.where(self._circular, (2 * u - 1) * math.pi, z)
        return z

    def sample_with_log_prob(
        self, n: int, tau: float = 1.0, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples x and their log q(x), shapes ``[n, dim]`` and ``[n]``."""
        z = self._base_sample(n, tau, generator)
        x, ladj = self.transform(z)
        return x, self.base_log_prob(z, tau) - ladj

    def sample(self, n: int, tau: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples ``[n, event_dim]``."""
        return self.sample_with_log_prob(n, tau, generator)[0]

    def log_prob(self, x: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """log q(x) ``[*batch]`` of points ``x`` ``[*batch, event_dim]`` at latent temperature ``tau``."""
        if x.shape[-1] != self.event_dim:
            raise MlmolError(f"the flow has dim {self.event_dim} but got x of shape {tuple(x.shape)}")
        z, ladj = self.transform.inverse(x)
        return self.base_log_prob(z, tau) + ladj

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        spec = ", ".join(f"{k}={v}" for k, v in self.spec.items())
        return f"{spec}, parameters={n}"


def _halves(dim: int) -> tuple[list[int], list[int]]:
    if dim < 2:
        raise MlmolError(f"coupling flows need dim >= 2, got dim = {dim}")
    return list(range(0, dim, 2)), list(range(1, dim, 2))


class CouplingFlow(Flow):
    """``blocks`` pairs of couplings made by ``make(transformed, conditioning)``, alternating between
    the even and odd coordinates, and an optional fixed affine last layer (``loc``, ``scale``
    ``[dim]``, e.g. the data mean and std)."""

    def __init__(self, kind: str, dim: int, blocks: int, make: Callable[[list[int], list[int]], Bijection],
                 loc: torch.Tensor | None, scale: torch.Tensor | None, spec: dict):
        a, b = _halves(dim)
        layers: list[Bijection] = []
        for _ in range(blocks):
            layers += [make(a, b), make(b, a)]
        if loc is not None or scale is not None:
            spec = {**spec, "standardize": True}
            loc = torch.zeros(dim) if loc is None else torch.as_tensor(loc, dtype=torch.get_default_dtype())
            scale = torch.ones(dim) if scale is None else torch.as_tensor(scale, dtype=torch.get_default_dtype())
            layers.append(Standardize(loc, scale))
        super().__init__(Chain(layers), dim, spec={"kind": kind, "dim": dim, "blocks": blocks, **spec})


class RealNVP(CouplingFlow):
    """RealNVP on ``[*batch, dim]``: ``blocks`` pairs of affine couplings (each half transformed once
    per block) with MLP conditioners of ``hidden`` widths.

    ``loc`` and ``scale`` ``[dim]`` (e.g. the data mean and std) set a fixed last affine layer.

    Example:
        >>> flow = RealNVP(2, blocks=4, hidden=(64, 64))
        >>> x, log_q = flow.sample_with_log_prob(10)  # [10, 2], [10]
    """

    def __init__(self, dim: int, blocks: int = 4, hidden: Sequence[int] = (100, 100, 100),
                 loc: torch.Tensor | None = None, scale: torch.Tensor | None = None):
        widths = tuple(int(h) for h in hidden)
        super().__init__("realnvp", dim, blocks, lambda t, c: AffineCoupling(t, c, widths), loc, scale,
                         {"hidden": list(widths)})


class NeuralSpline(CouplingFlow):
    """Neural spline flow on ``[*batch, dim]``: ``blocks`` pairs of rational-quadratic spline couplings
    with ``bins`` bins on [−bound, bound] (identity outside); ``loc``, ``scale`` as for :class:`RealNVP`."""

    def __init__(self, dim: int, blocks: int = 4, hidden: Sequence[int] = (64, 64), bins: int = 8,
                 bound: float = 5.0, loc: torch.Tensor | None = None, scale: torch.Tensor | None = None):
        widths = tuple(int(h) for h in hidden)
        super().__init__("spline", dim, blocks,
                         lambda t, c: SplineCoupling(t, c, widths, bins=bins, bound=bound), loc, scale,
                         {"hidden": list(widths), "bins": bins, "bound": bound})
