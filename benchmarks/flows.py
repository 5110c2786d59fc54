"""Training-step time and sampling throughput of the flow families, side by side.

    python benchmarks/flows.py [--threads 1] [--repeats 5]

Compares mlmol's RealNVP and neural-spline coupling flows with zuko's NSF in coupling
form (passes=2) and in its default autoregressive form, at dim 2 (the toys) and dim 60
(a small molecule's internal coordinates). Writes benchmarks/results/flows.json and .md;
ratios are relative to mlmol RealNVP at the same dimension.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
import zuko

from pipeline import median_time

import mlmol
from mlmol.data import atomic_write


class ZukoFlow(torch.nn.Module):
    """zuko NSF behind mlmol's flow interface (sample_with_log_prob, log_prob)."""

    def __init__(self, dim: int, passes: int | None):
        super().__init__()
        self.flow = zuko.flows.NSF(dim, transforms=8 if passes == 2 else 4, hidden_features=(100, 100),
                                   passes=passes)

    def sample_with_log_prob(self, n):
        return self.flow().rsample_and_log_prob((n,))

    def log_prob(self, x):
        return self.flow().log_prob(x)


def models(dim: int) -> dict:
    return {
        "mlmol RealNVP (4 blocks, 3x100)": mlmol.flows.RealNVP(dim, blocks=4, hidden=(100, 100, 100)),
        "mlmol spline (4 blocks, 2x100, 8 bins)": mlmol.flows.NeuralSpline(dim, blocks=4, hidden=(100, 100)),
        "zuko NSF coupling (passes=2, 8 transforms, 2x100)": ZukoFlow(dim, passes=2),
        "zuko NSF autoregressive (default, 4 transforms, 2x100)": ZukoFlow(dim, passes=None),
    }


def bench(model, dim: int, repeats: int, n_sample: int, kl_batch: int) -> dict:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    data = torch.randn(256, dim)

    def ml_step():
        optimizer.zero_grad()
        (-model.log_prob(data).mean()).backward()
        optimizer.step()

    def kl_step():  # reverse KL on a Gaussian energy: sampling + log-prob + backward
        optimizer.zero_grad()
        x, log_q = model.sample_with_log_prob(kl_batch)
        (0.5 * (x**2).sum(-1) + log_q).mean().backward()
        optimizer.step()

    @torch.no_grad()
    def draw():
        model.sample_with_log_prob(n_sample)

    t_sample = median_time(draw, repeats)
    return {"ml_step_ms": 1e3 * median_time(ml_step, repeats), "kl_step_ms": 1e3 * median_time(kl_step, repeats),
            "samples_per_s": n_sample / t_sample, "n_sample": n_sample, "kl_batch": kl_batch,
            "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "flows"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for dim in (2, 60):
        for name, model in models(dim).items():
            autoregressive = "autoregressive" in name
            slow = autoregressive and dim > 2  # inverting it takes minutes and >10 GB at full size
            result = bench(model, dim, 3 if autoregressive else args.repeats, 500 if slow else 10_000,
                           100 if slow else 1000)
            rows.append({"flow": name, "dim": dim, **result})
            print(f"dim {dim:3d}  {name:55s} ML {result['ml_step_ms']:8.1f} ms  KL {result['kl_step_ms']:8.1f} ms  "
                  f"{result['samples_per_s']:10.0f} samples/s", flush=True)
    for row in rows:
        base = next(r for r in rows if r["dim"] == row["dim"] and r["flow"].startswith("mlmol RealNVP"))
        row["kl_step_ratio"] = (row["kl_step_ms"] / row["kl_batch"]) / (base["kl_step_ms"] / base["kl_batch"])
        row["sampling_ratio"] = base["samples_per_s"] / row["samples_per_s"]
    meta = {"threads": args.threads, "torch": torch.__version__, "zuko": zuko.__version__,
            "cpu": platform.processor() or platform.machine(), "repeats": args.repeats,
            "command": f"python benchmarks/flows.py --threads {args.threads} --repeats {args.repeats}"}
    atomic_write(args.out + ".json", json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"Flow benchmark ({meta['command']}; torch {meta['torch']}, zuko {meta['zuko']}, "
             f"{args.threads} thread(s)). Times are medians; ratios are relative to mlmol RealNVP at the same dim "
             "(>1 = slower; the KL ratio is per sample).", "",
             "| dim | flow | params | ML step, batch 256 (ms) | KL step (ms) [batch] | KL ratio "
             "| samples/s with log q | sampling slowdown |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dim']} | {r['flow']} | {r['parameters']} | {r['ml_step_ms']:.1f} | {r['kl_step_ms']:.1f} [{r['kl_batch']}] "
                     f"| {r['kl_step_ratio']:.1f}x | {r['samples_per_s']:,.0f} | {r['sampling_ratio']:.1f}x |")
    atomic_write(args.out + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
