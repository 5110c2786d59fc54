"""A Boltzmann-generator flow for molecules: couplings on internal coordinates.

Latent z = [bonds, angles, narrow torsions | free torsions]. Free torsions (those that
rotate: backbone φ, ψ, methyl groups) are uniform on [−π, π) and transformed by circular
spline couplings (bound π); bonds, angles and narrow torsions (circular std in the data
below ``narrow_std``: peptide ω, offsets of Hs from their siblings, planar groups) are
Gaussian, standardised by the data (narrow torsions periodically, about their circular
mean) and transformed by spline couplings. Couplings alternate between halves of each
group, with circular shifts of the free torsions in between; every conditioner sees the
free torsions as (cos, sin). The Z-matrix bijection then gives Cartesian coordinates (nm)
in the canonical frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from .bijections import Bijection, Chain, CircularShift, SplineCoupling, Standardize
from .flow import Flow
from .internal import InternalCoordinates, zmatrix


class MolecularFlow(Flow):
    """A flow on Cartesians ``[*batch, 3N]`` (nm) through internal coordinates built from ``bonds``.

    Arguments:
        n_atoms: N.
        bonds: atom index pairs (the molecule's bond graph; it must be connected).
        data: Cartesian training samples ``[n, 3N]``: set the standardisation and, unless ``narrow``
            (indices among the torsions) is given, which torsions are narrow (circular std < ``narrow_std`` rad).
        blocks: coupling blocks, conditioner widths and spline bins.
        hidden: coupling blocks, conditioner widths and spline bins.
        bins: coupling blocks, conditioner widths and spline bins.
    """

    def __init__(self, n_atoms: int, bonds: Iterable[tuple[int, int]], data: torch.Tensor | None = None,
                 blocks: int = 4, hidden: Sequence[int] = (128, 128), bins: int = 8,
                 narrow: Sequence[int] | None = None, narrow_std: float = 0.5):
        transform, dim, spec, torsions = _molecular_transform(n_atoms, bonds, data, blocks, hidden, bins, narrow,
                                                              narrow_std)
        super().__init__(transform, dim, spec=spec, event_dim=3 * n_atoms, circular=torsions)


def _molecular_transform(n_atoms: int, bonds: Iterable[tuple[int, int]], data: torch.Tensor | None, blocks: int,
                         hidden: Sequence[int], bins: int, narrow: Sequence[int] | None, narrow_std: float
                         ) -> tuple[Chain, int, dict, list[int]]:
    """The chain of :class:`MolecularFlow`, its latent dim, spec and free-torsion latent indices."""
    bonds = [tuple(map(int, b)) for b in bonds]
    ic = InternalCoordinates(n_atoms, bonds)
    dim, start = ic.dim, ic.torsion_slice.start
    loc, scale = torch.zeros(dim), torch.ones(dim)
    found: list[int] = []
    if data is not None:
        with torch.no_grad():
            values, _ = ic.inverse(torch.as_tensor(data, dtype=torch.get_default_dtype()))
        loc[:start] = values[:, :start].mean(0)
        scale[:start] = values[:, :start].std(0).clamp(min=1e-4)
        cos, sin = values[:, start:].cos().mean(0), values[:, start:].sin().mean(0)
        circular_std = torch.sqrt(-2 * torch.log(torch.sqrt(cos ** 2 + sin ** 2).clamp(1e-12, 1.0)))
        found = [i for i in range(dim - start) if circular_std[i] < narrow_std]
    narrow = sorted(int(i) for i in (found if narrow is None else narrow))
    if data is not None:  # the narrow torsions standardised about their circular mean; free ones stay uniform
        for i in narrow:
            loc[start + i] = torch.atan2(sin[i], cos[i])
            scale[start + i] = circular_std[i].clamp(min=1e-3)
    narrow_dims = [start + i for i in narrow]
    ordinary = list(range(start)) + narrow_dims
    torsions = [i for i in range(start, dim) if i not in narrow_dims]
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
    layers += [Standardize(loc, scale, periodic=narrow_dims), ic]
    spec = {"kind": "molecular", "n_atoms": n_atoms, "bonds": [list(b) for b in bonds], "blocks": blocks,
            "hidden": list(hidden), "bins": bins, "narrow": narrow}
    return Chain(layers), dim, spec, torsions


def rigid_torsions(elements: Sequence[str], bonds: Iterable[tuple[int, int]]) -> list[int]:
    """Indices (among the Z-matrix torsions of :class:`InternalCoordinates`) of the torsions that do not
    rotate freely, from the chemistry alone (for a flow trained without data): offsets of an atom from
    a sibling around the same bond (methyl Hs at ±120°, a carbonyl O, the Cα substituents that fix its
    handedness), and rotations about amide C–N bonds (peptide ω) and ring bonds.

    Arguments:
        elements: each atom's element symbol ("C", "N", ...).
        bonds: the bonds as atom index pairs.

    Example:
        >>> # N-methylacetamide's heavy atoms: C(methyl)-C(=O)-N-C(methyl); the torsion about C-N is rigid
        >>> rigid_torsions(["C", "C", "O", "N", "C"], [(0, 1), (1, 2), (1, 3), (3, 4)])
        [0, 1]
    """
    bonds = [tuple(map(int, b)) for b in bonds]
    neighbours: list[set[int]] = [set() for _ in elements]
    for i, j in bonds:
        neighbours[i].add(j)
        neighbours[j].add(i)

    def amide(i: int, j: int) -> bool:
        carbon, nitrogen = (i, j) if elements[i] == "C" else (j, i)
        return (elements[carbon], elements[nitrogen]) == ("C", "N") and any(
            elements[k] == "O" and len(neighbours[k]) == 1 for k in neighbours[carbon])

    def in_ring(i: int, j: int) -> bool:  # another path from i to j without the bond i-j
        seen, frontier = {i}, [k for k in neighbours[i] if k != j]
        while frontier:
            k = frontier.pop()
            if k == j:
                return True
            if k not in seen:
                seen.add(k)
                frontier.extend(neighbours[k] - seen)
        return False

    rigid = []
    for index, (_, p, q, r) in enumerate(zmatrix(len(elements), bonds)[3:]):
        if r in neighbours[p] or amide(p, q) or in_ring(p, q):
            rigid.append(index)
    return rigid
