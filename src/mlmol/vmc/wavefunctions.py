"""Antisymmetric wavefunctions: FermiNet (Pfau et al. 2020) and a Slater–Jastrow baseline.

Both map electron positions ``x`` ``[B, N, 3]`` (bohr; spin-up electrons first) to
``(sign ψ, log|ψ|)``, each ``[B]``. Exchanging two electrons of the same spin flips the sign
and leaves log|ψ| unchanged (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .systems import ElectronicSystem


def signed_logsumexp(signs: torch.Tensor, logs: torch.Tensor, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """(sign, log|·|) of Σ signs · exp(logs) along ``dim``, computed stably; ``signs`` and ``logs`` share a shape,
    the results lack ``dim``.

    Example:
        >>> signed_logsumexp(torch.tensor([1.0, -1.0]), torch.tensor([0.0, -1.0]))
        (tensor(1.), tensor(-0.4587))
    """
    top = logs.max(dim, keepdim=True).values.detach()
    total = (signs * torch.exp(logs - top)).sum(dim)
    return torch.sign(total), torch.log(total.abs()) + top.squeeze(dim)


def slogdet(matrices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign and log|det| of ``[B, K, n, n]`` matrices.

    With a single determinant (K = 1) and n ≥ 2 this goes through an LU factorisation: in PyTorch
    2.13, ``vmap`` over ``jacfwd(grad(...))`` of ``torch.linalg.slogdet`` (and of ``det`` and
    ``logdet``) gives wrong Hessians when each sample has one matrix, which is exactly how the local
    energy's Laplacian is computed; K ≥ 2 is unaffected and keeps the faster ``slogdet`` (both
    checked against finite differences in the tests)."""
    if matrices.shape[-3] > 1 or matrices.shape[-1] < 2:
        return torch.linalg.slogdet(matrices)
    lu, pivots = torch.linalg.lu_factor(matrices)
    diagonal = torch.diagonal(lu, dim1=-2, dim2=-1)
    swaps = (pivots != torch.arange(1, matrices.shape[-1] + 1, device=pivots.device)).sum(-1)
    sign = (1 - 2 * (swaps % 2)).to(diagonal.dtype) * torch.sign(diagonal).prod(-1)
    return sign, torch.log(diagonal.abs()).sum(-1)


def spin_slogdet(orbitals: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign and log|·| of Σ_k Π_spins det(Φ_k^spin) for orbital matrices ``[B, K, n_s, n_s]`` (spins with
    no electrons are left out: their determinant is 1)."""
    sign, log = None, None
    for phi in orbitals:
        if phi.shape[-1] == 0:
            continue
        s, l = slogdet(phi)
        sign, log = (s, l) if sign is None else (sign * s, log + l)
    return signed_logsumexp(sign, log)


def _pair_distances(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Electron–electron vectors ``[B, N, N, 3]`` and distances ``[B, N, N]`` (zero on the diagonal,
    with a finite gradient there)."""
    n = x.shape[1]
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    vectors = x[:, :, None, :] - x[:, None, :, :]
    return vectors, (vectors + eye[..., None]).norm(dim=-1) * (1 - eye)


class FermiNet(nn.Module):
    """FermiNet: one- and two-electron streams mixed by permutation-equivariant layers, then
    ``determinants`` pairs of spin-up and spin-down orbital matrices with exponential envelopes.

    Layer l: fᵢ = [hᵢ, mean_up h, mean_down h, mean_{j up} hᵢⱼ, mean_{j down} hᵢⱼ];
    hᵢ ← tanh(V fᵢ + b) (+ hᵢ when the width is unchanged); hᵢⱼ ← tanh(W hᵢⱼ + c) (+ hᵢⱼ).
    Orbital a of determinant k at electron j: (w_ka · hⱼ + g_ka) Σ_I π_kaI exp(−σ_kaI |rⱼ − R_I|).

    Arguments:
        molecule: the nuclei (bohr) and the electrons per spin.
        one: widths of the one-electron stream, one per layer.
        two: widths of the two-electron stream, one per layer (as many as ``one``).
        determinants: the number K of determinants.

    Example:
        >>> from mlmol.vmc.systems import get
        >>> psi = FermiNet(get("LiH")).double()
        >>> sign, log_abs = psi(torch.randn(3, 4, 3, dtype=torch.float64))
        >>> sign.shape, log_abs.shape
        (torch.Size([3]), torch.Size([3]))
    """

    def __init__(self, molecule: ElectronicSystem, one: Sequence[int] = (32, 32, 32), two: Sequence[int] = (8, 8, 8),
                 determinants: int = 4) -> None:
        super().__init__()
        if len(one) != len(two):
            raise ValueError("give one width per layer for both streams (len(one) == len(two))")
        charges, positions = molecule.tensors()
        self.register_buffer("charges", charges)
        self.register_buffer("nuclei", positions)
        self.n_up, self.n_down, self.determinants = molecule.n_up, molecule.n_down, determinants
        m = len(molecule.charges)
        width1, width2 = 4 * m, 4
        self.one, self.two = nn.ModuleList(), nn.ModuleList()
        for w1, w2 in zip(one, two, strict=True):
            self.one.append(nn.Linear(3 * width1 + 2 * width2, w1))
            self.two.append(nn.Linear(width2, w2))
            width1, width2 = w1, w2
        self.orbitals = nn.ModuleList(nn.Linear(width1, determinants * n) for n in (self.n_up, self.n_down))
        # envelopes: per spin, determinant, orbital and nucleus; π starts at 1, σ at Z (a 1s-like decay) for
        # each spin's first orbital and at 1 (FermiNet's initial value) for the others, whose tails reach out
        self.sigma = nn.ParameterList(nn.Parameter(self._initial_log_sigma(charges, determinants, n))
                                      for n in (self.n_up, self.n_down))
        self.pi = nn.ParameterList(nn.Parameter(torch.ones(determinants, n, m)) for n in (self.n_up, self.n_down))

    @staticmethod
    def _initial_log_sigma(charges: torch.Tensor, determinants: int, n: int) -> torch.Tensor:
        log_sigma = torch.zeros(determinants, n, len(charges))
        log_sigma[:, :1] = charges.float().clamp(max=4.0).log()
        return log_sigma

    def _means(self, h: torch.Tensor, dim: int) -> list[torch.Tensor]:
        up, down = h.narrow(dim, 0, self.n_up), h.narrow(dim, self.n_up, self.n_down)
        return [t.mean(dim) if t.shape[dim] else torch.zeros_like(h.select(dim, 0)) for t in (up, down)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sign ψ, log|ψ|), each ``[B]``, at electrons ``x`` ``[B, N, 3]`` (bohr; spin-up first)."""
        return spin_slogdet(self.orbital_matrices(x))

    def orbital_matrices(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Orbital matrices per spin, ``[B, K, a, j]``: orbital a of determinant k at electron j, for electrons
        ``x`` ``[B, N, 3]`` (bohr)."""
        nuclei = self.nuclei.to(x.dtype)
        en = x[:, :, None, :] - nuclei  # [B, N, M, 3]
        en_distance = en.norm(dim=-1)  # [B, N, M]
        h1 = torch.cat([en, en_distance[..., None]], -1).flatten(2)
        ee, ee_distance = _pair_distances(x)
        h2 = torch.cat([ee, ee_distance[..., None]], -1)
        n = x.shape[1]
        for layer1, layer2 in zip(self.one, self.two, strict=True):
            g_up, g_down = self._means(h1, 1)
            p_up, p_down = self._means(h2, 2)
            f = torch.cat([h1, g_up[:, None].expand(-1, n, -1), g_down[:, None].expand(-1, n, -1), p_up, p_down], -1)
            new1, new2 = torch.tanh(layer1(f)), torch.tanh(layer2(h2))
            h1 = new1 + h1 if new1.shape == h1.shape else new1
            h2 = new2 + h2 if new2.shape == h2.shape else new2
        matrices = []
        for s, (start, count) in enumerate(((0, self.n_up), (self.n_up, self.n_down))):
            if count == 0:
                matrices.append(x.new_zeros(x.shape[0], self.determinants, 0, 0))
                continue
            h = h1[:, start:start + count]  # [B, n_s, F]
            phi = self.orbitals[s](h).reshape(-1, count, self.determinants, count)  # electron j, det k, orbital a
            d = en_distance[:, start:start + count]  # [B, n_s, M]
            sigma, pi = torch.exp(self.sigma[s]).to(x.dtype), self.pi[s].to(x.dtype)  # [K, n_s(a), M]
            envelope = (pi * torch.exp(-sigma * d[:, :, None, None, :])).sum(-1)  # [B, j, K, a]
            matrices.append((phi * envelope).permute(0, 2, 3, 1))  # [B, K, a, j]
        return matrices


class SlaterJastrow(nn.Module):
    """One determinant per spin of Slater-type orbitals φ_a(r) = Σ_I Σ_m c_aIm exp(−ζ_Im |r − R_I|)
    (``exponents`` per nucleus, learnable), times the Jastrow factor exp(Σ_{i<j} a r/(1 + b r)) with
    the cusp values a = ½ for antiparallel and ¼ for parallel spins (b learnable).

    Arguments:
        molecule: the nuclei (bohr) and the electrons per spin.
        exponents: Slater exponents ζ per nucleus (1/bohr; initially Z, Z/2, Z/4, Z/8, then 0.1 Z).
    """

    def __init__(self, molecule: ElectronicSystem, exponents: int = 4) -> None:
        super().__init__()
        charges, positions = molecule.tensors()
        self.register_buffer("nuclei", positions)
        self.n_up, self.n_down = molecule.n_up, molecule.n_down
        m = len(molecule.charges)
        zeta = charges[:, None] * torch.tensor([1.0, 0.5, 0.25, 0.125][:exponents] + [0.1] * max(exponents - 4, 0))
        self.log_zeta = nn.Parameter(zeta.log().float())  # [M, exponents]
        g = torch.Generator().manual_seed(0)
        # orbital a starts as Σ_I exp(−ζ_{I,a} |r − R_I|): the a-th exponent on every nucleus (a shell-like
        # guess, the same combination on equivalent nuclei), plus a little noise
        self.coefficients = nn.ParameterList(
            nn.Parameter(self._initial_coefficients(n, m, exponents) + 0.1 * torch.randn(n, m * exponents, generator=g))
            for n in (self.n_up, self.n_down))
        self.log_b = nn.Parameter(torch.zeros(()))
        n = molecule.n_electrons
        spin = torch.tensor([0] * self.n_up + [1] * self.n_down)
        i, j = torch.triu_indices(n, n, 1)
        self.register_buffer("pairs", torch.stack([i, j]))
        self.register_buffer("cusp", torch.where(spin[i] == spin[j], 0.25, 0.5).double())

    @staticmethod
    def _initial_coefficients(orbitals: int, nuclei: int, exponents: int) -> torch.Tensor:
        c = torch.zeros(orbitals, nuclei, exponents)
        for a in range(orbitals):
            c[a, :, min(a, exponents - 1)] = 1.0
        return c.flatten(1)

    def orbital_matrices(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Orbital matrices per spin, ``[B, 1, a, j]``: orbital a at electron j, for electrons ``x`` ``[B, N, 3]``
        (bohr)."""
        d = (x[:, :, None, :] - self.nuclei.to(x.dtype)).norm(dim=-1)  # [B, N, M]
        basis = torch.exp(-torch.exp(self.log_zeta).to(x.dtype) * d[..., None]).flatten(2)  # [B, N, M·exponents]
        matrices = []
        for s, (start, count) in enumerate(((0, self.n_up), (self.n_up, self.n_down))):
            phi = basis[:, start:start + count] @ self.coefficients[s].to(x.dtype).T  # [B, j, a]
            matrices.append(phi.transpose(1, 2)[:, None])
        return matrices

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sign ψ, log|ψ|), each ``[B]``, at electrons ``x`` ``[B, N, 3]`` (bohr; spin-up first)."""
        sign, log = spin_slogdet(self.orbital_matrices(x))
        if self.pairs.shape[1]:
            r = (x[:, self.pairs[0]] - x[:, self.pairs[1]]).norm(dim=-1)
            log = log + (self.cusp.to(x.dtype) * r / (1 + torch.exp(self.log_b) * r)).sum(-1)
        return sign, log


class HydrogenGroundState(nn.Module):
    """ψ = exp(−r) / √π, the hydrogen atom's ground state at the origin (E = −½ hartree exactly):
    a reference for the local energy."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sign ψ, log|ψ|), each ``[B]``, at the electron ``x`` ``[B, 1, 3]`` (bohr)."""
        r = x[:, 0].norm(dim=-1)
        return torch.ones_like(r), -r - 0.5 * math.log(math.pi)
