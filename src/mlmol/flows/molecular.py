"""A Boltzmann-generator flow for molecules: couplings on internal coordinates.

Latent z = [bonds, angles | torsions]: Gaussian for bonds and angles, uniform on [−π, π)
for torsions. Couplings alternate between halves of each group: spline couplings on the
standardised bonds and angles, circular spline couplings (bound π) on the torsions, with
circular shifts in between; every conditioner sees torsions as (cos, sin). A fixed
standardisation of bonds and angles (from the data) and the Z-matrix bijection then
give Cartesian coordinates (nm) in the canonical frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from .bijections import Bijection, Chain, CircularShift, SplineCoupling, Standardize
from .flow import Flow
from .internal import InternalCoordinates


def MolecularFlow(n_atoms: int, bonds: Iterable[tuple[int, int]], data: torch.Tensor | None = None,
                  blocks: int = 4, hidden: Sequence[int] = (128, 128), bins: int = 8) -> Flow:
    """A flow on Cartesians ``[*batch, 3N]`` through internal coordinates built from ``bonds``.

    ``data`` (Cartesian training samples) sets the standardisation of bonds and angles.
    """
    bonds = [tuple(map(int, b)) for b in bonds]
    ic = InternalCoordinates(n_atoms, bonds)
    dim, start = ic.dim, ic.torsion_slice.start
    ordinary, torsions = list(range(start)), list(range(start, dim))
    loc, scale = torch.zeros(dim), torch.ones(dim)
    if data is not None:
        with torch.no_grad():
            values, _ = ic.inverse(torch.as_tensor(data, dtype=torch.get_default_dtype()))
        loc[:start] = values[:, :start].mean(0)
        scale[:start] = values[:, :start].std(0).clamp(min=1e-4)
    hidden = tuple(int(h) for h in hidden)
    groups = [(ordinary[0::2], ordinary[1::2]), (torsions[0::2], torsions[1::2])]
    layers: list[Bijection] = []
    for block in range(blocks):
        for (a, b), is_angle in zip(groups, (False, True)):
            for transformed in (a, b):
                if not transformed:
                    continue
                conditioning = [i for i in range(dim) if i not in transformed]
                layers.append(SplineCoupling(transformed, conditioning, hidden, bins=bins,
                                             bound=math.pi if is_angle else 5.0, angles=torsions))
        layers.append(CircularShift(torsions, shift=math.pi * (0.5 if block % 2 == 0 else -0.25)))
    layers += [Standardize(loc, scale), ic]
    spec = {"kind": "molecular", "n_atoms": n_atoms, "bonds": [list(b) for b in bonds], "blocks": blocks,
            "hidden": list(hidden), "bins": bins}
    return Flow(Chain(layers), dim, spec=spec, event_dim=3 * n_atoms, circular=torsions)
