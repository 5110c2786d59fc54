"""Systems of identical particles: DW-4, LJ-13 (Köhler et al. 2020) and the solvated dimer (Noé et al. 2019).

Coordinates are flat, particle-major: ``x[..., i * d + k]`` is coordinate k of particle i in
``d`` spatial dimensions. All energies are reduced (units of kT, kT = 1) and lengths are in
the papers' dimensionless units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch

from ..errors import MlmolError
from ..geometry import hungarian_relabel, in_sector, pair_distances, particle_view, remove_mean
from .base import Energy


def icosahedron(radius: float = 1.0) -> torch.Tensor:
    """A particle at the origin and 12 on a regular icosahedron of circumradius ``radius``, ``[13, 3]`` (float64).

    Example:
        >>> icosahedron(2.0).norm(dim=-1)[:3]
        tensor([0., 2., 2.], dtype=torch.float64)
    """
    golden = (1 + math.sqrt(5)) / 2
    vertices = []
    for a in (-1.0, 1.0):
        for b in (-golden, golden):
            vertices += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    v = torch.tensor(vertices, dtype=torch.float64)
    return torch.cat([torch.zeros(1, 3, dtype=torch.float64), radius * v / v.norm(dim=-1, keepdim=True)])


class ParticleSystem(Energy):
    """An energy of ``n_particles`` identical particles in ``spatial_dim`` dimensions.

    ``symmetric`` says which symmetries leave the energy unchanged: permutations of all
    particles, rotations and translations (the latter two for systems without walls).

    Arguments:
        n_particles: the number of particles n.
        spatial_dim: the spatial dimension d (coordinates ``[*batch, n * d]``).
        kT: the thermal energy (1 in reduced units).
    """

    n_particles: int
    spatial_dim: int
    profile_coords = ()  # profiles along Cartesian coordinates mean nothing for identical particles

    def __init__(self, n_particles: int, spatial_dim: int, kT: float = 1.0) -> None:
        super().__init__(n_particles * spatial_dim, kT)
        self.n_particles, self.spatial_dim = int(n_particles), int(spatial_dim)

    def particle_energy(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """The terms of u that involve particle ``i``, ``[*batch]``: moving only particle i changes u
        by exactly the change of this (single-particle Monte Carlo moves use it)."""
        raise NotImplementedError

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """All pair distances i < j, ``[*batch, n (n − 1) / 2]``."""
        return pair_distances(x, self.n_particles, self.spatial_dim)

    def extra_repr(self) -> str:
        """``n_particles``, ``spatial_dim`` and ``kT``, for the module's ``repr``."""
        return f"n_particles={self.n_particles}, spatial_dim={self.spatial_dim}, kT={self.kT}"


class MultiDoubleWell(ParticleSystem):
    """DW-4: particles with the pairwise double well of Köhler, Klein & Noé, ICML 2020.

    u(x) = Σ_{i<j} a (d_ij − d₀)⁴ + b (d_ij − d₀)² + c with (a, b, c, d₀) = (0.9, −4, 0, 4),
    4 particles in 2D, kT = 1. Each pair prefers d₀ ± √(−b / 2a) ≈ 4 ± 1.49. The energy is
    invariant to permutations, rotations, reflections and translations; densities are
    reported on centre-of-mass-free coordinates.

    Arguments:
        n_particles: the number of particles.
        spatial_dim: the spatial dimension.
        a: the coefficients of the pair potential (kT per power of length).
        b: the coefficients of the pair potential (kT per power of length).
        c: the coefficients of the pair potential (kT per power of length).
        d0: the centre d₀ of the pair double well (length).
    """

    name = "dw4"

    def __init__(self, n_particles: int = 4, spatial_dim: int = 2, a: float = 0.9, b: float = -4.0,
                 c: float = 0.0, d0: float = 4.0) -> None:
        super().__init__(n_particles, spatial_dim)
        self.a, self.b, self.c, self.d0 = a, b, c, d0

        if (n_particles, spatial_dim) == (4, 2):  # a start for reference chains: a square near the pair minima
            self.minima = (tuple((3.9 / 2 * torch.tensor([-1.0, -1, 1, -1, 1, 1, -1, 1])).tolist()),)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy ``[*batch]`` (kT) of ``x`` ``[*batch, n * d]``."""
        self.check_input(x)
        return self._pair_sum(self.distances(x))

    def particle_energy(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """The pair terms of particle ``i``, ``[*batch]`` (kT)."""
        r = particle_view(x, self.n_particles, self.spatial_dim)
        others = torch.arange(self.n_particles, device=x.device) != i
        return self._pair_sum(torch.linalg.vector_norm(r[..., others, :] - r[..., i : i + 1, :], dim=-1))

    def _pair_sum(self, d: torch.Tensor) -> torch.Tensor:
        """Σ a (d − d₀)⁴ + b (d − d₀)² + c over the last axis of pair distances ``d``."""
        s = d - self.d0
        return (self.a * s**4 + self.b * s**2 + self.c).sum(-1)


class LennardJones(ParticleSystem):
    """LJ-13: Lennard-Jones particles in 3D with a harmonic centre-of-mass oscillator (Köhler et al. 2020).

    u(x) = f Σ_{i<j} ε [(r_m / r_ij)¹² − 2 (r_m / r_ij)⁶] + (k/2) Σ_i |x_i − x̄|², with ε = r_m = 1,
    k = 1, kT = 1. The pair well has depth ε at r_m.

    The factor ``f``: the original code (bgflow's ``LennardJonesPotential``) sums over ordered
    pairs, counting every pair twice, and the published LJ-13 datasets and likelihoods use that
    energy. We follow it: ``pair_factor = 2`` (equivalently ε = 2 per unordered pair). Set
    ``pair_factor=1`` for the textbook convention.

    Arguments:
        n_particles: the number of particles.
        spatial_dim: the spatial dimension.
        epsilon: the well depth ε (kT).
        r_min: the distance r_m of the pair minimum (length).
        oscillator: the spring constant k of the centre-of-mass oscillator (kT / length²).
        pair_factor: the factor f on the pair sum (2: bgflow's ordered pairs).
    """

    name = "lj13"

    def __init__(self, n_particles: int = 13, spatial_dim: int = 3, epsilon: float = 1.0, r_min: float = 1.0,
                 oscillator: float = 1.0, pair_factor: float = 2.0) -> None:
        super().__init__(n_particles, spatial_dim)
        self.epsilon, self.r_min, self.oscillator, self.pair_factor = epsilon, r_min, oscillator, pair_factor
        if (n_particles, spatial_dim) == (13, 3):  # a start for reference chains: a centred icosahedron
            self.minima = (tuple(icosahedron(r_min).reshape(-1).tolist()),)

    def particle_energy(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """The pair terms of particle ``i`` plus the whole oscillator (it moves with x̄), ``[*batch]``:
        moving only particle i changes u by exactly the change of this."""
        r = particle_view(x, self.n_particles, self.spatial_dim)
        others = torch.arange(self.n_particles, device=x.device) != i
        r2 = ((r[..., others, :] - r[..., i : i + 1, :]) ** 2).sum(-1)
        return self._pair_sum((self.r_min**2 / r2) ** 3) + self._oscillator(x)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy ``[*batch]`` (kT) of ``x`` ``[*batch, n * d]``."""
        self.check_input(x)
        return self._pair_sum((self.r_min / self.distances(x)) ** 6) + self._oscillator(x)

    def _pair_sum(self, q6: torch.Tensor) -> torch.Tensor:
        """f ε Σ (q⁶² − 2 q⁶) over the last axis, for q⁶ = (r_m / r)⁶ of the pairs."""
        return self.pair_factor * self.epsilon * (q6**2 - 2 * q6).sum(-1)

    def _oscillator(self, x: torch.Tensor) -> torch.Tensor:
        centred = remove_mean(x, self.n_particles, self.spatial_dim)
        return 0.5 * self.oscillator * (centred**2).sum(-1)


def dimer_distance(x: torch.Tensor) -> torch.Tensor:
    """Distance between particles 0 and 1 (the dimer) of a 2D particle system, ``[*batch]``."""
    return torch.linalg.vector_norm(x[..., 0:2] - x[..., 2:4], dim=-1)


class SolvatedDimer(ParticleSystem):
    """The bistable dimer in a box of repulsive solvent of Noé et al., Science 2019 (Fig. 3), kT = 1.

    Particles 0 and 1 form the dimer; 36 solvent particles, all in 2D (76 coordinates). With
    s = 2 (d − 1.5), d the dimer distance,

    - dimer bond:  c s − a s² + b s⁴ with a = 25, b = 10 and c = 2 (closed d ≈ 0.93 favoured by
      about 4.5 kT in bare energy, open d ≈ 2.05, barrier ≈ 18 kT above closed);
    - repulsion: ε Σ (r_m / r_ij)¹² over all pairs except the dimer pair, ε = 1, r_m = 1.1;
    - walls: k_w δ² per particle and axis for δ the distance beyond |x| = 3 (box half-width),
      k_w = 200;
    - restraint holding the dimer centred on the x axis: k_d [(x₀ + x₁)² + y₀² + y₁²], k_d = 20.

    Constants are those of the paper's code (``ParticleDimer`` in noegroup/paper_boltzmann_generators)
    with the parameters its runs loaded: the supplement's table lists c = −0.5 but the runs used
    c = 2, and its code puts 2 × box_k = 200 on the walls. The energy is invariant to permutations
    of the solvent only.

    Arguments:
        n_solvent: the number of solvent particles (a square number for :meth:`lattice`).
        epsilon: the repulsion strength ε (kT).
        r_min: the repulsion length r_m.
        slope: the dimer's linear coefficient c (kT).
        a: the dimer's quadratic and quartic coefficients (kT).
        b: the dimer's quadratic and quartic coefficients (kT).
        d_mid: the dimer distance at the centre of the bond potential (1.5).
        k_dimer: the restraint constant k_d (kT / length²).
        box_half: the box half-width.
        k_wall: the wall constant k_w (kT / length²).
    """

    name = "solvated-dimer"
    variables: ClassVar[dict[str, Callable[[torch.Tensor], torch.Tensor]]] = {"d": dimer_distance}
    states = ("d > 1.5", "d < 1.5")  # ΔF reported: open − closed
    # the RC loss spreads samples along x₁ ≈ d / 2 (the restraint centres the dimer), d from 0.7 to 2.3
    rc = (2, 0.35, 1.15)

    def __init__(self, n_solvent: int = 36, epsilon: float = 1.0, r_min: float = 1.1, slope: float = 2.0,
                 a: float = 25.0, b: float = 10.0, d_mid: float = 1.5, k_dimer: float = 20.0,
                 box_half: float = 3.0, k_wall: float = 200.0) -> None:
        super().__init__(n_solvent + 2, 2)
        self.epsilon, self.r_min, self.slope, self.a, self.b, self.d_mid = epsilon, r_min, slope, a, b, d_mid
        self.k_dimer, self.box_half, self.k_wall = k_dimer, box_half, k_wall
        i, j = torch.triu_indices(self.n_particles, self.n_particles, 1)
        keep = ~((i == 0) & (j == 1))
        self.register_buffer("_i", i[keep], persistent=False)
        self.register_buffer("_j", j[keep], persistent=False)
        self.minima = (tuple(self.lattice(1.0).tolist()), tuple(self.lattice(2.0).tolist()))

    def lattice(self, d: float) -> torch.Tensor:
        """A start ``[2 (n_solvent + 2)]`` (float64): the dimer at (±d/2, 0), the solvent on a 6 × 6 grid,
        everything scaled by 1.05 (the paper's)."""
        n_side = math.isqrt(self.n_particles - 2)
        if n_side**2 != self.n_particles - 2:
            raise MlmolError(f"lattice starts need a square number of solvent particles, got {self.n_particles - 2}")
        grid = torch.linspace(-self.box_half - 1, self.box_half + 1, n_side + 2, dtype=torch.float64)[1:-1]
        gx, gy = torch.meshgrid(grid, grid, indexing="xy")
        solvent = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
        dimer = torch.tensor([[-d / 2, 0.0], [d / 2, 0.0]], dtype=torch.float64)
        return 1.05 * torch.cat([dimer, solvent]).reshape(-1)

    def mirror_images(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` and its images under the box's reflections, ``[4 n, 76]``: y → −y; x → −x with the
        dimer's two particles swapped (so particle 0 stays on the left, as the restraint keeps it);
        both. The energy is invariant to each (exact data augmentation; relabel the solvent after)."""
        r = particle_view(x, self.n_particles, 2)
        mirror_y = torch.tensor([1.0, -1.0], dtype=r.dtype, device=r.device)
        order = torch.tensor([1, 0, *range(2, self.n_particles)], device=r.device)
        flip_y = r * mirror_y
        flip_xy = (-flip_y)[..., order, :]  # both reflections, dimer swapped
        images = [r, flip_y, flip_xy * mirror_y, flip_xy]
        return torch.cat([image.reshape(x.shape) for image in images])

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """The mirror images of ``x`` (:meth:`mirror_images`), ``[4 n, 76]``."""
        return self.mirror_images(x)

    def canonical(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with the solvent relabelled to the lattice at d = ``d_mid`` (:func:`hungarian_relabel`):
        "solvent particle 7" then means the same place in every configuration, one permutation sector."""
        return hungarian_relabel(x, self.lattice(self.d_mid))

    def in_canonical(self, x: torch.Tensor) -> torch.Tensor:
        """Configurations in that sector (:func:`in_sector`). Weights restricted to it stay exact for
        everything invariant to solvent permutations (d, ΔF, u): each configuration has one copy there."""
        return in_sector(x, self.lattice(self.d_mid))

    def dimer_energy(self, d: torch.Tensor) -> torch.Tensor:
        """The dimer bond c s − a s² + b s⁴ (kT), s = 2 (d − ``d_mid``), elementwise in the distances ``d``."""
        s = 2 * (d - self.d_mid)
        return self.slope * s - self.a * s**2 + self.b * s**4

    def _dimer_terms(self, x: torch.Tensor) -> torch.Tensor:
        """The dimer bond and the restraint holding the dimer centred on the x axis, ``[*batch]``."""
        restraint = self.k_dimer * ((x[..., 0] + x[..., 2]) ** 2 + x[..., 1] ** 2 + x[..., 3] ** 2)
        return self.dimer_energy(dimer_distance(x)) + restraint

    def particle_energy(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """The terms of u that involve particle ``i``, ``[*batch]``: moving only particle i changes u
        by exactly the change of this (used by single-particle Monte Carlo moves)."""
        r = particle_view(x, self.n_particles, 2)
        r2 = ((r - r[..., i : i + 1, :]) ** 2).sum(-1)
        skip = torch.zeros(self.n_particles, dtype=torch.bool, device=x.device)
        skip[i] = True
        if i < 2:
            skip[1 - i] = True  # the dimer pair has its own bond instead of the repulsion
        q12 = self._inverse_12(torch.where(skip, torch.ones_like(r2), r2))
        u = self.epsilon * torch.where(skip, torch.zeros_like(q12), q12).sum(-1) + self._walls(r[..., i, :], -1)
        return u + self._dimer_terms(x) if i < 2 else u

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy ``[*batch]`` (kT) of ``x`` ``[*batch, 2 (n_solvent + 2)]``."""
        self.check_input(x)
        r = particle_view(x, self.n_particles, 2)
        q12 = self._inverse_12(((r[..., self._i, :] - r[..., self._j, :]) ** 2).sum(-1))
        return self._dimer_terms(x) + self.epsilon * q12.sum(-1) + self._walls(r, (-1, -2))

    def _inverse_12(self, r2: torch.Tensor) -> torch.Tensor:
        """(r_m² / r²)⁶ for squared pair distances ``r2``, elementwise (the repulsion over ε)."""
        q = self.r_min**2 / r2
        q = q * q * q
        return q * q

    def _walls(self, r: torch.Tensor, dims) -> torch.Tensor:
        """k_w Σ δ² over ``dims`` of particle positions ``r``, δ the distance beyond the box per coordinate."""
        return self.k_wall * (torch.clamp(r.abs() - self.box_half, min=0.0) ** 2).sum(dims)
