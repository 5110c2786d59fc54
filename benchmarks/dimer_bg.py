"""Boltzmann generator for the solvated dimer (Noé et al. 2019, Fig. 3) against the umbrella reference.

    python benchmarks/dimer_reference.py              # once: the reference
    python benchmarks/dimer_bg.py [--seed 0] [--steps N]

The paper's protocol: Metropolis data in the closed and the open state separately (no
transitions: the barrier is about 18 kT; sweeps of single-particle moves, so the solvent
decorrelates), solvent labels made consistent by Hungarian assignment to a reference lattice,
the frames' mirror images added (the box's reflections: exact augmentation), the paper's
RealNVP (8 blocks of 3 × 200) trained by maximum likelihood for half the steps, then by ML +
KL (the energy) + RC (the entropy of samples along x₁ ≈ d/2, weight 5), and reweighting. ``--resume`` continues (or only re-evaluates) a run from its
checkpoint in runs/dimer/. Density accounting for the
relabelling: the flow's samples are kept only where relabelling leaves them unchanged (the
reference sector, one copy of every configuration up to solvent permutations); elsewhere
their weight is zero. Within the sector the weights are exactly p/q, and since ΔF(open −
closed) and the d-profile are invariant to solvent permutations, their sector averages equal
the full ones. Samples at latent temperature factors τ (``--tau``) are reweighted to kT = τ.

Writes benchmarks/results/dimer_bg.json/.md (rows per seed) and dimer_bg.png (profile).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch
from pipeline import MIN_EFFECTIVE, RESULTS, markdown_table, save_figure, write_results

from mlmol import fit, sample
from mlmol.data import save_array
from mlmol.estimators import Profile, delta_f, ess_fraction, free_energy_profile
from mlmol.experiments import noe2019
from mlmol.flows import NeuralSpline, RealNVP
from mlmol.samplers import metropolis
from mlmol.systems.particles import SolvatedDimer, dimer_distance

DATA = Path(__file__).resolve().parent.parent / "runs" / "dimer"
# per state; sweeps of single-particle moves (all-particle moves barely rearrange the solvent, and
# a flow trained on those frames memorised them)
DATA_SETTINGS = {"chains": 1000, "burn": 1000, "thin": 50, "per_chain": 20, "step": 0.1, "moves": "particle"}


def training_data(system: SolvatedDimer) -> tuple[torch.Tensor, float]:
    """Metropolis frames (particle sweeps) from the closed (d = 1) and open (d = 2) lattices, relabelled; cached."""
    s = DATA_SETTINGS
    path = DATA / ("data_" + "_".join(f"{k}{v}" for k, v in s.items()) + ".npz")
    if path.is_file():
        with np.load(path) as f:
            return torch.from_numpy(f["x"]), float(f["wall_s"])
    started = time.perf_counter()
    frames = []
    for seed, d in enumerate((1.0, 2.0)):
        frames.append(metropolis(system, s["chains"] * s["per_chain"], seed=seed, starts=system.lattice(d)[None],
                                 step=s["step"], chains_per_start=s["chains"], burn=s["burn"], thin=s["thin"],
                                 progress=True, moves=s["moves"]))
    x = system.canonical(torch.cat(frames))
    wall = time.perf_counter() - started
    DATA.mkdir(parents=True, exist_ok=True)
    save_array(path, x=x.numpy(), wall_s=wall)
    return x, wall


def plot(rows: list[dict], reference: dict) -> None:
    """Each row's reweighted profile along d (kT = 1) against the umbrella reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    centres = 0.5 * (reference["edges"][1:] + reference["edges"][:-1])
    ax.errorbar(centres, reference["f"], yerr=reference["stderr"], color="k", lw=1.2, label="umbrella + MBAR")
    for r in rows:
        profile = Profile(*(np.asarray(r["profile"][k], dtype=float) for k in ("edges", "f", "stderr")))
        ax.errorbar(profile.centres, profile.f - np.nanmin(profile.f), yerr=profile.stderr, fmt="o", ms=3,
                    label=f"BG ({label(r)}, seed {r['seed']}), reweighted")
    ax.set_xlabel("dimer distance d")
    ax.set_ylabel("free energy (kT)")
    ax.set_ylim(-0.5, 25)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, "dimer_bg")


def label(row: dict) -> str:
    return row["losses"] + (f", w_rc {row['w_rc']:g}" if "w_rc" in row else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=8_000, help="ML for the first half, then ML + KL")
    parser.add_argument("--flow", choices=["spline", "realnvp"], default="realnvp",
                        help="realnvp: the paper's 8 blocks of 3 × 200; spline: 6 blocks of rational-quadratic "
                             "splines (3× slower per step)")
    parser.add_argument("--losses", default="ml+kl+rc", help="the second stage: ml+kl+rc (the paper's; the RC loss "
                        "spreads samples along d over the barrier, weight --w-rc) or ml+kl")
    parser.add_argument("--w-rc", type=float, default=5.0)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--resume", action="store_true",
                        help="continue from this run's checkpoint (a finished run is only re-evaluated); the "
                             "training time then counts the resumed part only")
    parser.add_argument("--tau", "--temperatures", dest="taus", type=float, nargs="+", default=[1.0, 2.0],
                        help="latent temperature factors τ to sample at (--temperatures: the earlier name)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-mirror", dest="mirror", action="store_false",
                        help="train on the frames only, without their images under the box's reflections")
    parser.add_argument("--data-only", action="store_true", help="only make (and cache) the training data")
    parser.add_argument("--tabulate", action="store_true",
                        help="train nothing: redraw the table and plot from stored rows against the current reference")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    system = SolvatedDimer()
    if not args.tabulate:
        data, data_s = training_data(system)
    if args.data_only:
        return
    reference_file = RESULTS / "dimer_reference.json"
    if not reference_file.is_file():
        raise SystemExit(f"{reference_file} is missing: run python benchmarks/dimer_reference.py first")
    reference = json.loads(reference_file.read_text())[-1]
    profile_file = next((f for f in (RESULTS / "dimer_reference_profile.npz", DATA / "reference_profile.npz")
                         if f.is_file()), None)
    if profile_file is None and not args.tabulate:
        raise SystemExit("the reference profile is missing: run python benchmarks/dimer_reference.py first")
    reference_profile = None
    if profile_file is not None:
        with np.load(profile_file) as f:
            reference_profile = {k: f[k] for k in ("edges", "f", "stderr")}
    if args.tabulate:
        render(json.loads((RESULTS / "dimer_bg.json").read_text()), reference, reference_profile)
        return

    torch.manual_seed(args.seed)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    n_held = round(0.05 * len(data))  # held out before augmenting: no mirror image of a held frame is trained on
    held, data = data[order[:n_held]], data[order[n_held:]]
    if args.mirror:
        data = system.canonical(system.augment(data))
    loc, scale = data.mean(0).float(), data.std(0).float().clamp(min=1e-3)
    if args.flow == "realnvp":  # the paper's network
        flow = RealNVP(system.dim, blocks=8, hidden=(200, 200, 200), loc=loc, scale=scale)
    else:
        flow = NeuralSpline(system.dim, blocks=6, hidden=(256, 256), bins=8, bound=5.0, loc=loc, scale=scale)
    recipe = noe2019(system, data.float(), losses=args.losses, steps=args.steps, ml_fraction=1.0 if args.losses == "ml"
                     else 0.5, ml_batch=512, ml_lr=1e-3, ml_lr_end=1e-5, batch=512, lr=1e-4, lr_end=1e-5,
                     high=1e3, cap=1e6, w_rc=args.w_rc)
    recipe.validation = held.float()
    rc = f"_wrc{args.w_rc:g}" if "rc" in args.losses.split("+") else ""
    run_name = f"bg_{args.flow}_{args.losses}{rc}_steps{args.steps}{'_mirror' if args.mirror else ''}_seed{args.seed}"
    checkpoint = DATA / f"{run_name}.pt"
    finished = args.resume and checkpoint.is_file() and torch.load(checkpoint, weights_only=False)["step"] >= args.steps
    history = fit(flow, recipe, seed=args.seed, progress=True, log_every=100, checkpoint=checkpoint,
                  metrics=DATA / f"{run_name}_metrics.jsonl", resume=args.resume)
    train_s = history.records[-1]["time_s"]  # the training loop's own clock

    row = {"seed": args.seed, "steps": args.steps, "losses": args.losses, "flow": args.flow, "n_data": len(data),
           "mirror": args.mirror, **({"w_rc": args.w_rc} if rc else {}),
           "data_min": round(data_s / 60, 2), "train_min": round(train_s / 60, 2),
           # training's peak memory; not measured when only evaluating a finished run
           "peak_rss_mib": None if finished else round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "val_ml": history["val_ml"][-1], "samples": args.samples, "temperatures": {}}
    for tau in args.taus:
        started = time.perf_counter()
        samples = sample(flow, system, args.samples, tau=tau, seed=args.seed, batch_size=20_000)
        inside = torch.isfinite(samples.log_weights)  # sample() gives zero weight outside the canonical sector
        estimate = delta_f(samples, lambda x: dimer_distance(x) > 1.5, lambda x: dimer_distance(x) < 1.5)
        row["temperatures"][str(tau)] = {"delta_f": estimate.value, "stderr": estimate.stderr,
                                         "ess_fraction": ess_fraction(samples.log_weights),
                                         "in_sector": float(inside.double().mean()), "samples": args.samples}
        if tau == 1.0:
            profile = free_energy_profile(samples, dimer_distance, reference_profile["edges"])
            row["profile"] = {"edges": profile.edges.tolist(), "f": profile.f.tolist(),
                              "stderr": profile.stderr.tolist()}
        row["temperatures"][str(tau)]["evaluate_min"] = round((time.perf_counter() - started) / 60, 2)
    path = RESULTS / "dimer_bg.json"
    old_rows = json.loads(path.read_text()) if path.is_file() else []
    for old in old_rows:  # temperatures not evaluated now keep their earlier evaluation
        if key(old) == key(row):
            for t in old["temperatures"].values():
                t.setdefault("samples", old["samples"])
            row["temperatures"] = {**old["temperatures"], **row["temperatures"]}
            row["peak_rss_mib"] = row["peak_rss_mib"] or old.get("peak_rss_mib")
            row.setdefault("profile", old.get("profile"))
    rows = [r for r in old_rows if key(r) != key(row)] + [row]
    render(sorted(rows, key=key), reference, reference_profile)


def key(row: dict) -> tuple:
    """Rows of the same training setting and seed replace each other."""
    return row["flow"], row["losses"], row.get("w_rc", 0.0), row["steps"], row.get("mirror", False), row["seed"]


def render(rows: list[dict], reference: dict, reference_profile: dict) -> None:
    """The table and the profile plot of stored rows against the current reference."""
    ref_error = float(np.nanmax([reference["repeat_stderr"], reference["mbar_stderr"]]))
    cells = []
    for r in rows:
        r["reference"] = reference
        one = r["temperatures"].get("1.0")
        if one is not None:
            r["difference"] = one["delta_f"] - reference["delta_f"]
        for tau, t in r["temperatures"].items():
            ref = f"{reference['delta_f']:.2f} ± {ref_error:.2f}" if tau == "1.0" else "—"
            diff = f"{r['difference']:+.2f}" if tau == "1.0" else "—"
            n = t.get("samples", r["samples"])
            t["effective_samples"] = t["ess_fraction"] * n  # Kish: (Σw)² / Σw² over all n samples
            counted = "yes" if t["effective_samples"] >= MIN_EFFECTIVE else "no"
            cells.append([f"{r['flow']}, {label(r)}", str(r["seed"]), tau, f"{n:,}", f"{r['train_min']:.1f}",
                          f"{r['peak_rss_mib']:,}" if r.get("peak_rss_mib") else "—",
                          f"{100 * t['ess_fraction']:.4f}%", f"{t['effective_samples']:.0f}", counted,
                          f"{100 * t['in_sector']:.0f}%", f"{t['delta_f']:.2f} ± {t['stderr']:.2f}", ref, diff])
    if reference_profile is not None:
        plot([r for r in rows if "profile" in r], reference_profile)
    else:
        print("no reference profile here: the plot is left as it is")
    last = rows[-1]
    table = markdown_table(
        f"Solvated dimer: Boltzmann generator (`python benchmarks/dimer_bg.py --seed S [--losses L]`; "
        f"{last['n_data']:,} relabelled Metropolis frames with their mirror images, {last['steps']:,} steps, "
        "samples per latent temperature τ as listed, reweighted to kT = τ) against umbrella sampling + "
        f"MBAR at kT = 1. A run counts towards a bar only with at least {MIN_EFFECTIVE} effective samples "
        "(ESS fraction × samples; error bars from fewer weights are not reliable):",
        ["model", "seed", "τ", "samples", "training (min)", "peak memory (MiB)", "ESS", "effective samples",
         "counts", "in sector", "BG ΔF(open − closed) (kT)", "reference (kT)", "difference (kT)"], cells,
        text_columns=3)
    write_results("dimer_bg", rows, table)


if __name__ == "__main__":
    main()
