"""Internal coordinates: Cartesian (nm) <-> bond lengths, angles and torsions of a Z-matrix.

The Z-matrix is built from the bond graph. Its first three atoms fix the frame (atom 0 at the
origin, atom 1 on +x, atom 2 in the xy-plane), which removes the 6 rigid-body degrees of
freedom: ``3N`` Cartesians map to ``3N − 6`` internal coordinates, laid out as
``[bonds (N−1), angles (N−2), torsions (N−3)]``.

The log-det is that of the full change of variables x ↔ (position, orientation, internal
coordinates), per unit of rigid-body volume (translation d³t, rotation by its Haar measure):
log J = log(b₁² b₂² sin θ₂) + Σ_{i≥3} log(bᵢ² sin θᵢ). A flow density divided by J is then a
density on Cartesian space with the rigid-body motions integrated out, so that
exp(−u(x)) / q(x) are exact Boltzmann importance weights. (The Jacobian of the canonical frame
alone, log b₂ + Σ_{i≥3} log(bᵢ² sin θᵢ), misses the factor b₁² b₂ sin θ₂ from orienting the first
three atoms and would bias the weights by it.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np
import torch

from ..errors import MlmolError
from ..geometry import dihedral_from_points
from .bijections import Bijection


def _angle(a, b, c):
    u, v = a - b, c - b
    cos = (u * v).sum(-1) / (torch.linalg.norm(u, dim=-1) * torch.linalg.norm(v, dim=-1))
    return torch.acos(cos.clamp(-1.0, 1.0))


def _log_jacobian(bonds: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """log J = Σ_{i≥1} 2 log bᵢ + Σ_{i≥2} log sin θᵢ: spherical coordinates of every atom but the first."""
    return (2 * torch.log(bonds)).sum(-1) + torch.log(torch.sin(angles)).sum(-1)


def zmatrix(n_atoms: int, bonds: Iterable[tuple[int, int]]) -> np.ndarray:
    """Rows (atom, bond partner, angle partner, torsion partner), each partner placed earlier.

    Breadth-first from the atom with most neighbours; partners follow the bond graph where
    it allows. The torsion partner is an already placed sibling (another neighbour of the
    bond partner) when there is one, so that only the first atom around each bond carries
    the free rotation and the others a narrow offset from it (as in bgflow's hand-made
    alanine Z-matrix). The graph must be connected.

    Arguments:
        n_atoms: the number of atoms.
        bonds: the bonds as pairs of atom indices.

    Returns:
        The rows ``[n_atoms, 4]`` (int64) in placement order; −1 where the first atoms lack a partner.

    Example:
        >>> zmatrix(4, [(0, 1), (1, 2), (2, 3)])
        array([[ 1, -1, -1, -1],
               [ 2,  1, -1, -1],
               [ 0,  1,  2, -1],
               [ 3,  2,  1,  0]])
    """
    neighbours: list[list[int]] = [[] for _ in range(n_atoms)]
    for i, j in bonds:
        neighbours[i].append(j)
        neighbours[j].append(i)
    root = max(range(n_atoms), key=lambda i: (len(neighbours[i]), -i))
    order, parent, queue = [root], {root: -1}, deque([root])
    while queue:
        atom = queue.popleft()
        for nb in sorted(neighbours[atom], key=lambda j: (-len(neighbours[j]), j)):
            if nb not in parent:
                parent[nb] = atom
                order.append(nb)
                queue.append(nb)
    if len(order) != n_atoms:
        missing = sorted(set(range(n_atoms)) - set(order))[:5]
        raise MlmolError(f"the bond graph is not connected (atoms {missing} ... are not bonded to the rest); "
                         "internal coordinates need one molecule")
    placed: list[int] = []
    rows = []
    for atom in order:
        p = parent[atom]
        if p == -1:
            rows.append((atom, -1, -1, -1))
        else:
            candidates = [parent[p]] + neighbours[p] + placed
            q = next((c for c in candidates if c not in (-1, atom, p) and c in placed), -1)
            r = -1
            if q != -1:  # a placed sibling first: its torsion is then a near-rigid offset (e.g. methyl Hs, ±120°)
                candidates = neighbours[p] + [parent[q]] + neighbours[q] + placed
                r = next((c for c in candidates if c not in (-1, atom, p, q) and c in placed), -1)
            rows.append((atom, p, q, r))
        placed.append(atom)
    return np.array(rows, dtype=np.int64)


class InternalCoordinates(Bijection):
    """Maps internal coordinates ``[*batch, 3N−6]`` (forward) to Cartesians ``[*batch, 3N]`` in nm.

    ``inverse`` accepts Cartesians in any frame (the internal coordinates are invariant);
    ``forward`` rebuilds them in the canonical frame of the Z-matrix's first three atoms.

    Arguments:
        n_atoms: the number of atoms N (at least 4).
        bonds: the bonds as pairs of atom indices; the bond graph must be connected.

    Example:
        >>> ic = InternalCoordinates(4, [(0, 1), (1, 2), (2, 3)])
        >>> x = torch.tensor([0.0, 0, 0, 0.15, 0, 0, 0.2, 0.14, 0, 0.35, 0.16, 0.05])
        >>> q, ladj = ic.inverse(x)
        >>> q.shape, ladj.shape
        (torch.Size([6]), torch.Size([]))
    """

    def __init__(self, n_atoms: int, bonds: Iterable[tuple[int, int]]) -> None:
        super().__init__()
        if n_atoms < 4:
            raise MlmolError(f"internal coordinates need at least 4 atoms, got {n_atoms}")
        z = zmatrix(n_atoms, bonds)
        self.n_atoms = n_atoms
        self.register_buffer("rows", torch.as_tensor(z))
        self.n_bonds, self.n_angles, self.n_torsions = n_atoms - 1, n_atoms - 2, n_atoms - 3

    @property
    def dim(self) -> int:
        """The number of internal coordinates, 3N − 6."""
        return 3 * self.n_atoms - 6

    @property
    def torsion_slice(self) -> slice:
        """Where the torsions lie in the internal coordinates (after the bonds and angles)."""
        return slice(self.n_bonds + self.n_angles, self.dim)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Internal coordinates ``[*batch, 3N−6]`` (bonds in nm, angles and torsions in radians) of
        Cartesians ``x`` ``[*batch, 3N]`` (nm), and log|det| ``[*batch]`` (= −log J)."""
        p = x.reshape(*x.shape[:-1], self.n_atoms, 3)
        a, b, c, d = (self.rows[:, k] for k in range(4))
        at = lambda idx: p[..., idx, :]
        bonds = torch.linalg.norm(at(a[1:]) - at(b[1:]), dim=-1)
        angles = _angle(at(a[2:]), at(b[2:]), at(c[2:]))
        torsions = dihedral_from_points(at(a[3:]), at(b[3:]), at(c[3:]), at(d[3:]))
        return torch.cat([bonds, angles, torsions], dim=-1), -_log_jacobian(bonds, angles)

    def forward(self, ic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cartesians ``[*batch, 3N]`` (nm, canonical frame) from internal coordinates ``ic``
        ``[*batch, 3N−6]`` (nm, radians), and log J ``[*batch]``."""
        bonds = ic[..., :self.n_bonds]
        angles = ic[..., self.n_bonds:self.n_bonds + self.n_angles]
        torsions = ic[..., self.torsion_slice]
        batch = ic.shape[:-1]
        positions: list[torch.Tensor | None] = [None] * self.n_atoms
        zeros = torch.zeros(*batch, dtype=ic.dtype, device=ic.device)
        rows = self.rows.tolist()
        positions[rows[0][0]] = torch.stack([zeros, zeros, zeros], -1)
        positions[rows[1][0]] = torch.stack([bonds[..., 0], zeros, zeros], -1) + positions[rows[1][1]]
        atom, p, q, _ = rows[2]
        u = positions[q] - positions[p]
        u = u / torch.linalg.norm(u, dim=-1, keepdim=True)
        y = torch.stack([zeros, zeros + 1, zeros], -1)
        b, theta = bonds[..., 1:2], angles[..., 0:1]
        positions[atom] = positions[p] + b * (torch.cos(theta) * u + torch.sin(theta) * y)
        for i, (atom, p, q, r) in enumerate(rows[3:]):
            b, theta, phi = bonds[..., i + 2:i + 3], angles[..., i + 1:i + 2], torsions[..., i:i + 1]
            bc = positions[p] - positions[q]
            bc = bc / torch.linalg.norm(bc, dim=-1, keepdim=True)
            n = torch.cross(positions[q] - positions[r], bc, dim=-1)
            n = n / torch.linalg.norm(n, dim=-1, keepdim=True)
            m = torch.cross(n, bc, dim=-1)
            positions[atom] = positions[p] + b * (-torch.cos(theta) * bc + torch.sin(theta) * torch.cos(phi) * m
                                                  + torch.sin(theta) * torch.sin(phi) * n)
        return torch.stack(positions, dim=-2).reshape(*batch, 3 * self.n_atoms), _log_jacobian(bonds, angles)
