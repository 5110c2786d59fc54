"""The four principles of Mohamed & Lakshminarayanan (2016) training the same implicit generator.

    python benchmarks/implicit_principles.py [--seeds 0 1 2] [--steps 3000]

Targets: the 2D toy systems (double well, Müller–Brown), whose exact density lets us score a
generator. Data: 10,000 exact samples (quadrature). Generator: a RealNVP flow (4 blocks,
64 × 64) used only through its samples, in training and in scoring: the binned KL(q ‖ p)
between the histogram of 100,000 samples and the exact Boltzmann probabilities of 60 × 60
bins (quadrature), the fraction of samples outside the box, and MMD² to 2,000 fresh exact
samples. The same flow trained by maximum likelihood (which uses its density) is
the reference row. Mean ± sd over seeds; benchmarks/results/implicit_principles.json/.md and
implicit_principles.png (samples of each over the energy contours, seed 0).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from pipeline import markdown_table, read_results, save_figure, write_results

from mlmol.flows import RealNVP
from mlmol.implicit import ClassProbability, FDivergenceKL, MomentMatching, RatioMatching, mmd2
from mlmol.implicit.generator import train_implicit
from mlmol.systems import DoubleWell, MuellerBrown
from mlmol.systems.quadrature import exact_samples


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


def bin_probabilities(system, bins: int = 60, sub: int = 5) -> tuple[list[np.ndarray], np.ndarray]:
    """Exact Boltzmann probabilities of a bins × bins grid over the system's box (midpoint rule, sub² points per bin)."""
    edges = [np.linspace(lo, hi, bins + 1) for lo, hi in system.bounds]
    centres = [torch.linspace(lo, hi, bins * sub + 1, dtype=torch.float64) for lo, hi in system.bounds]
    centres = [(c[1:] + c[:-1]) / 2 for c in centres]
    x = torch.stack(torch.meshgrid(*centres, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        u = system.energy(x).double()
    w = torch.exp(-(u - u.min())).reshape(bins, sub, bins, sub).sum((1, 3)).numpy()
    return edges, w / w.sum()


def score(flow, system, edges, p_bins: np.ndarray, reference: torch.Tensor, seed: int) -> dict:
    """Binned KL(q ‖ p) of 100,000 generator samples against the exact bin probabilities (the
    generator is scored as an implicit model: only its samples; q is its distribution within the
    box, NaN when more than half of the samples left the box), the fraction of samples outside
    the box, and MMD² to ``reference``."""
    torch.manual_seed(seed)
    with torch.no_grad():
        x = flow.sample(100_000).double().numpy()
        mmd = float(mmd2(flow.sample(len(reference)).double(), reference))
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=edges)
    outside = 1 - counts.sum() / len(x)
    if outside > 0.5:  # a generator that left the box has no meaningful binned KL: report it as failed
        return {"kl_qp_binned": float("nan"), "outside": outside, "mmd2": mmd}
    q = counts / counts.sum()
    seen = q > 0
    kl = float((q[seen] * np.log(q[seen] / p_bins[seen])).sum())
    return {"kl_qp_binned": kl, "outside": outside, "mmd2": mmd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tabulate", action="store_true", help="only rebuild the table from the results JSON")
    args = parser.parse_args()
    if args.tabulate:
        tabulate(read_results("implicit_principles"))
        return
    torch.set_num_threads(args.threads)
    principles = [ClassProbability(), FDivergenceKL(), RatioMatching(), MomentMatching(), MaximumLikelihood()]
    rows, samples_for_plot = [], {}
    for system in (DoubleWell(), MuellerBrown()):
        edges, p_bins = bin_probabilities(system)
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
                          **score(flow, system, edges, p_bins, reference, seed)}
                results.append(result)
                print(f"{system.name} {principle.name} seed {seed}: KL(q‖p) binned {result['kl_qp_binned']:.3f} outside {result['outside']:.4f} MMD² "
                      f"{result['mmd2']:.4f} ({result['train_s']:.0f} s)", flush=True)
                if seed == args.seeds[0]:
                    with torch.no_grad():
                        samples_for_plot[(system.name, principle.name)] = flow.sample(3000).numpy()
            rows.append({"system": system.name, "principle": principle.name, "steps": args.steps,
                         "mmd_scale": scale, "runs": results})
        samples_for_plot[(system.name, "exact")] = reference.numpy()
    tabulate(rows)
    plot(samples_for_plot, [DoubleWell(), MuellerBrown()], [p.name for p in principles])


def tabulate(rows: list[dict]) -> None:
    """The Markdown table (mean ± sd over the runs that stayed in the box; runs that left it are counted)."""
    cells = []
    for r in rows:
        kept = [x for x in r["runs"] if np.isfinite(x["kl_qp_binned"])]
        kl = [x["kl_qp_binned"] for x in kept]
        mmd = [x["mmd2"] for x in kept]
        outside = [x["outside"] for x in kept]
        t = [x["train_s"] for x in r["runs"]]
        sd = (lambda v: np.std(v, ddof=1) if len(v) > 1 else 0.0)
        cells.append([r["system"], r["principle"],
                      f"{np.mean(kl):.3f} ± {sd(kl):.3f}" if kl else "—",
                      f"{100 * np.mean(outside):.2f}%" if kept else "—",
                      f"{1e3 * np.mean(mmd):.2f} ± {1e3 * sd(mmd):.2f}" if kept else "—",
                      f"{len(r['runs']) - len(kept)} of {len(r['runs'])}", f"{np.mean(t):.0f}"])
    steps, seeds = rows[0]["steps"], sorted({x["seed"] for x in rows[0]["runs"]})
    table = markdown_table(
        f"The four principles training one implicit generator (`python benchmarks/implicit_principles.py`; "
        f"RealNVP, {steps:,} steps, batch 512, 10,000 exact data samples; mean ± sd over seeds "
        f"{', '.join(map(str, seeds))}, leaving out runs that diverged). Scored from samples only, as implicit "
        "models: KL(q ‖ p) in nats between the histogram of 100,000 generator samples in the box and the exact "
        "Boltzmann probabilities of the same 60 × 60 bins, the fraction of samples outside the box, MMD² (×10³; "
        "kernel bandwidths 0.5, 1, 2) to 2,000 exact samples, and the runs that diverged (more than half of the "
        "samples outside the box):",
        ["target", "principle", "binned KL(q ‖ p) (nats)", "outside the box", "MMD² × 10³", "diverged",
         "training (s)"], cells, text_columns=2)
    write_results("implicit_principles", rows, table)


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
            x = samples[(system.name, name)]
            (lo0, hi0), (lo1, hi1) = system.bounds
            inside = (x[:, 0] > lo0) & (x[:, 0] < hi0) & (x[:, 1] > lo1) & (x[:, 1] < hi1)
            energy_contours(system, torch.from_numpy(x[inside]), ax=ax, n_points=2000)
            ax.set_xlim(lo0, hi0)
            ax.set_ylim(lo1, hi1)
            title = name.replace(" (explicit, reference)", "\n(explicit, reference)")
            ax.set_title(title + (f"\n{100 * (1 - inside.mean()):.1f}% outside" if not inside.all() else ""), fontsize=8)
    fig.tight_layout()
    save_figure(fig, "implicit_principles", dpi=90)


if __name__ == "__main__":
    main()
