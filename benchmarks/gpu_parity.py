"""GPU against CPU: reduced energies and forces of the torch backend for alanine dipeptide.

    python benchmarks/gpu_parity.py        # needs a CUDA GPU

512 configurations perturbed from the PDB structure (0.01 nm), in vacuum and in implicit
solvent (OBC2), through ``alanine_dipeptide(backend="torch")`` (float64): prints the largest
relative difference of the energies and of the forces (relative to the largest force).
Writes benchmarks/results/gpu_parity.json/.md.
"""

import sys

import torch
from pipeline import markdown_table, write_results

from mlmol.systems.molecules import alanine_dipeptide


def energy_and_forces(energy, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    u = energy.energy(x)
    (gradient,) = torch.autograd.grad(u.sum(), x)
    return u.detach().cpu(), -gradient.cpu()


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu_parity.py needs a CUDA GPU, and torch sees none")
    rows = []
    for implicit in (False, True):
        energy = alanine_dipeptide(implicit_solvent=implicit, backend="torch")
        g = torch.Generator().manual_seed(0)
        x = torch.as_tensor(energy.positions, dtype=torch.float64).reshape(1, -1)
        x = x + 0.01 * torch.randn(512, energy.dim, dtype=torch.float64, generator=g)
        u0, f0 = energy_and_forces(energy, x)
        u1, f1 = energy_and_forces(energy, x.cuda())
        rows.append({"system": energy.name, "configurations": len(x), "device": torch.cuda.get_device_name(),
                     "torch": torch.__version__, "energy_max_relative": float(((u1 - u0).abs() / u0.abs()).max()),
                     "force_max_relative": float((f1 - f0).abs().max() / f0.abs().max())})
        print(rows[-1], flush=True)
    table = markdown_table(f"Torch force field on {rows[0]['device']} against the CPU, float64, 512 perturbed "
                           f"configurations (`python benchmarks/gpu_parity.py`; torch {rows[0]['torch']}):",
                           ["system", "energies: max relative difference", "forces: max difference / max force"],
                           [[r["system"], f"{r['energy_max_relative']:.1e}", f"{r['force_max_relative']:.1e}"]
                            for r in rows])
    write_results("gpu_parity", rows, table)


if __name__ == "__main__":
    main()
