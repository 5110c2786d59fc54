"""Flow families by name, and :func:`build`, which makes a flow from its spec (the spec a
checkpoint stores): coupling flows, the molecular flow and the equivariant flow."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from ..errors import MlmolError
from .equivariant import EquivariantFlow
from .flow import FlowModel, NeuralSpline, RealNVP
from .molecular import MolecularFlow


def _molecular(**spec) -> MolecularFlow:
    spec.pop("loc", None), spec.pop("scale", None)  # its standardisation lives in the state dict
    return MolecularFlow(**spec)


def _equivariant(**spec) -> EquivariantFlow:
    spec.pop("loc", None), spec.pop("scale", None)  # centred coordinates need no standardisation
    return EquivariantFlow(**spec)


CLASSES = {"realnvp": RealNVP, "spline": NeuralSpline, "molecular": MolecularFlow, "equivariant": EquivariantFlow}
FAMILIES: dict[str, Callable[..., FlowModel]] = {"realnvp": RealNVP, "spline": NeuralSpline, "molecular": _molecular, "equivariant": _equivariant}


def check_options(kind: str, options: dict) -> None:
    """Raise an :class:`~mlmol.errors.MlmolError` naming any option the ``kind`` of flow does not take."""
    accepted = set(inspect.signature(CLASSES[kind]).parameters) - {"loc", "scale", "data"}
    unknown = sorted(set(options) - accepted - {"kind", "standardize"})
    if unknown:
        raise MlmolError(f"unknown option(s) {', '.join(unknown)} for the {kind} flow (config.flow); it takes "
                         f"{', '.join(sorted(accepted - {'dim', 'n_atoms', 'bonds', 'n_particles', 'spatial_dim'}))}")


def build(spec: dict, loc: torch.Tensor | None = None, scale: torch.Tensor | None = None) -> FlowModel:
    """A flow from its spec, e.g. ``{"kind": "realnvp", "dim": 2, "blocks": 4}``."""
    spec = dict(spec)
    kind = spec.pop("kind", "realnvp")
    if spec.pop("standardize", False) and loc is None and scale is None:
        loc, scale = torch.zeros(spec["dim"]), torch.ones(spec["dim"])  # values come from the state dict
    if kind not in FAMILIES:
        raise MlmolError(f"unknown flow kind {kind!r}; choose one of {', '.join(FAMILIES)}")
    check_options(kind, spec)
    return FAMILIES[kind](**spec, loc=loc, scale=scale)
