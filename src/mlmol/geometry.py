"""Geometry on flat coordinates, the bottom layer under systems and flows: torsions from points,
particle views and distances, centring, and relabelling identical particles.

Coordinates are flat, particle-major: ``x[..., i * d + k]`` is coordinate k of particle i in
``d`` spatial dimensions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def dihedral_from_points(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Torsion angle a-b-c-d in radians, (−π, π], for points of shape ``[*batch, 3]``.

    Arguments:
        a: the four points, each ``[*batch, 3]`` (any length unit).
        b: the four points, each ``[*batch, 3]`` (any length unit).
        c: the four points, each ``[*batch, 3]`` (any length unit).
        d: the four points, each ``[*batch, 3]`` (any length unit).

    Returns:
        The torsion angles ``[*batch]`` (radians).

    Example:
        >>> p = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
        >>> dihedral_from_points(*p).abs()
        tensor(3.1416)
    """
    b1 = c - b
    b1 = b1 / torch.linalg.norm(b1, dim=-1, keepdim=True)
    v = (a - b) - ((a - b) * b1).sum(-1, keepdim=True) * b1
    w = (d - c) - ((d - c) * b1).sum(-1, keepdim=True) * b1
    return torch.atan2((torch.cross(b1, v, dim=-1) * w).sum(-1), (v * w).sum(-1))


def particle_view(x: torch.Tensor, n_particles: int, spatial_dim: int) -> torch.Tensor:
    """Flat coordinates ``[*batch, n * d]`` as particles ``[*batch, n, d]`` (a view where possible).

    Arguments:
        x: flat, particle-major coordinates ``[*batch, n * d]``.
        n_particles: the number of particles n.
        spatial_dim: the spatial dimension d.
    """
    return x.reshape(*x.shape[:-1], n_particles, spatial_dim)


def pair_distances(x: torch.Tensor, n_particles: int, spatial_dim: int) -> torch.Tensor:
    """Distances of all pairs i < j, ``[*batch, n (n − 1) / 2]`` in the order of ``torch.triu_indices``.

    Arguments:
        x: flat, particle-major coordinates ``[*batch, n * d]``.
        n_particles: the number of particles n.
        spatial_dim: the spatial dimension d.

    Example:
        >>> pair_distances(torch.tensor([0.0, 0.0, 3.0, 4.0, 0.0, 1.0]), 3, 2)
        tensor([5.0000, 1.0000, 4.2426])
    """
    r = particle_view(x, n_particles, spatial_dim)
    i, j = torch.triu_indices(n_particles, n_particles, 1, device=x.device)
    return torch.linalg.vector_norm(r[..., i, :] - r[..., j, :], dim=-1)


def remove_mean(x: torch.Tensor, n_particles: int, spatial_dim: int) -> torch.Tensor:
    """Coordinates relative to the centre of mass (equal masses), same shape as ``x`` ``[*batch, n * d]``.

    Arguments:
        x: flat, particle-major coordinates ``[*batch, n * d]``.
        n_particles: the number of particles n.
        spatial_dim: the spatial dimension d.
    """
    r = particle_view(x, n_particles, spatial_dim)
    return (r - r.mean(-2, keepdim=True)).reshape(x.shape)


def hungarian_relabel(x: torch.Tensor, reference: torch.Tensor, first: int = 2, spatial_dim: int = 2,
                      chunk: int = 10_000) -> torch.Tensor:
    """Relabel the identical particles ``first, first + 1, ...`` of each configuration to a reference.

    Solves the assignment that minimises Σ |x_π(i) − ref_i|² (Hungarian algorithm, scipy) and
    reorders the particles accordingly; earlier particles keep their labels. ``reference`` is one
    configuration ``[dim]`` or one per configuration (same shape as ``x``). With one reference the
    images of all configurations form one permutation sector: a fundamental domain of the
    permutation group. Memory: ``chunk`` configurations' cost matrices at a time.

    Arguments:
        x: flat, particle-major coordinates ``[*batch, n * d]``.
        reference: one configuration ``[n * d]``, or one per configuration (the shape of ``x``).
        first: the index of the first relabelled particle.
        spatial_dim: the spatial dimension d.
        chunk: the number of configurations per batch of assignment problems.

    Returns:
        The relabelled coordinates, the shape and dtype of ``x`` (detached).
    """
    r = x.detach().reshape(*x.shape[:-1], -1, spatial_dim).clone()
    flat = r.reshape(-1, *r.shape[-2:])
    ref = reference.detach().to(r).reshape(-1, *flat.shape[1:])  # one reference, or one per configuration
    for rows in torch.arange(len(flat), device=flat.device).split(chunk):  # cost matrices chunk by chunk
        part = flat[rows]
        ref_rows = ref[rows] if len(ref) > 1 else ref.expand(len(rows), -1, -1)
        cost = torch.cdist(ref_rows[:, first:], part[:, first:]).pow(2).cpu().numpy()
        order = torch.as_tensor(np.stack([linear_sum_assignment(c)[1] for c in cost]), device=r.device) + first
        part[:, first:] = torch.gather(part, 1, order[..., None].expand(-1, -1, spatial_dim))
        flat[rows] = part
    return flat.reshape(x.shape).to(x.dtype)


def in_sector(x: torch.Tensor, reference: torch.Tensor, first: int = 2, spatial_dim: int = 2) -> torch.Tensor:
    """True where relabelling to ``reference`` leaves the configuration unchanged, ``[*batch]``.

    Arguments:
        x: flat, particle-major coordinates ``[*batch, n * d]``.
        reference: as for :func:`hungarian_relabel`.
        first: the index of the first relabelled particle.
        spatial_dim: the spatial dimension d.
    """
    return (hungarian_relabel(x, reference, first, spatial_dim) == x).all(-1)


def wrap_angle(angle: torch.Tensor) -> torch.Tensor:
    """Angles (radians) mapped into [−π, π): periodic differences and torsions on one circle.

    Example:
        >>> wrap_angle(torch.tensor([3 * math.pi / 2, -math.pi]))
        tensor([-1.5708, -3.1416])
    """
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def dihedral(x: torch.Tensor, i: int, j: int, k: int, m: int) -> torch.Tensor:
    """Torsion angle ``[*batch]`` (radians, in (−π, π]) of atoms i-j-k-m for flat coordinates ``[*batch, 3N]`` (nm)."""
    p = x.reshape(*x.shape[:-1], -1, 3)
    return dihedral_from_points(p[..., i, :], p[..., j, :], p[..., k, :], p[..., m, :])


def dihedral_of(x: torch.Tensor, atoms: tuple[int, int, int, int]) -> torch.Tensor:
    """:func:`dihedral` of the four ``atoms``: torsions ``[*batch]`` (radians) of coordinates ``[*batch, 3N]`` (nm)."""
    return dihedral(x, *atoms)
