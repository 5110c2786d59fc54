"""Hartree–Fock by pyscf, and pre-training a wavefunction's orbitals to it (Pfau et al. 2020, §Methods).

pyscf is an optional dependency (``pip install -e ".[vmc]"``), imported only here and only when
called. Hartree–Fock is unrestricted (UHF) for open shells and restricted (RHF) otherwise.

Pre-training fits every determinant's orbital matrices Φ_k[a, j] = φ_ka(r_j) to the Hartree–Fock
orbitals at electron positions drawn from |ψ_HF|², by least squares. It starts VMC near the
Hartree–Fock energy instead of from a random network; the VMC loss takes over from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import MlmolError
from ..progress import progress as progress_bar
from .sampling import Walkers
from .systems import ELEMENTS, ElectronicSystem
from .wavefunctions import FermiNet, SlaterJastrow, spin_slogdet


def _pyscf():
    try:
        import pyscf  # noqa: F401
        from pyscf import gto, scf
    except ImportError as error:
        raise MlmolError('Hartree–Fock needs pyscf, which is not installed: pip install -e ".[vmc]" in the mlmol '
                         "checkout (or pip install pyscf); or run without pre-training (--pretrain 0)") from error
    return gto, scf


@dataclass
class HartreeFock:
    """A converged Hartree–Fock solution: ``energy`` (hartree), and the occupied orbitals' coefficients
    per spin in the atomic basis of the pyscf molecule ``mol``.

    Arguments:
        energy: the Hartree–Fock energy (hartree).
        basis: the pyscf basis name.
        mol: the pyscf ``Mole`` (positions in bohr).
        coefficients: per spin (up, down), the occupied orbitals' coefficients ``[n_ao, n_spin]``.
    """

    energy: float
    basis: str
    mol: object = field(repr=False)
    coefficients: tuple[np.ndarray, np.ndarray] = field(repr=False)

    def orbitals(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Occupied orbitals at the electrons ``x`` ``[B, N, 3]`` (bohr; spin-up first), per spin as
        ``[B, 1, a, j]``: orbital a at electron j of that spin (the layout of ``FermiNet.orbital_matrices``)."""
        n_up = self.coefficients[0].shape[1]
        batch, n = x.shape[:2]
        coords = x.detach().reshape(-1, 3).cpu().double().numpy()
        ao = self.mol.eval_gto("GTOval_cart" if self.mol.cart else "GTOval_sph", coords).reshape(batch, n, -1)
        out = []
        for c, part in zip(self.coefficients, (ao[:, :n_up], ao[:, n_up:]), strict=True):
            phi = torch.from_numpy(np.ascontiguousarray((part @ c).transpose(0, 2, 1)))
            out.append(phi[:, None].to(x.dtype))
        return out


class HartreeFockWavefunction(nn.Module):
    """The Hartree–Fock Slater determinant as a wavefunction ``x -> (sign, log|ψ|)`` (no parameters;
    for sampling |ψ_HF|²).

    Arguments:
        hf: the Hartree–Fock solution.
    """

    def __init__(self, hf: HartreeFock) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sign ψ, log|ψ|), each ``[B]``, at electrons ``x`` ``[B, N, 3]`` (bohr; spin-up first)."""
        return spin_slogdet(self.hf.orbitals(x))


def hartree_fock(molecule: ElectronicSystem, basis: str = "cc-pvdz") -> HartreeFock:
    """Run Hartree–Fock on ``molecule`` in the Gaussian ``basis`` (any pyscf basis name).

    Example:
        >>> from mlmol.vmc.systems import get
        >>> hf = hartree_fock(get("He"))  # needs pyscf  # doctest: +SKIP
        >>> hf.energy  # doctest: +SKIP
        -2.855...
    """
    gto, scf = _pyscf()
    atoms = [[_symbol(z), p] for z, p in zip(molecule.charges, molecule.positions, strict=True)]
    try:
        mol = gto.M(atom=atoms, unit="Bohr", basis=basis,
                    spin=molecule.n_up - molecule.n_down, charge=round(sum(molecule.charges)) - molecule.n_electrons,
                    verbose=0)
    except (KeyError, RuntimeError, ValueError, AssertionError) as error:
        raise MlmolError(f"pyscf could not build {molecule.name} in basis {basis!r}: {error}") from error
    solver = scf.UHF(mol) if molecule.n_up != molecule.n_down else scf.RHF(mol)
    energy = float(solver.kernel())
    if not solver.converged:
        raise MlmolError(f"Hartree–Fock did not converge for {molecule.name} in {basis}; try another basis")
    coefficients, occupations = solver.mo_coeff, solver.mo_occ
    if coefficients.ndim == 2:  # restricted: the same spatial orbitals for both spins
        coefficients, occupations = (coefficients, coefficients), (occupations / 2, occupations / 2)
    occupied = tuple(c[:, o > 0.5][:, :n] for c, o, n in
                     zip(coefficients, occupations, (molecule.n_up, molecule.n_down), strict=True))
    return HartreeFock(energy, basis, mol, occupied)


def _symbol(z: float) -> str:
    names = {float(v): k for k, v in ELEMENTS.items()}
    if z not in names:
        raise MlmolError(f"Hartree–Fock needs the nuclear charges of known elements ({', '.join(ELEMENTS)}); got {z}")
    return names[z]


def pretrain(wavefunction: FermiNet | SlaterJastrow, hf: HartreeFock, molecule: ElectronicSystem, steps: int = 1000, walkers: int = 512,
             lr: float = 3e-4, seed: int = 0, progress: bool = False) -> tuple[torch.Tensor, list[float]]:
    """Fit ``wavefunction.orbital_matrices`` to the Hartree–Fock orbitals for ``steps`` Adam steps on
    ``walkers`` sampling |ψ_HF|² and as many sampling the network's |ψ|² (FermiNet's mixture: the
    second set finds where the network puts weight that Hartree–Fock does not). Returns the
    Hartree–Fock walkers' final positions (to start VMC from) and the loss per step (squared
    orbital differences summed over each matrix, averaged over samples and determinants).

    Arguments:
        wavefunction: a wavefunction with ``orbital_matrices(x)`` (per spin ``[B, K, a, j]``).
        hf: the Hartree–Fock solution to fit.
        molecule: the molecule of both.
        steps: Adam steps.
        walkers: walkers per sampler.
        lr: Adam's learning rate.
        seed: seeds the walkers.
        progress: show a progress bar.

    Returns:
        The Hartree–Fock walkers ``[walkers, N, 3]`` (bohr) and the losses ``[steps]``.
    """
    if not isinstance(wavefunction, (FermiNet, SlaterJastrow)):
        raise MlmolError(f"{type(wavefunction).__name__} has no orbital matrices to pre-train; pre-train a FermiNet "
                         "or a Slater–Jastrow wavefunction")
    samplers = [Walkers(HartreeFockWavefunction(hf), molecule, walkers, seed=seed),
                Walkers(wavefunction, molecule, walkers, seed=seed + 1)]
    samplers[0].step(100)
    samplers[1].place(samplers[0].x.clone())
    optimizer = torch.optim.Adam(wavefunction.parameters(), lr=lr)
    losses = []
    for _ in progress_bar(range(steps), desc=f"pre-train {molecule.name} to HF/{hf.basis}", enabled=progress):
        for sampler in samplers:
            sampler.step(2)
            if sampler is samplers[1]:  # the network changed since its walkers' last step
                sampler.place(sampler.x)
        x = torch.cat([sampler.x for sampler in samplers])
        target = hf.orbitals(x)
        loss = sum(((phi - t) ** 2).sum((-2, -1)).mean() for phi, t in
                   zip(wavefunction.orbital_matrices(x), target, strict=True) if phi.shape[-1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return samplers[0].x, losses
