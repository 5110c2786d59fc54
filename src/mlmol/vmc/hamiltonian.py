"""The electronic Hamiltonian in the Born–Oppenheimer approximation (hartree, bohr).

The local energy of a wavefunction ψ at electron positions x is
E_L(x) = −½ Σᵢ ∇ᵢ² ψ / ψ + V(x) = −½ (∇² log|ψ| + |∇ log|ψ||²) + V(x),
with the exact Laplacian of log|ψ| by forward-over-reverse automatic differentiation
(``torch.func``; one Hessian-vector product per electron coordinate).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, jacfwd, vmap

from .systems import ElectronicSystem


def potential_energy(x: torch.Tensor, molecule: ElectronicSystem) -> torch.Tensor:
    """V(x) ``[B]`` (hartree) for electrons ``x`` ``[B, N, 3]`` (bohr): electron–nucleus attraction,
    electron–electron and nucleus–nucleus repulsion.

    Example:
        >>> from mlmol.vmc.systems import get
        >>> potential_energy(torch.tensor([[[1.0, 0.0, 0.0]]], dtype=torch.float64), get("H"))
        tensor([-1.], dtype=torch.float64)
    """
    charges, positions = (t.to(x.dtype) for t in molecule.tensors())
    v = -(charges / (x[:, :, None, :] - positions).norm(dim=-1)).sum((1, 2))
    n = x.shape[1]
    if n > 1:
        i, j = torch.triu_indices(n, n, 1)
        v = v + (1 / (x[:, i] - x[:, j]).norm(dim=-1)).sum(-1)
    return v + molecule.nuclear_repulsion()


def kinetic_energy(wavefunction: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """−½ ∇²ψ / ψ ``[B]`` (hartree) by the exact Laplacian of log|ψ| (no gradient to the parameters).

    Arguments:
        wavefunction: maps electrons ``[B, N, 3]`` (bohr) to ``(sign ψ, log|ψ|)``, each ``[B]``.
        x: electron positions ``[B, N, 3]`` (bohr).
    """
    params = {k: v.detach() for k, v in wavefunction.named_parameters()}
    buffers = dict(wavefunction.named_buffers())
    shape = x.shape[1:]

    def log_abs(flat):
        return functional_call(wavefunction, (params, buffers), (flat.reshape(1, *shape),))[1][0]

    def gradient_with_aux(flat):
        g = grad(log_abs)(flat)
        return g, g

    def one(flat):
        hessian, g = jacfwd(gradient_with_aux, has_aux=True)(flat)
        return -0.5 * (torch.diagonal(hessian).sum() + (g**2).sum())

    return vmap(one)(x.detach().flatten(1))


def local_energy(wavefunction: nn.Module, x: torch.Tensor, molecule: ElectronicSystem) -> torch.Tensor:
    """E_L(x) ``[B]`` in hartree at electrons ``x`` ``[B, N, 3]`` (bohr): :func:`kinetic_energy` +
    :func:`potential_energy`, without gradients to the parameters or to x.

    Example:
        >>> from mlmol.vmc.systems import get
        >>> from mlmol.vmc.wavefunctions import HydrogenGroundState
        >>> x = torch.randn(5, 1, 3, dtype=torch.float64)
        >>> local_energy(HydrogenGroundState(), x, get("H"))  # exact eigenstate: E_L = −½ everywhere
        tensor([-0.5000, -0.5000, -0.5000, -0.5000, -0.5000], dtype=torch.float64)
    """
    return kinetic_energy(wavefunction, x) + potential_energy(x.detach(), molecule)
