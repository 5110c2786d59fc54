"""What the two Burgers data sets look like: how much of u₀ survives to t = 1, how much the
gradients steepen, and how far the spectrum of u(·, 1) falls, on the stored training pairs.

    python benchmarks/burgers_data.py [--pairs 200]

Reads the shared data files of benchmarks/operator_runs.py (made by its ``--run``; 8192 points):
the paper text's ν = 0.1 and the released generator's ν = 1/1000. For the first ``--pairs``
training pairs: ‖u(·, 1)‖ / ‖u₀‖; max |∂ₓu(·, 1)| / max |∂ₓu₀| (spectral derivatives); the
spectrum |û(k)| of u(·, 1) beyond modes 256 and 512, relative to its peak (largest over pairs; the
files hold float32, whose roundoff puts a floor near 1e-9 under the spectra).
Writes benchmarks/results/burgers_data.json/.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from pipeline import markdown_table, write_results

ROOT = Path(__file__).resolve().parent.parent
FILES = {"burgers (ν = 0.1)": "runs/operators/burgers-8192-1200-seed0.npz",
         "burgers-shock (ν = 1/1000)": "runs/operators/burgers-shock-8192-seed0.npz"}


def steepest(u: np.ndarray) -> np.ndarray:
    """max |∂ₓu| per row of ``u`` ``[n, points]`` on the periodic unit interval (spectral derivative)."""
    k = np.fft.rfftfreq(u.shape[-1], d=1.0 / u.shape[-1])
    return np.abs(np.fft.irfft(2j * np.pi * k * np.fft.rfft(u), n=u.shape[-1])).max(-1)


def statistics(u0: np.ndarray, u1: np.ndarray) -> dict:
    norm = np.linalg.norm(u1, axis=-1) / np.linalg.norm(u0, axis=-1)
    steepening = steepest(u1) / steepest(u0)
    spectrum = np.abs(np.fft.rfft(u1))
    tail = {m: float((spectrum[:, m:].max(-1) / spectrum.max(-1)).max()) for m in (256, 512)}
    return {"pairs": len(u0), "norm_ratio_median": float(np.median(norm)),
            "norm_ratio_range": [float(norm.min()), float(norm.max())],
            "steepening_median": float(np.median(steepening)),
            "steepening_range": [float(steepening.min()), float(steepening.max())],
            "spectrum_beyond_256": tail[256], "spectrum_beyond_512": tail[512]}


def spread(median: float, extremes: list[float]) -> str:
    """"median (low–high)" to three significant digits."""
    return f"{median:.3g} ({extremes[0]:.3g}–{extremes[1]:.3g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    args = parser.parse_args()
    command = " ".join(["python benchmarks/burgers_data.py", *sys.argv[1:]])
    rows = []
    for name, file in FILES.items():
        path = ROOT / file
        if not path.is_file():
            raise SystemExit(f"{file} is missing: make it with python benchmarks/operator_runs.py --run")
        with np.load(path) as f:
            u0, u1 = f["inputs"][:args.pairs, :, 0], f["outputs"][:args.pairs, :, 0]
        rows.append({"data": name, "file": file, "command": command, **statistics(u0, u1)})
    cells = [[r["data"], spread(r["norm_ratio_median"], r["norm_ratio_range"]),
              spread(r["steepening_median"], r["steepening_range"]),
              f"{r['spectrum_beyond_256']:.1e}", f"{r['spectrum_beyond_512']:.1e}"] for r in rows]
    write_results("burgers_data", rows, markdown_table(
        f"The Burgers data at 8192 points, first {args.pairs} training pairs (`{command}`): median (range) over "
        "pairs; spectrum of u(·, 1) beyond a mode relative to its peak, the largest over pairs (the files hold "
        "float32, whose roundoff floors the spectra near 1e-9):",
        ["data", "‖u(·, 1)‖ / ‖u₀‖", "steepest slope of u(·, 1) / of u₀", "spectrum beyond mode 256",
         "spectrum beyond mode 512"], cells))


if __name__ == "__main__":
    main()
