"""MCMC reference data for DW-4 and LJ-13: long random-walk Metropolis runs, independent splits.

    python benchmarks/particles_reference.py [--systems dw4 lj13]

Each split (train, validation, test) comes from its own set of independent chains with its
own seed: 1,000 chains (random-walk Metropolis for DW-4; sweeps of single-particle moves for
LJ-13) started from random configurations (N(0, spread²) per coordinate),
burnt in for ``burn`` steps, then sampled every ``thin`` steps (validation and test) or every
``thin`` / 5 steps (training, 100 samples per chain). Writes runs/particles/<system>_mcmc.npz
(train, validation, test, all centred) and benchmarks/results/particles_reference.json/.md
with the mean energy of each split (independent splits must agree).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from pipeline import RESULTS, markdown_table, write_results

from mlmol.data import atomic_write
from mlmol.samplers import metropolis
from mlmol.systems import get
from mlmol.systems.particles import remove_mean

DATA = Path(__file__).resolve().parent.parent / "runs" / "particles"

# step: Metropolis step (acceptance about 25-45%); spread: random starts
SETTINGS = {
    "dw4": {"step": 0.25, "spread": 2.0, "burn": 20_000, "thin": 1000,
            "sizes": {"train": 100_000, "validation": 10_000, "test": 10_000}},
    # LJ-13 with sweeps of single-particle moves: all-particle steps (0.04) left the splits' ⟨u⟩
    # 0.3 kT apart after 20,000 steps of burn-in
    "lj13": {"moves": "particle", "step": 0.1, "spread": 0.8, "burn": 5000, "thin": 500,
             "sizes": {"train": 100_000, "validation": 10_000, "test": 10_000}},
}
CHAINS = 1000


def reference_path(name: str) -> Path:
    return DATA / f"{name}_mcmc.npz"


def load_reference(name: str) -> dict[str, torch.Tensor]:
    """The splits written by this script, float64 tensors ``[n, dim]``."""
    path = reference_path(name)
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run python benchmarks/particles_reference.py --systems {name}")
    with np.load(path) as f:
        return {k: torch.from_numpy(f[k]) for k in ("train", "validation", "test")}


def run(name: str) -> dict:
    system, s = get(name), SETTINGS[name]
    splits, energies, started = {}, {}, time.perf_counter()
    for seed, (split, n) in enumerate(s["sizes"].items()):
        g = torch.Generator().manual_seed(1000 + seed)
        starts = s["spread"] * torch.randn(CHAINS, system.dim, generator=g, dtype=torch.float64)
        thin = s["thin"] // 5 if split == "train" else s["thin"]
        x = metropolis(system, n, seed=seed, starts=starts, step=s["step"], chains_per_start=1, burn=s["burn"],
                       thin=thin, progress=True, moves=s.get("moves", "all"))
        x = remove_mean(x, system.n_particles, system.spatial_dim)
        splits[split] = x.numpy()
        chain_means = system.energy(x).reshape(-1, CHAINS).mean(0)  # frames are ordered step-major
        energies[split] = float(chain_means.mean())
        energies[split + "_stderr"] = float(chain_means.std() / CHAINS**0.5)
    DATA.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **splits)
    atomic_write(reference_path(name), buffer.getvalue())
    return {"system": name, "wall_s": round(time.perf_counter() - started, 1), **{k: v for k, v in s.items()
            if k != "sizes"}, **{f"n_{k}": v for k, v in s["sizes"].items()},
            **{f"mean_energy_{k}": round(v, 3) for k, v in energies.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = RESULTS / "particles_reference.json"
    kept = [r for r in (json.loads(path.read_text()) if path.is_file() else []) if r["system"] not in args.systems]
    rows = kept + [run(name) for name in args.systems]

    def mean(r: dict, split: str) -> str:
        stderr = r.get(f"mean_energy_{split}_stderr")
        return f"{r[f'mean_energy_{split}']:.3f}" + (f" ± {stderr:.3f}" if stderr is not None else "")

    cells = [[r["system"], r.get("moves", "all"), f"{r['n_train']:,}", f"{r['n_test']:,}", f"{r['burn']:,}",
              str(r["thin"]), *(mean(r, split) for split in ("train", "validation", "test")), f"{r['wall_s']:.0f}"]
             for r in rows]
    table = markdown_table("MCMC reference data (`python benchmarks/particles_reference.py`), mean reduced energy per "
                           "split ± its standard error over the 1,000 independent chains; burn-in and thinning count "
                           "steps (all-particle moves) or sweeps (single-particle moves):",
                           ["system", "moves", "train", "test", "burn-in", "thin (test)", "⟨u⟩ train",
                            "⟨u⟩ validation", "⟨u⟩ test", "wall (s)"], cells, text_columns=2)
    write_results("particles_reference", rows, table)


if __name__ == "__main__":
    main()
