"""The four principles of Mohamed & Lakshminarayanan (2016) training the same implicit generator.

    python benchmarks/implicit_principles.py [--seeds 0 1 2] [--steps 3000]

Targets: the 2D toy systems (double well, Müller–Brown), whose exact density lets us score a
generator. Data: 10,000 exact samples (quadrature). Generator: a RealNVP flow (4 blocks,
64 × 64) used only through its samples during training; its density scores the result:
KL(q ‖ p) = E_q[log q + u] + log Z (log Z by quadrature; 100,000 samples) and MMD² to 2,000
fresh exact samples. The same flow trained by maximum likelihood (which uses its density) is
the reference row. Mean ± sd over seeds; benchmarks/results/implicit_principles.json/.md and
implicit_principles.png (samples of each over the energy contours, seed 0).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from pipeline import RESULTS, markdown_table, write_results

from mlmol.flows import RealNVP
from mlmol.implicit import ClassProbability, FDivergenceKL, MomentMatching, RatioMatching, mmd2
from mlmol.implicit.generator import train_implicit
from mlmol.systems import DoubleWell, MuellerBrown, log_partition
from mlmol.systems.base import exact_samples


class MaximumLikelihood:
    """The explicit reference: −E_data[log q] (needs the generator's density)."""

    name = "maximum likelihood (explicit, reference)"
    needs_critic = False


def train(flow, principle, data, steps: int, seed: int) -> None:
    if isinstance(principle, MaximumLikelihood):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)
        for _ in range(steps):
            optimizer.zero_grad()
            (-flow.log_prob(data[torch.randint(len(data), (512,), generator=g)].float()).mean()).backward()
            optimizer.step()
    else:
        train_implicit(flow, principle, data, steps=steps, seed=seed)


def score(flow, system, log_z: float, reference: torch.Tensor, seed: int) -> dict:
    torch.manual_seed(seed)
    with torch.no_grad():
        x, log_q = flow.sample_with_log_prob(100_000)
        kl = float((log_q.double() + system.energy(x.double())).mean() + log_z)
        mmd = float(mmd2(flow.sample(len(reference)).double(), reference))
    return {"kl_qp": kl, "mmd2": mmd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    principles = [ClassProbability(), FDivergenceKL(), RatioMatching(), MomentMatching(), MaximumLikelihood()]
    rows, samples_for_plot = [], {}
    for system in (DoubleWell(), MuellerBrown()):
        log_z = log_partition(system)
        data = exact_samples(system, 10_000, seed=100)
        reference = exact_samples(system, 2_000, seed=200)
        # MMD bandwidths in the data's own units
        scale = float(data.std(0).mean())
        for principle in principles:
            results = []
            for seed in args.seeds:
                torch.manual_seed(seed)
                flow = RealNVP(2, blocks=4, hidden=(64, 64), loc=data.mean(0).float(), scale=data.std(0).float())
                started = time.perf_counter()
                train(flow, principle, data, args.steps, seed)
                result = {"seed": seed, "train_s": time.perf_counter() - started,
                          **score(flow, system, log_z, reference, seed)}
                results.append(result)
                print(f"{system.name} {principle.name} seed {seed}: KL {result['kl_qp']:.3f} MMD² "
                      f"{result['mmd2']:.4f} ({result['train_s']:.0f} s)", flush=True)
                if seed == args.seeds[0]:
                    with torch.no_grad():
                        samples_for_plot[(system.name, principle.name)] = flow.sample(3000).numpy()
            rows.append({"system": system.name, "principle": principle.name, "steps": args.steps,
                         "mmd_scale": scale, "runs": results})
        samples_for_plot[(system.name, "exact")] = reference.numpy()
    cells = []
    for r in rows:
        kl = [x["kl_qp"] for x in r["runs"]]
        mmd = [x["mmd2"] for x in r["runs"]]
        t = [x["train_s"] for x in r["runs"]]
        cells.append([r["system"], r["principle"], f"{np.mean(kl):.3f} ± {np.std(kl, ddof=1):.3f}",
                      f"{1e3 * np.mean(mmd):.2f} ± {1e3 * np.std(mmd, ddof=1):.2f}", f"{np.mean(t):.0f}"])
    table = markdown_table(
        f"The four principles training one implicit generator (`python benchmarks/implicit_principles.py`; "
        f"RealNVP, {args.steps:,} steps, batch 512, 10,000 exact data samples; mean ± sd over seeds "
        f"{', '.join(map(str, args.seeds))}); KL(q ‖ p) in nats from the exact energy and log Z, MMD² (×10³; "
        "kernel bandwidths 0.5, 1, 2) to 2,000 exact samples:",
        ["target", "principle", "KL(q ‖ p) (nats)", "MMD² × 10³", "training (s)"], cells, text_columns=2)
    write_results("implicit_principles", rows, table)
    plot(samples_for_plot, [DoubleWell(), MuellerBrown()], [p.name for p in principles])


def plot(samples: dict, systems, names: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlmol.plots import energy_contours

    columns = ["exact", *names]
    fig, axes = plt.subplots(len(systems), len(columns), figsize=(3.6 * len(columns), 3.0 * len(systems)))
    for i, system in enumerate(systems):
        for j, name in enumerate(columns):
            ax = axes[i, j]
            energy_contours(system, torch.from_numpy(samples[(system.name, name)]), ax=ax, n_points=2000)
            ax.set_title(name.replace(" (explicit, reference)", "\n(explicit, reference)"), fontsize=8)
    fig.tight_layout()
    path = RESULTS / "implicit_principles.png"
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
