"""Flow: a Gaussian latent pushed through a bijection, with latent temperature scaling."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import MlmolError
from .bijections import AffineCoupling, Bijection, Chain, SplineCoupling, Standardize


class Flow(nn.Module):
    """Density q(x) = N(z; 0, τ I) |det dz/dx| with x = transform(z).

    ``temperature`` τ scales the latent variance: τ > 1 samples a broader, "hotter"
    distribution (Noé et al. 2019, latent temperature scaling).
    """

    def __init__(self, transform: Bijection, dim: int, spec: dict | None = None):
        super().__init__()
        self.transform = transform
        self.dim = dim
        self.spec = dict(spec or {})
        self.register_buffer("_anchor", torch.zeros(()))  # follows .to(device, dtype)

    def base_log_prob(self, z: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return -0.5 * (z**2).sum(-1) / temperature - 0.5 * self.dim * math.log(2 * math.pi * temperature)

    def sample_with_log_prob(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples x and their log q(x), shapes ``[n, dim]`` and ``[n]``."""
        z = torch.randn(n, self.dim, generator=generator, dtype=self._anchor.dtype,
                        device=self._anchor.device)
        x, ladj = self.transform(math.sqrt(temperature) * z)
        return x, self.base_log_prob(math.sqrt(temperature) * z, temperature) - ladj

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_with_log_prob(n, temperature, generator)[0]

    def log_prob(self, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise MlmolError(f"the flow has dim {self.dim} but got x of shape {tuple(x.shape)}")
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


FAMILIES = {"realnvp": RealNVP, "spline": NeuralSpline}


def build(spec: dict, loc=None, scale=None) -> Flow:
    """A flow from its spec, e.g. ``{"kind": "realnvp", "dim": 2, "blocks": 4}``."""
    spec = dict(spec)
    kind = spec.pop("kind", "realnvp")
    if spec.pop("standardize", False) and loc is None and scale is None:
        loc, scale = torch.zeros(spec["dim"]), torch.ones(spec["dim"])  # values come from the state dict
    if kind not in FAMILIES:
        raise MlmolError(f"unknown flow kind {kind!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[kind](**spec, loc=loc, scale=scale)
