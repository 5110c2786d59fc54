"""PyTorch thread count against a busy OpenMM worker: why mlmol trains with 1 thread.

    python benchmarks/threads.py [--steps 30]

Times an ML training step of the alanine-dipeptide MolecularFlow (batch 256) with 1 and 2
PyTorch threads, first on an idle machine, then while an OpenMM worker process evaluates
energies without pause on the other core (as during ML + KL training through the bridge).
Writes benchmarks/results/threads.json and .md.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import torch
from pipeline import markdown_table, median_time, write_results

import mlmol
from mlmol.systems.molecules import alanine_dipeptide


def step_time_ms(flow, data, steps: int) -> float:
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad()
        (-flow.log_prob(data[torch.randint(len(data), (256,))]).mean()).backward()
        optimizer.step()

    return 1e3 * median_time(step, steps, warmup=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    energy = alanine_dipeptide(workers=1, backend="openmm")
    data = torch.as_tensor(energy.positions, dtype=torch.float32) + 0.01 * torch.randn(2000, energy.dim)
    bonds = [(a.index, b.index) for a, b in energy.topology.bonds()]
    torch.manual_seed(0)
    flow = mlmol.flows.MolecularFlow(energy.dim // 3, bonds, data)
    batch = np.tile(energy.positions, (2000, 1))
    rows = []
    for load in ("idle", "one OpenMM worker busy"):
        stop = threading.Event()
        busy = None
        if load != "idle":
            def keep_busy():
                while not stop.is_set():
                    energy.backend.bridge.compute(batch)
            busy = threading.Thread(target=keep_busy, daemon=True)
            busy.start()
            time.sleep(0.5)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            ms = step_time_ms(flow, data, args.steps)
            rows.append({"load": load, "threads": threads, "step_ms": ms})
            print(f"{load:24s} {threads} thread(s): {ms:8.1f} ms/step", flush=True)
        stop.set()
        if busy is not None:
            busy.join()
    energy.close()
    base = rows[0]["step_ms"]
    caption = (f"ML step of the alanine-dipeptide MolecularFlow, batch 256, median of {args.steps} steps "
               f"(`python benchmarks/threads.py --steps {args.steps}`), 2-core machine.")
    table = markdown_table(caption, ["load", "PyTorch threads", "ms/step", "vs idle, 1 thread"],
                           [[r["load"], str(r["threads"]), f"{r['step_ms']:.1f}", f"{r['step_ms'] / base:.2f}x"]
                            for r in rows])
    write_results("threads", rows, table)


if __name__ == "__main__":
    main()
