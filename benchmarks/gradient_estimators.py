"""Zeroth-, first- and α-order gradient estimators on four differentiable simulators (Suh et al. 2022).

    python benchmarks/gradient_estimators.py [--samples 100] [--repeats 400]

1. Bias and variance: each estimator from ``--samples`` samples, repeated ``--repeats`` times
   (fresh samples each), against the true smoothed gradient: quadrature over the smoothing
   noise for the one-parameter deterministic tasks (ball and wall, pushing), the exact gradient
   for the linear-quadratic task, and the zeroth-order mean of 1,000,000 perturbations for
   Langevin dynamics (unbiased, with a bounded variance; the first-order terms, recorded beside it,
   are too heavy-tailed through 1,000 chaotic steps to pin the mean down).
   The α order is given with both rules of :func:`~mlmol.diffsim.gradients.alpha_blend`, and
   each rule's MSE against the better of the other two at 100 and 1,000 samples.
   Seeds (``SEEDS``, also written to the JSON): the first table uses the seeds the robust rule
   was designed on; the comparison table uses held-out seeds for every random stream (the
   perturbations and the Langevin simulator's noise, a new seed per budget); the Langevin truth
   has seeds of its own, so it is independent of both tables and shared by them.
2. Stiffness: the first-order per-sample variance against the contact stiffness k, and its
   empirical bias: the median over repeats of the n-sample estimate against the truth.
3. Horizon: the first- and zeroth-order per-sample variance against the number of Langevin steps T.
4. Optimisation: gradient descent with each estimator at the same number of samples per step.

Writes benchmarks/results/gradient_estimators.json/.md and gradient_estimators_*.png.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from pipeline import markdown_table, save_figure, write_results

from mlmol.diffsim import (
    BallWithWall,
    LangevinBias,
    LinearQuadratic,
    Pushing,
    smoothed_gradient_quadrature,
    smoothed_value_quadrature,
)
from mlmol.diffsim.gradients import alpha_blend, first_terms, perturbations, zeroth_terms

ESTIMATORS = ("zeroth order", "first order", "α order", "α order, paper's rule")
BLENDS = {"α order": "robust", "α order, paper's rule": "paper"}  # estimator: alpha_blend rule
BUDGETS = (100, 1000)  # samples per estimate in the comparison table

# Every random stream of the two tables, by role. "design": the first (bias/variance) table, the
# data the robust rule was designed on. "test": the comparison table, new in every stream (no seed
# in "design" or "used before"). "truth": the Langevin truth, in neither, shared by both tables.
SEEDS = {
    "design": {"perturbations": 0, "Langevin noise": 7},
    "used before": {"comparison table before the robust rule (deterministic one-parameter tasks)": 10,
                    "robust rule tuned on (with 0 and 10)": 20, "robust rule also tuned on": 30,
                    "robust rule checked on before the first comparison": 40, "robust rule also checked on": 50,
                    "comparison table as first committed (perturbations only; Langevin noise was seed 7)": 60},
    "test": {"perturbations, 100 samples": 1000, "perturbations, 1,000 samples": 1001,
             "Langevin noise, 100 samples": 1002, "Langevin noise, 1,000 samples": 1003},
    "truth": {"perturbations": 8, "Langevin noise": 9},
    # the studies beside the tables (per-sample variances, gradient descent): their own streams
    "studies": {"stiffness study": 1, "horizon study": 2, "descent: Langevin noise": 3,
                "descent: F(θ) estimates": 4, **{f"descent run {run}": 100 + run for run in range(5)}},
}


def repeated_terms(task, theta: torch.Tensor, sigma: float, n: int, repeats: int, g: torch.Generator):
    """Per-sample ZoBG and FoBG terms ``[repeats, n, d]`` (each repeat with its own baseline f(θ))."""
    w = perturbations(theta, sigma, n * repeats, g)
    with torch.no_grad():
        baseline = task(theta.expand(repeats, -1)).repeat_interleave(n)
    zeroth = zeroth_terms(task, theta, w, sigma, baseline=baseline)
    first = first_terms(task, theta, w)
    return zeroth.reshape(repeats, n, -1), first.reshape(repeats, n, -1)


def estimates(zeroth: torch.Tensor, first: torch.Tensor, tolerance: float) -> dict[str, np.ndarray]:
    """The estimates ``[repeats, d]`` of every estimator, and the α of each repeat (``"alpha", name``)."""
    out = {"zeroth order": zeroth.mean(1).numpy(), "first order": first.mean(1).numpy()}
    for name, rule in BLENDS.items():
        blends = [alpha_blend(z, f, tolerance, rule=rule) for z, f in zip(zeroth, first, strict=True)]
        out[name] = np.stack([b.gradient.numpy() for b in blends])
        out["alpha", name] = np.array([b.alpha for b in blends])
    return out


def settings(langevin_seed: int):
    """(label, task, θ, σ, tolerance γ, truth) for the bias/variance table; the Langevin task
    draws its noise from a generator seeded ``langevin_seed``. The truths need no random numbers,
    except Langevin's, which has its own seeds (``SEEDS["truth"]``) and its own task instance."""
    rows = []
    ball = BallWithWall()
    for theta in (0.65, 1.0):
        rows.append((f"ball and wall, θ = {theta} rad", ball, [theta], 0.05, 0.01,
                     lambda t=theta: [smoothed_gradient_quadrature(ball, t, 0.05)]))
    for k in (10, 100, 1000):
        push = Pushing(stiffness=k)
        rows.append((f"pushing, k = {k}", push, [1.0], 0.1, 0.4,
                     lambda p=push: [smoothed_gradient_quadrature(p, 1.0, 0.1, points=20_001, width=6.0)]))
    lq = LinearQuadratic()
    rows.append(("linear-quadratic (20 controls)", lq, list(lq.theta0), 0.1, 15.0,
                 lambda: torch.func.grad(lambda t: lq(t[None])[0])(torch.zeros(20, dtype=torch.float64)).tolist()))
    langevin = LangevinBias(steps=1000, generator=torch.Generator().manual_seed(langevin_seed))
    rows.append(("Langevin double well, T = 1000", langevin, [0.0], 0.1, 5.0, langevin_truth))
    return rows


LANGEVIN_TRUTH = {}  # the Langevin truth (zeroth order), its standard error and the first-order check, for the JSON


def langevin_truth(samples: int = 1_000_000, chunk: int = 40_000) -> list[float]:
    """The smoothed gradient of the Langevin task at θ = 0: the zeroth-order mean of ``samples``
    perturbations, from a task instance and perturbations seeded by ``SEEDS["truth"]`` only, in
    chunks. The zeroth order is unbiased for the smoothed gradient (Stein's lemma) with a bounded
    per-sample variance; the first-order terms of the same perturbations (recorded as a check) are
    so heavy-tailed through 1,000 chaotic steps that one term can dominate their mean. Standard
    errors: the larger of the pooled one and that of the chunk means."""
    theta = torch.zeros(1, dtype=torch.float64)
    task = LangevinBias(steps=1000, generator=torch.Generator().manual_seed(SEEDS["truth"]["Langevin noise"]))
    g = torch.Generator().manual_seed(SEEDS["truth"]["perturbations"])
    terms: dict[str, list[torch.Tensor]] = {"zeroth_order": [], "first_order": []}
    for _ in range(samples // chunk):
        w = perturbations(theta, 0.1, chunk, g)
        terms["zeroth_order"].append(zeroth_terms(task, theta, w, 0.1)[:, 0])
        terms["first_order"].append(first_terms(task, theta, w)[:, 0])
    LANGEVIN_TRUTH.update(samples=samples // chunk * chunk, chunk=chunk, truth="zeroth_order")
    for name, chunks in terms.items():
        pooled, means = torch.cat(chunks), torch.stack([c.mean() for c in chunks])
        LANGEVIN_TRUTH.update({name: float(pooled.mean()), f"{name}_variance": float(pooled.var()),
                               f"{name}_se": max(float(pooled.std() / len(pooled) ** 0.5),
                                                 float(means.std() / len(means) ** 0.5)),
                               f"{name}_max_abs_term": float(pooled.abs().max())})
    return [LANGEVIN_TRUTH["zeroth_order"]]


def truths() -> dict[str, np.ndarray]:
    """The true gradient of every setting, by label (computed once, shared by both tables)."""
    return {label: np.asarray(truth_fn()) for label, *_, truth_fn in settings(SEEDS["design"]["Langevin noise"])}


def bias_variance(n: int, repeats: int, truth: dict) -> tuple[list[dict], list[list[str]]]:
    """The first table, on the design seeds (``SEEDS["design"]``)."""
    results, cells = [], []
    for label, task, theta, sigma, tolerance, _ in settings(SEEDS["design"]["Langevin noise"]):
        started = time.perf_counter()
        theta_t = torch.tensor(theta, dtype=torch.float64)
        zeroth, first = repeated_terms(task, theta_t, sigma, n, repeats,
                                       torch.Generator().manual_seed(SEEDS["design"]["perturbations"]))
        truth_t = truth[label]
        est = estimates(zeroth, first, tolerance)
        row = {"task": label, "theta": theta, "sigma": sigma, "tolerance": tolerance, "samples": n,
               "repeats": repeats, "true_gradient_norm": float(np.linalg.norm(truth_t)), "estimators": {}}
        for name in ESTIMATORS:
            error = est[name] - truth_t
            bias = error.mean(0)
            squared = (error**2).sum(1)
            row["estimators"][name] = {
                "bias_norm": float(np.linalg.norm(bias)),
                "bias_se": float(np.sqrt((error.var(0, ddof=1) / repeats).sum())),
                "variance": float(est[name].var(0, ddof=1).sum()),
                "mse": float(squared.mean()), "mse_se": float(squared.std(ddof=1) / np.sqrt(repeats)),
                **({"alpha_mean": float(est["alpha", name].mean())} if name in BLENDS else {})}
            r = row["estimators"][name]
            alpha = f"{r['alpha_mean']:.2f}" if name in BLENDS else "—"
            cells.append([label, name, f"{np.linalg.norm(truth_t):.4g}", f"{tolerance:g}",
                          f"{r['bias_norm']:.3g} ± {r['bias_se']:.2g}", f"{r['variance']:.3g}",
                          f"{r['mse']:.3g} ± {r['mse_se']:.2g}", alpha])
        row["variance_ratio_zeroth_to_first"] = (row["estimators"]["zeroth order"]["variance"]
                                                 / row["estimators"]["first order"]["variance"])
        row["seconds"] = time.perf_counter() - started
        results.append(row)
        print(f"{label}: " + ", ".join(f"{k} MSE {v['mse']:.3g}" for k, v in row["estimators"].items()), flush=True)
    return results, cells


def gap_z(zeroth: torch.Tensor, first: torch.Tensor) -> float:
    """|FoBG − ZoBG| in standard errors of the paired difference (the robust rule's test statistic)."""
    difference = first - zeroth
    return float(difference.mean(0).norm() / (difference.var(0).sum() / len(difference)).sqrt())


def alpha_budget(repeats: int, truth: dict) -> tuple[list[dict], list[list[str]]]:
    """MSE of each α-order rule over that of the better of the zeroth and first order, at 100
    and 1,000 samples per estimate, on every task (same γ as the table), on held-out seeds
    (``SEEDS["test"]``): new perturbations and new Langevin noise for each budget."""
    results, cells = [], []
    test = SEEDS["test"]
    for index, (label, *_) in enumerate(settings(SEEDS["design"]["Langevin noise"])):
        row = {"task": label}
        for n in BUDGETS:
            budget = f"{n:,} samples"
            # a fresh Langevin task per budget, its noise from this budget's held-out seed
            _, task, theta, sigma, tolerance, _ = settings(test[f"Langevin noise, {budget}"])[index]
            row["tolerance"] = tolerance
            zeroth, first = repeated_terms(task, torch.tensor(theta, dtype=torch.float64), sigma, n, repeats,
                                           torch.Generator().manual_seed(test[f"perturbations, {budget}"]))
            est = estimates(zeroth, first, tolerance)
            mse = {name: ((est[name] - truth[label]) ** 2).sum(1) for name in ESTIMATORS}
            best = min(("zeroth order", "first order"), key=lambda k: mse[k].mean())
            row[n] = {"best": best, "gap_z_median": float(np.median([gap_z(z, f) for z, f in zip(zeroth, first,
                                                                                                 strict=True)])),
                      "mse": {name: float(mse[name].mean()) for name in ESTIMATORS},
                      "mse_se": {name: float(mse[name].std(ddof=1) / np.sqrt(repeats)) for name in ESTIMATORS}}
            for name in BLENDS:
                # standard error of the ratio from the paired per-repeat differences
                ratio = float(mse[name].mean() / mse[best].mean())
                se = float((mse[name] - mse[best]).std(ddof=1) / np.sqrt(repeats) / mse[best].mean())
                row[n][name] = {"ratio": ratio, "ratio_se": se, "ratio_minus_1_in_se": (ratio - 1) / se if se else 0.0,
                                "alpha_mean": float(est["alpha", name].mean())}
        results.append(row)
        print(f"{label}: " + ", ".join(f"{name} {n}: {row[n][name]['ratio']:.2f} ± {row[n][name]['ratio_se']:.2f}"
                                       for n in BUDGETS for name in BLENDS), flush=True)
        cells.append([label, f"{row['tolerance']:g}", *(
            f"{row[n][name]['ratio']:.2f} ± {row[n][name]['ratio_se']:.2f} (α {row[n][name]['alpha_mean']:.2f})"
            for n in BUDGETS for name in ("α order, paper's rule", "α order")),
            *(row[n]["best"] for n in BUDGETS)])
    return results, cells


def budget_summary(budget: list[dict]) -> dict:
    """Numbers the docs quote from the comparison table, for each rule: the largest |ratio − 1|
    in standard errors and where, the largest excess (ratio − 1 > 0, worse than the better
    estimator) and shortfall (better) in standard errors and where, the settings more than one
    standard error worse and better, and the range of ratios on the deterministic tasks."""
    out = {}
    for name in BLENDS:
        cells = [(row["task"], n, row[n][name]) for row in budget for n in BUDGETS]
        z = [c[2]["ratio_minus_1_in_se"] for c in cells]
        at = [{"task": c[0], "samples": c[1]} for c in cells]
        farthest, worst, best = int(np.argmax(np.abs(z))), int(np.argmax(z)), int(np.argmin(z))
        deterministic = [c[2]["ratio"] for c in cells if not c[0].startswith("Langevin")]
        out[name] = {
            "max_abs_ratio_minus_1_in_se": abs(z[farthest]), "max_at": at[farthest],
            "max_worse_in_se": z[worst], "max_worse_at": at[worst],
            "max_better_in_se": -z[best], "max_better_at": at[best],
            "settings": len(cells),
            "worse_by_more_than_1_se": sum(v > 1 for v in z),
            "better_by_more_than_1_se": sum(v < -1 for v in z),
            "max_ratio": max(c[2]["ratio"] for c in cells),
            "deterministic_ratio_range": [min(deterministic), max(deterministic)],
        }
    return out


def stiffness_study(repeats: int) -> dict:
    """First- and zeroth-order per-sample variance against k, and the median n-sample FoBG."""
    out = {"stiffness": [10, 100, 1000, 3000, 10000], "first_variance": [], "zeroth_variance": [], "truth": [],
           "median_relative": {}}
    sizes = (1, 3, 10, 30, 100)
    g = torch.Generator().manual_seed(SEEDS["studies"]["stiffness study"])
    theta = torch.tensor([1.0], dtype=torch.float64)
    for k in out["stiffness"]:
        push = Pushing(stiffness=k)
        truth = smoothed_gradient_quadrature(push, 1.0, 0.1, points=20_001, width=6.0)
        w = perturbations(theta, 0.1, 100 * repeats, g)
        first = first_terms(push, theta, w)[:, 0]
        zeroth = zeroth_terms(push, theta, w, 0.1)[:, 0]
        out["truth"].append(truth)
        out["first_variance"].append(float(first.var()))
        out["zeroth_variance"].append(float(zeroth.var()))
        out["median_relative"][k] = [float(first[: size * repeats].reshape(repeats, size).mean(1).median() / truth)
                                     for size in sizes]
    out["sizes"] = list(sizes)
    return out


def horizon_study(n: int) -> dict:
    """Per-sample FoBG and ZoBG variance of the Langevin task against the number of steps T."""
    out = {"steps": [10, 30, 100, 300, 1000, 3000], "first_variance": [], "zeroth_variance": [], "first_mean": []}
    theta = torch.zeros(1, dtype=torch.float64)
    for steps in out["steps"]:
        g = torch.Generator().manual_seed(SEEDS["studies"]["horizon study"])
        task = LangevinBias(steps=steps, generator=g)
        w = perturbations(theta, 0.1, n, g)
        first, zeroth = first_terms(task, theta, w)[:, 0], zeroth_terms(task, theta, w, 0.1)[:, 0]
        out["first_variance"].append(float(first.var()))
        out["zeroth_variance"].append(float(zeroth.var()))
        out["first_mean"].append(float(first.mean()))
    return out


def optimise(n: int, iterations: int, seeds: int) -> dict:
    """Gradient descent θ ← θ − η ĝ with each estimator (n samples per step) on each task;
    the smoothed objective F(θ_k) along the way (quadrature, exact, or 4,000 samples)."""
    ball, push, lq = BallWithWall(), Pushing(stiffness=1000), LinearQuadratic()
    langevin = LangevinBias(steps=300, generator=torch.Generator().manual_seed(
        SEEDS["studies"]["descent: Langevin noise"]))

    def mc_value(task, sigma):
        def value(theta):
            t = torch.as_tensor(theta, dtype=torch.float64)
            w = perturbations(t, sigma, 4000, torch.Generator().manual_seed(SEEDS["studies"]["descent: F(θ) estimates"]))
            with torch.no_grad():
                return float(task(t + w).mean())
        return value

    problems = {  # name: task, θ0, σ, γ, step size η, F
        "ball and wall": (ball, [0.6], 0.05, 0.01, 2.0, lambda t: smoothed_value_quadrature(ball, t[0], 0.05)),
        "pushing, k = 1000": (push, [1.0], 0.1, 0.4, 0.3, lambda t: smoothed_value_quadrature(push, t[0], 0.1)),
        "linear-quadratic": (lq, list(lq.theta0), 0.1, 15.0, 0.05, mc_value(lq, 0.1)),
        "Langevin, T = 300": (langevin, [0.0], 0.1, 5.0, 2.0, mc_value(langevin, 0.1)),
    }
    out = {}
    for name, (task, theta0, sigma, tolerance, step, value) in problems.items():
        estimators = ESTIMATORS[:3]  # the paper's rule is compared in the tables
        curves = {e: [] for e in estimators}
        for estimator in estimators:
            for seed in range(seeds):
                g = torch.Generator().manual_seed(SEEDS["studies"][f"descent run {seed}"])
                theta = torch.tensor(theta0, dtype=torch.float64)
                curve = [value(theta.tolist())]
                for _ in range(iterations):
                    zeroth, first = repeated_terms(task, theta, sigma, n, 1, g)
                    grad = estimates(zeroth, first, tolerance)[estimator][0]
                    theta = theta - step * torch.from_numpy(grad)
                    curve.append(value(theta.tolist()))
                curves[estimator].append(curve)
        out[name] = curves
        print(f"optimised {name}: " + ", ".join(f"{e} F = {np.mean([c[-1] for c in v]):.4g}"
                                                for e, v in curves.items()), flush=True)
    return out


def descent_summary(curves: dict, within: float = 0.05) -> dict:
    """Final F of every run, and for the ball the gradient steps each run takes to come within
    ``within`` (relative) of the smoothed objective's minimum (quadrature on a grid of θ)."""
    ball = BallWithWall()
    optimum = min(smoothed_value_quadrature(ball, float(t), 0.05) for t in np.linspace(0.6, 1.0, 401))
    threshold = (1 - within) * optimum  # F < 0: within 5% of the minimum means F ≤ 0.95 F_min
    steps = {estimator: [next((k for k, f in enumerate(run) if f <= threshold), None) for run in runs]
             for estimator, runs in curves["ball and wall"].items()}
    return {"final_F": {problem: {estimator: [run[-1] for run in runs] for estimator, runs in by_estimator.items()}
                        for problem, by_estimator in curves.items()},
            "ball": {"optimum_F": optimum, "within": within, "threshold_F": threshold,
                     "steps_to_threshold": steps}}


def plot(stiffness: dict, horizon: dict, curves: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    ax.loglog(stiffness["stiffness"], stiffness["first_variance"], "o-", label="first order")
    ax.loglog(stiffness["stiffness"], stiffness["zeroth_variance"], "s--", label="zeroth order")
    ax.set(xlabel="contact stiffness k", ylabel="per-sample variance", title="pushing: variance against stiffness")
    ax.legend(fontsize=8)
    ax = axes[1]
    for k, medians in stiffness["median_relative"].items():
        ax.semilogx(stiffness["sizes"], medians, "o-", label=f"k = {k}")
    ax.axhline(1, color="0.5", lw=0.8)
    ax.set(xlabel="samples n", ylabel="median FoBG / true gradient", title="empirical bias of the first order")
    ax.legend(fontsize=7)
    ax = axes[2]
    ax.loglog(horizon["steps"], horizon["first_variance"], "o-", label="first order")
    ax.loglog(horizon["steps"], horizon["zeroth_variance"], "s--", label="zeroth order")
    ax.set(xlabel="Langevin steps T", ylabel="per-sample variance", title="double well: variance against horizon")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, "gradient_estimators_variance")

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.4))
    for ax, (name, by_estimator) in zip(axes, curves.items(), strict=True):
        for estimator, runs in by_estimator.items():
            runs = np.asarray(runs)
            steps = np.arange(runs.shape[1])
            ax.plot(steps, runs.mean(0), label=estimator)
            ax.fill_between(steps, runs.min(0), runs.max(0), alpha=0.15)
        ax.set(title=name, xlabel="gradient step", ylabel="smoothed cost F(θ)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, "gradient_estimators_descent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100, help="samples per gradient estimate")
    parser.add_argument("--repeats", type=int, default=400, help="independent estimates per setting")
    parser.add_argument("--iterations", type=int, default=40, help="gradient-descent steps")
    descent_runs = sum(name.startswith("descent run") for name in SEEDS["studies"])
    parser.add_argument("--seeds", type=int, default=descent_runs, choices=range(1, descent_runs + 1),
                        metavar=f"1..{descent_runs}", help="gradient-descent runs per estimator")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    timings = {}

    def lap(name):
        timings[name] = time.perf_counter() - started - sum(timings.values())
        print(f"[{name}: {timings[name]:.0f} s]", flush=True)

    truth = truths()
    lap("truths")
    rows, cells = bias_variance(args.samples, args.repeats, truth)
    lap("bias/variance table")
    budget, budget_cells = alpha_budget(args.repeats // 2, truth)
    lap("comparison table")
    stiffness = stiffness_study(args.repeats)
    lap("stiffness")
    horizon = horizon_study(4000)
    lap("horizon")
    curves = optimise(args.samples, args.iterations, args.seeds)
    lap("descent")
    design, test = SEEDS["design"], SEEDS["test"]
    table = markdown_table(
        f"Gradient estimators at {args.samples} samples per estimate, {args.repeats} independent estimates each "
        "(`python benchmarks/gradient_estimators.py`): the norm of the true smoothed gradient, the norm of the "
        "bias (mean estimate − truth, ± its standard error), the variance of the estimate (trace), the mean squared "
        "error (± standard error), the bias tolerance γ given to the α-order rule (confidence 0.95) and the mean α it "
        f"chose. Design seeds, on which the robust rule was designed: perturbations {design['perturbations']}, "
        f"Langevin noise {design['Langevin noise']}:",
        ["task", "estimator", "|∇F|", "γ", "bias", "variance", "MSE", "α"], cells, text_columns=2)
    table += ["", *markdown_table(
        f"Each α-order rule against the better of the zeroth and first order at 100 and 1,000 samples per estimate "
        f"({args.repeats // 2} estimates each, the same γ) on held-out seeds, new in every stream: perturbations "
        f"{test['perturbations, 100 samples']} and {test['perturbations, 1,000 samples']}, Langevin noise "
        f"{test['Langevin noise, 100 samples']} and {test['Langevin noise, 1,000 samples']} (100 and 1,000 samples). "
        "MSE ratio ± standard error from the paired differences (1 = as good as the better) and the mean α; the "
        "last two columns name the better estimator:",
        ["task", "γ", "paper's rule, 100", "robust, 100", "paper's rule, 1,000", "robust, 1,000", "better, 100",
         "better, 1,000"], budget_cells, text_columns=2)]
    timings["total"] = time.perf_counter() - started
    write_results("gradient_estimators", [{"seeds": SEEDS, "bias_variance": rows, "alpha_budget": budget,
                                            "alpha_budget_summary": budget_summary(budget),
                                            "langevin_truth": LANGEVIN_TRUTH,
                                            "stiffness": stiffness, "horizon": horizon, "descent": curves,
                                            "descent_summary": descent_summary(curves),
                                            "seconds": timings, "threads": args.threads}], table)
    plot(stiffness, horizon, curves)


if __name__ == "__main__":
    main()
