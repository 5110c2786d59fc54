"""Equivariant Boltzmann generators for DW-4 and LJ-13: train by flow matching, reweight, compare with MCMC.

    python benchmarks/particles_reference.py          # once: the MCMC data
    python benchmarks/particles_bg.py --system dw4
    python benchmarks/particles_bg.py --system lj13
    python benchmarks/particles_bg.py --tabulate      # measure nothing: redraw the table from the stored rows

Trains an :class:`~mlmol.flows.EquivariantFlow` by equivariant flow matching on the MCMC
training split (the flow and schedule of `mlmol train dw4|lj13`), then draws samples with exact log densities and reports: training time and
peak memory (resident set size of this process), the Kish ESS fraction of the importance
weights with the effective sample count (Σw)² / Σw², the negative log-likelihood of the
held-out MCMC test split (nats, on the centre-of-mass-free subspace, the papers' convention),
and total-variation distances between histograms of the energy and of all interparticle distances of generator samples (raw and
reweighted) and the MCMC test split. Rows are kept per system in
benchmarks/results/particles_bg.json/.md; figures go to benchmarks/results/particles_bg_<system>.png.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch
from particles_reference import DATA, load_reference
from pipeline import MIN_EFFECTIVE, RESULTS, markdown_table, save_figure, write_results

from mlmol import fit
from mlmol.estimators import ess, ess_fraction, histogram_tv
from mlmol.experiments import klein2023
from mlmol.flows import EquivariantFlow
from mlmol.generate import sample
from mlmol.config import SYSTEM_DEFAULTS
from mlmol.systems import get

SAMPLES = {"dw4": 100_000, "lj13": 10_000}  # generated samples per system (sampling LJ-13 costs more)

# Published results on the same systems (different data sets of the same distributions; see docs/particles.md)
PUBLISHED: dict[str, list[dict]] = {"dw4": [], "lj13": []}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def observables(system, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Reduced energies ``[n]`` and all pair distances ``[n, pairs]`` of configurations."""
    return {"energy": system.energy(x).numpy(), "distance": system.distances(x).numpy()}


def plot(generated: dict, weights: np.ndarray, test: dict, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "energy", "reduced energy u (kT)"), (axes[1], "distance", "interparticle distance")):
        ref, gen = test[key], generated[key]
        k = gen.shape[1] if gen.ndim > 1 else 1
        lo, hi = np.percentile(ref, [0.05, 99.95])
        bins = np.linspace(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), 80)
        ax.hist(ref.ravel(), bins=bins, density=True, histtype="stepfilled", alpha=0.3, color="k", label="MCMC (test)")
        ax.hist(gen.ravel(), bins=bins, density=True, histtype="step", lw=1.5, label="generator")
        ax.hist(gen.ravel(), bins=bins, weights=np.repeat(weights, k), density=True, histtype="step", lw=1.5,
                label="generator, reweighted")
        ax.set_xlabel(label)
        ax.set_ylabel("density")
    axes[0].legend()
    fig.suptitle(name)
    fig.tight_layout()
    save_figure(fig, f"particles_bg_{name}")


def run(name: str, seed: int, train_steps: int | None, n_samples: int | None, ode_steps: int | None = None,
        resume: bool = False, overrides: dict | None = None) -> dict:
    defaults = SYSTEM_DEFAULTS[name]  # the flow and schedule of `mlmol train NAME`; ``overrides`` change the flow
    options = {k: v for k, v in defaults["flow"].items() if k != "kind"} | (overrides or {})
    variant = "".join(f"_{k}{v}" for k, v in (overrides or {}).items())  # in file names
    schedule = {k: v for k, v in defaults["recipe"].items() if k != "name"} | (
        {"steps": train_steps} if train_steps else {})
    system, data = get(name), load_reference(name)
    torch.manual_seed(seed)
    flow = EquivariantFlow(system.n_particles, system.spatial_dim, **options)
    recipe = klein2023(system, data["train"].float(), **schedule)
    run_name = f"{name}_flow_steps{schedule['steps']}_seed{seed}{variant}"
    history = fit(flow, recipe, seed=seed, progress=True, log_every=100, checkpoint=DATA / f"{run_name}.pt",
                  metrics=DATA / f"{run_name}_metrics.jsonl", resume=resume)
    steps = schedule["steps"]
    train_s = history.records[-1]["time_s"]  # the training loop's own clock
    train_rss = peak_rss_mib()
    if ode_steps:  # flow matching trains the velocity only: the ODE solver's steps are free at sampling time
        flow.steps = options["steps"] = ode_steps

    started = time.perf_counter()
    generated = sample(flow, system, n_samples or SAMPLES[name], seed=seed, batch_size=2_000)
    sample_s = time.perf_counter() - started
    started = time.perf_counter()
    test = data["test"]
    nll = -float(torch.cat([flow.log_prob(c.float()) for c in test.split(2_000)]).double().mean())
    nll_s = time.perf_counter() - started

    x, lw = generated.x, generated.log_weights
    w = torch.exp(lw - lw.max()).numpy()
    gen, ref, validation = (observables(system, y) for y in (x, test, data["validation"]))
    edges = {"energy": np.linspace(*np.percentile(ref["energy"], [0.1, 99.9]), 61),
             "distance": np.linspace(0.0, float(ref["distance"].max()), 61)}
    k = gen["distance"].shape[1]
    tv = {}
    for key, weights in (("energy", w), ("distance", np.repeat(w, k))):
        tv[f"tv_{key}"] = histogram_tv(gen[key].ravel(), ref[key].ravel(), edges[key])
        tv[f"tv_{key}_reweighted"] = histogram_tv(gen[key].ravel(), ref[key].ravel(), edges[key], weights)
        # the same statistic between two independent MCMC splits: the floor set by finite samples
        tv[f"tv_{key}_mcmc"] = histogram_tv(validation[key].ravel(), ref[key].ravel(), edges[key])
    plot(gen, w, ref, name + variant)
    return {"system": name, "seed": seed, "train_steps": steps, "flow": options, "batch": schedule["batch"],
            "n_train": len(data["train"]), "n_test": len(test), "samples": len(x),
            "train_min": round(train_s / 60, 2), "train_peak_rss_mib": round(train_rss),
            "sample_s": round(sample_s, 1), "nll_s": round(nll_s, 1), "peak_rss_mib": round(peak_rss_mib()),
            "resumed": resume, "final_fm": history["fm"][-1], "ess_fraction": ess_fraction(lw),
            "effective_samples": ess(lw), "nll_test": nll,
            **{key: round(v, 4) for key, v in tv.items()}, "threads": torch.get_num_threads()}


def table(rows: list[dict]) -> list[str]:
    cells = []
    for r in rows:
        # rows stored before "effective_samples" was recorded: the Kish count is ESS fraction × samples
        r.setdefault("effective_samples", r["ess_fraction"] * r["samples"])
        cells.append([r["system"], str(r["seed"]), f"{r['flow']['hidden']} / {r['flow']['basis']}",
                      f"{r['train_steps']:,}",
                      f"{r['train_min']:.1f}", f"{r['train_peak_rss_mib']:,}",
                      f"{r['sample_s'] / r['samples'] * 1e3:.1f}", f"{100 * r['ess_fraction']:.1f}%",
                      f"{r['effective_samples']:,.0f}", "yes" if r["effective_samples"] >= MIN_EFFECTIVE else "no",
                      f"{r['nll_test']:.2f}",
                      f"{r['tv_energy']:.3f} / {r['tv_energy_reweighted']:.3f} ({r['tv_energy_mcmc']:.3f})",
                      f"{r['tv_distance']:.3f} / {r['tv_distance_reweighted']:.3f} ({r['tv_distance_mcmc']:.3f})"])
    per_system: dict[str, dict[int, None]] = {}  # the sample counts of each system, in order
    for r in rows:
        per_system.setdefault(r["system"], {})[r["samples"]] = None
    drawn = ", ".join(f"{' / '.join(f'{n:,}' for n in ns)} for {name}" for name, ns in per_system.items())
    return markdown_table(
        "Equivariant flow matching on 2 CPU cores (`python benchmarks/particles_bg.py --system S`). TV distances "
        "to the MCMC test split: generator / reweighted (two independent MCMC splits). Effective samples: the Kish "
        f"count (Σw)² / Σw² of the importance weights (ESS × samples: {drawn}); a run counts towards a bar only "
        f"with at least {MIN_EFFECTIVE}:",
        ["system", "seed", "MLP width / basis", "steps", "training (min)", "peak memory (MiB)", "sampling (ms/sample)", "ESS",
         "effective samples", "counts", "test NLL (nats)", "TV energy", "TV distances"], cells, text_columns=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=list(SAMPLES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="training steps (default: the system's setting)")
    parser.add_argument("--samples", type=int, help="generated samples (default: the system's setting)")
    parser.add_argument("--ode-steps", type=int, help="RK4 steps for sampling and likelihoods (default: the flow's)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from this run's checkpoint in runs/particles/ (a finished run is only "
                             "re-evaluated; the training time then counts the resumed part only)")
    parser.add_argument("--hidden", type=int, help="width of the velocity's MLP (default: the system's flow)")
    parser.add_argument("--basis", type=int, help="radial basis functions (default: the system's flow)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tabulate", action="store_true",
                        help="measure nothing: rewrite the table from the stored rows (results/particles_bg.json)")
    args = parser.parse_args()
    path = RESULTS / "particles_bg.json"
    if args.tabulate:
        rows = json.loads(path.read_text())
        write_results("particles_bg", rows, table(rows))
        return
    if args.system is None:
        parser.error("--system is required (or --tabulate)")
    torch.set_num_threads(args.threads)
    overrides = {k: v for k, v in (("hidden", args.hidden), ("basis", args.basis)) if v is not None}
    row = run(args.system, args.seed, args.steps, args.samples, args.ode_steps, args.resume, overrides)
    rows = json.loads(path.read_text()) if path.is_file() else []
    key = lambda r: (r["system"], r["seed"], r["flow"].get("hidden"), r["flow"].get("basis"), r["train_steps"])
    rows = sorted([r for r in rows if key(r) != key(row)] + [row], key=key)
    write_results("particles_bg", rows, table(rows))


if __name__ == "__main__":
    main()
