"""Flow: a Gaussian latent pushed through a bijection, with latent temperature scaling."""

from __future__ import annotations

import math
from collections.abc import Sequence

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


class Flow(DeviceAware):
    """Density q(x) = p_base(z) |det dz/dx| with x = transform(z).

    The base is N(0, τ I) on the latent coordinates, except those listed in ``circular``
    (angles), which are uniform on [−π, π). ``temperature`` τ scales the Gaussian variance:
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

    def base_log_prob(self, z: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        n_gauss = self.dim - int(self._circular.sum())
        gauss = torch.where(self._circular, torch.zeros_like(z), z)
        return (-0.5 * (gauss**2).sum(-1) / temperature - 0.5 * n_gauss * math.log(2 * math.pi * temperature)
                - (self.dim - n_gauss) * math.log(2 * math.pi))

    def _base_sample(self, n: int, temperature: float, generator) -> torch.Tensor:
        z = math.sqrt(temperature) * torch.randn(n, self.dim, generator=generator, dtype=self._anchor.dtype,
                                                 device=self._anchor.device)
        if self._circular.any():
            u = torch.rand(n, self.dim, generator=generator, dtype=self._anchor.dtype, device=self._anchor.device)
            z = torch.where(self._circular, (2 * u - 1) * math.pi, z)
        return z

    def sample_with_log_prob(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples x and their log q(x), shapes ``[n, dim]`` and ``[n]``."""
        z = self._base_sample(n, temperature, generator)
        x, ladj = self.transform(z)
        return x, self.base_log_prob(z, temperature) - ladj

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_with_log_prob(n, temperature, generator)[0]

    def log_prob(self, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        if x.shape[-1] != self.event_dim:
            raise MlmolError(f"the flow has dim {self.event_dim} but got x of shape {tuple(x.shape)}")
        z, ladj = self.transform.inverse(x)
        return self.base_log_prob(z, temperature) + ladj

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        spec = ", ".join(f"{k}={v}" for k, v in self.spec.items())
        return f"{spec}, parameters={n}"


def _halves(dim: int) -> tuple[list[int], list[int]]:
    if dim < 2:
        raise MlmolError(f"coupling flows need dim >= 2, got dim = {dim}")
    return list(range(0, dim, 2)), list(range(1, dim, 2))


def _coupling_flow(kind: str, dim: int, blocks: int, make, loc, scale, spec: dict) -> Flow:
    a, b = _halves(dim)
    layers: list[Bijection] = []
    for _ in range(blocks):
        layers += [make(a, b), make(b, a)]
    if loc is not None or scale is not None:
        spec = {**spec, "standardize": True}
        loc = torch.zeros(dim) if loc is None else torch.as_tensor(loc, dtype=torch.get_default_dtype())
        scale = torch.ones(dim) if scale is None else torch.as_tensor(scale, dtype=torch.get_default_dtype())
        layers.append(Standardize(loc, scale))
    return Flow(Chain(layers), dim, spec={"kind": kind, "dim": dim, "blocks": blocks, **spec})


def RealNVP(dim: int, blocks: int = 4, hidden: Sequence[int] = (100, 100, 100),
            loc=None, scale=None) -> Flow:
    """RealNVP: ``blocks`` pairs of affine couplings (each half transformed once per block).

    ``loc`` and ``scale`` (e.g. the data mean and std) set a fixed last affine layer.
    """
    hidden = tuple(int(h) for h in hidden)
    return _coupling_flow("realnvp", dim, blocks, lambda t, c: AffineCoupling(t, c, hidden),
                          loc, scale, {"hidden": list(hidden)})


def NeuralSpline(dim: int, blocks: int = 4, hidden: Sequence[int] = (64, 64), bins: int = 8,
                 bound: float = 5.0, loc=None, scale=None) -> Flow:
    """Neural spline flow: ``blocks`` pairs of rational-quadratic spline couplings on [−bound, bound]."""
    hidden = tuple(int(h) for h in hidden)
    return _coupling_flow("spline", dim, blocks,
                          lambda t, c: SplineCoupling(t, c, hidden, bins=bins, bound=bound),
                          loc, scale, {"hidden": list(hidden), "bins": bins, "bound": bound})
