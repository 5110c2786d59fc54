"""Likelihood-free inference on three simulators: rejection ABC, our ratio estimator (NRE) and sbi's NPE.

    python benchmarks/sbi_tasks.py                       # all tasks, seeds 0 1 2
    python benchmarks/sbi_tasks.py --tasks two-moons --seeds 0
    python benchmarks/sbi_tasks.py --tabulate            # only rebuild the table and figures

Per task and seed: ``--simulations`` (θ, x) pairs from the prior (seeded), each method trained
once, then for each of ``--observations`` fixed observations (the same for every seed) 5,000
posterior samples scored by C2ST against 5,000 reference samples (exact, or MCMC on the exact
likelihood for the Langevin double well). Rejection ABC keeps the nearest 1% of simulations
and samples a Gaussian KDE of them (sbibm's protocol), inside the prior. For the Langevin
double well also simulation-based calibration: ranks of 300 prior draws among 99 posterior
samples each, with a χ² uniformity test per parameter. Wall times are this machine's (one
thread per process).

Each (task, seed) is stored in runs/sbi/ and resumed; the table (mean ± sd over seeds) goes to
benchmarks/results/sbi_tasks.json/.md, the rank histograms to sbi_sbc.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from pipeline import markdown_table, save_figure, write_results
from scipy.stats import gaussian_kde

from mlmol.data import atomic_write
from mlmol.implicit.calibration import c2st, rank_uniformity, sbc_ranks
from mlmol.implicit.inference import npe, ratio_posterior, rejection_abc, simulations, train_ratio
from mlmol.implicit.tasks import LangevinDoubleWell, LinearGaussian, Task, TwoMoons

RUNS = Path(__file__).resolve().parent.parent / "runs" / "sbi"
TASKS = {t.name: t for t in (LinearGaussian, TwoMoons, LangevinDoubleWell)}
METHODS = ("rejection ABC", "NRE (mlmol)", "NPE (sbi)")
N_POSTERIOR, SBC_DRAWS, SBC_SAMPLES = 5000, 300, 99


def abc_sampler(task: Task, theta: torch.Tensor, x: torch.Tensor, seed: int):
    """Rejection ABC (nearest 1%), smoothed by a Gaussian KDE and kept inside the prior."""
    def sample(x_obs: torch.Tensor, n: int) -> torch.Tensor:
        kept = rejection_abc(theta, x, x_obs, n=max(len(theta) // 100, theta.shape[-1] + 2)).double()
        kde = gaussian_kde(kept.T.numpy())
        out, total = [], 0
        while total < n:
            draw = torch.from_numpy(kde.resample(2 * n, seed=seed).T).reshape(2 * n, -1)
            draw = draw[torch.isfinite(task.prior.log_prob(draw))]
            out.append(draw)
            total += len(draw)
        return torch.cat(out)[:n]
    return sample


def train_methods(task: Task, sims, seed: int) -> dict:
    """Each method's sampler ``f(x_obs, n) -> θ [n, d]`` and its training wall time (s)."""
    samplers, train_s = {}, {}
    samplers["rejection ABC"], train_s["rejection ABC"] = abc_sampler(task, sims.theta, sims.x, seed), 0.0
    started = time.perf_counter()
    estimator = train_ratio(sims.theta, sims.x, seed=seed)
    train_s["NRE (mlmol)"] = time.perf_counter() - started
    samplers["NRE (mlmol)"] = lambda x_obs, n: ratio_posterior(estimator, task.prior, x_obs, n, seed=seed)
    started = time.perf_counter()
    posterior = npe(sims.theta, sims.x, task.prior, seed=seed)
    train_s["NPE (sbi)"] = time.perf_counter() - started
    samplers["NPE (sbi)"] = lambda x_obs, n: posterior.sample((n,), x=x_obs.float(), show_progress_bars=False).double()
    return samplers, train_s


def run(task: Task, seed: int, n_simulations: int, observations: int) -> dict:
    sims = simulations(task.simulate, task.prior, n_simulations, seed=seed)
    samplers, train_s = train_methods(task, sims, seed)
    row = {"task": task.name, "seed": seed, "simulations": n_simulations, "failed": sims.failed,
           "simulate_s": sims.wall_s, "methods": {}}
    for method, sample in samplers.items():
        scores, inside, started = [], [], time.perf_counter()
        for k in range(observations):
            _, x_obs = task.observation(k)
            reference = task.reference_posterior(x_obs, N_POSTERIOR, seed=k)
            samples = sample(x_obs, N_POSTERIOR)
            inside.append(float(torch.isfinite(task.prior.log_prob(samples)).double().mean()))
            scores.append(c2st(samples, reference, seed=seed))
        result = {"c2st": scores, "train_s": train_s[method], "score_s": time.perf_counter() - started,
                  "inside_prior": min(inside)}
        if isinstance(task, LangevinDoubleWell):
            check = simulations(task.simulate, task.prior, SBC_DRAWS, seed=1000 + seed)
            ranks = sbc_ranks(sample, check.theta, check.x, SBC_SAMPLES)
            result["sbc_ranks"] = ranks.tolist()
            result["sbc_p"] = rank_uniformity(ranks, SBC_SAMPLES).tolist()
        row["methods"][method] = result
        print(f"{task.name} seed {seed} {method}: C2ST {np.mean(scores):.3f}, train {train_s[method]:.0f} s",
              flush=True)
    return row


def mean_sd(values) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}"


def tabulate(n_simulations: int) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(RUNS.glob(f"*_sims{n_simulations}_seed*.json"))]
    if not rows:
        raise SystemExit(f"no results in {RUNS} for {n_simulations} simulations: run without --tabulate first")
    cells, summary = [], []
    for task in TASKS:
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        for method in METHODS:
            per_seed = [float(np.mean(r["methods"][method]["c2st"])) for r in task_rows]
            train = [r["methods"][method]["train_s"] for r in task_rows]
            sbc = [min(r["methods"][method].get("sbc_p", [np.nan])) for r in task_rows]
            inside = min(r["methods"][method]["inside_prior"] for r in task_rows)
            cells.append([task, method, str(len(task_rows)), mean_sd(per_seed),
                          f"{np.mean(train):.0f} ± {np.std(train):.0f}",
                          "—" if np.isnan(sbc).all() else ", ".join(f"{p:.2f}" for p in sbc), f"{100 * inside:.0f}%"])
            summary.append({"task": task, "method": method, "seeds": [r["seed"] for r in task_rows],
                            "c2st_per_seed": per_seed, "c2st_mean": float(np.mean(per_seed)),
                            "c2st_sd": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
                            "train_s": train, "sbc_min_p": sbc, "inside_prior": inside})
    n = rows[0]["simulations"]
    table = markdown_table(
        f"Likelihood-free inference at {n:,} simulations (`python benchmarks/sbi_tasks.py`): C2ST against the "
        "reference posterior (0.5 is perfect; mean ± sd over seeds of the mean over observations), training wall "
        "time on one thread, the smallest SBC uniformity p-value per seed (Langevin double well) and the fraction "
        "of posterior samples inside the prior's bounds:",
        ["task", "method", "seeds", "C2ST", "training (s)", "SBC p (min over θ)", "inside prior"], cells, text_columns=2)
    write_results("sbi_tasks", summary, table)
    plot_sbc([r for r in rows if r["task"] == LangevinDoubleWell.name])


def plot_sbc(rows: list[dict]) -> None:
    """Rank histograms per method and parameter (all seeds pooled), with the uniform band (99%)."""
    if not rows:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import binom

    names = LangevinDoubleWell.parameter_names
    fig, axes = plt.subplots(len(METHODS), len(names), figsize=(4 * len(names), 2.6 * len(METHODS)), squeeze=False)
    bins = 10
    for i, method in enumerate(METHODS):
        ranks = np.concatenate([np.asarray(r["methods"][method]["sbc_ranks"]) for r in rows])
        lo, hi = binom.interval(0.99, len(ranks), 1 / bins)
        for j, name in enumerate(names):
            ax = axes[i, j]
            ax.axhspan(lo, hi, color="0.85", label="uniform, 99%")
            ax.hist(ranks[:, j], bins=bins, range=(0, SBC_SAMPLES + 1), color="C0", edgecolor="white")
            ax.set_title(f"{method}: {name}", fontsize=9)
            ax.set_xlabel("rank of the true θ")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, "sbi_sbc", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--observations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tabulate", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.tabulate:
        RUNS.mkdir(parents=True, exist_ok=True)
        for name in args.tasks:
            for seed in args.seeds:
                path = RUNS / f"{name}_sims{args.simulations}_seed{seed}.json"
                if path.is_file():
                    continue
                atomic_write(path, json.dumps(run(TASKS[name](), seed, args.simulations, args.observations)))
    tabulate(args.simulations)


if __name__ == "__main__":
    main()
