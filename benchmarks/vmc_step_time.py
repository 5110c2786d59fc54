"""Time per VMC optimisation step against the number of electrons, FermiNet and Slater–Jastrow side by side.

    python benchmarks/vmc_step_time.py [--walkers 512] [--repeats 5] [--threads 1]

One step = 10 Metropolis sweeps, local energies with the exact Laplacian, one Adam step (the
defaults of ``mlmol vmc``). Median wall time over ``--repeats`` steps after two warm-up steps;
writes benchmarks/results/vmc_step_time.json/.md.
"""

from __future__ import annotations

import argparse
import time

import torch
from pipeline import markdown_table, write_results

from mlmol.losses import Batch
from mlmol.vmc import FermiNet, SlaterJastrow, VMCObjective, Walkers, get


def step_time(ansatz, system, walkers: int, repeats: int) -> float:
    torch.manual_seed(0)
    wf = ansatz(system).double()
    w = Walkers(wf, system, walkers, seed=0)
    w.step(20)
    optimizer = torch.optim.Adam(wf.parameters(), lr=1e-4)
    objective, generator = VMCObjective(system, w), torch.Generator()
    times = []
    for i in range(repeats + 2):  # one step of the training loop: walkers, local energies, gradient, update
        started = time.perf_counter()
        value, _ = objective(Batch(wf, None, None, generator))
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--walkers", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, cells = [], []
    for name in ("H", "He", "H2", "Li", "LiH"):
        system = get(name)
        times = {label: step_time(ansatz, system, args.walkers, args.repeats)
                 for label, ansatz in (("FermiNet", FermiNet), ("Slater–Jastrow", SlaterJastrow))}
        rows.append({"system": name, "electrons": system.n_electrons, "walkers": args.walkers, "seconds": times})
        cells.append([name, str(system.n_electrons), f"{times['FermiNet']:.3f}", f"{times['Slater–Jastrow']:.3f}",
                      f"{times['FermiNet'] / times['Slater–Jastrow']:.1f}"])
        print(cells[-1], flush=True)
    table = markdown_table(
        f"Seconds per VMC step (`python benchmarks/vmc_step_time.py`; {args.walkers} walkers, 10 Metropolis sweeps, "
        f"exact Laplacian, one Adam step; {args.threads} thread(s), median of {args.repeats}):",
        ["system", "electrons", "FermiNet (s)", "Slater–Jastrow (s)", "ratio"], cells)
    write_results("vmc_step_time", rows, table)


if __name__ == "__main__":
    main()
