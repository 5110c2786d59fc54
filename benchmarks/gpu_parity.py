"""GPU against CPU: reduced energies and forces of the torch backend for alanine dipeptide.

    python benchmarks/gpu_parity.py        # needs a CUDA GPU

512 configurations perturbed from the PDB structure (0.01 nm), in vacuum and in implicit
solvent (OBC2), through ``alanine_dipeptide(backend="torch")`` (float64): prints the largest
relative difference of the energies and of the forces (relative to the largest force).
"""

import sys

import torch

from mlmol.systems.molecules import alanine_dipeptide


def energy_and_forces(energy, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    u = energy.energy(x)
    (gradient,) = torch.autograd.grad(u.sum(), x)
    return u.detach().cpu(), -gradient.cpu()


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu_parity.py needs a CUDA GPU, and torch sees none")
    for implicit in (False, True):
        energy = alanine_dipeptide(implicit_solvent=implicit, backend="torch")
        g = torch.Generator().manual_seed(0)
        x = torch.as_tensor(energy.positions, dtype=torch.float64).reshape(1, -1)
        x = x + 0.01 * torch.randn(512, energy.dim, dtype=torch.float64, generator=g)
        u0, f0 = energy_and_forces(energy, x)
        u1, f1 = energy_and_forces(energy, x.cuda())
        print(f"{energy.name}: energies max relative difference {float(((u1 - u0).abs() / u0.abs()).max()):.1e}, "
              f"forces {float((f1 - f0).abs().max() / f0.abs().max()):.1e}", flush=True)


if __name__ == "__main__":
    main()
