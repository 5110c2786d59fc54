"""The command line end to end on a GPU: train, sample and evaluate the double well with --device cuda.

    python benchmarks/gpu_cli.py [--steps 300]

Runs ``mlmol train double-well --device cuda --steps N --seed 0``, ``mlmol sample`` and ``mlmol
evaluate`` (through benchmarks/pipeline.py) and writes the evaluation next to the exact ΔF to
benchmarks/results/gpu_cli.json/.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from pipeline import markdown_table, pipeline, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu_cli.py needs a CUDA GPU, and torch sees none")
    out = Path(__file__).resolve().parent.parent / "runs" / "gpu_cli"
    row = pipeline(["double-well", "--device", "cuda", "--steps", str(args.steps), "--seed", "0"], out)
    row["device"] = torch.cuda.get_device_name()
    m = row["metrics"]
    delta = m["delta_f"]
    table = markdown_table(f"`{row['command']}` on {row['device']}, then `mlmol sample --n 100000` and `mlmol evaluate` "
                           "(`python benchmarks/gpu_cli.py`):",
                           ["train (s)", "sample (s)", "ESS", "effective samples", "ΔF (kT)", "exact (kT)"],
                           [[f"{row['train_s']:.0f}", f"{row['sample_s']:.0f}", f"{100 * m['ess_fraction']:.1f}%",
                             f"{m['ess']:.0f}", f"{delta['value']:.3f} ± {delta['stderr']:.3f}",
                             f"{delta.get('exact', float('nan')):.3f}"]], text_columns=0)
    write_results("gpu_cli", [row], table)


if __name__ == "__main__":
    main()
