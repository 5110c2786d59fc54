"""Training from the energy alone: FAB (α = 2 with AIS and a replay buffer), reverse KL and temperature
annealing on targets with exact answers, at the same step budget per system.

    python benchmarks/energy_only.py [--systems gmm-40 many-well-32 double-well] [--losses fab kl ta]
                                     [--seeds 0 1 2]
    python benchmarks/energy_only.py --tabulate    # measure nothing: redraw the table from the stored rows

Each row runs `mlmol train SYSTEM --losses L --seed S` (`--losses fab-nobuffer`: FAB from a config file
with `buffer: false` in its recipe), then `mlmol sample --n N --seed 1000 + S` (a
stream training never used) and `mlmol evaluate`. Against exact answers: log Z from the generator's
importance weights (exact: 0 for GMM-40, 164.696 for Many Well 32), the forward ESS from 100,000 exact
target samples (seed 2000 + S), for GMM-40 the modes covered (a generator sample within 2σ of the
mean; 40 of 40 is the bar) and the largest error of a component's reweighted mass (samples assigned to
the nearest mean) against the exact 1/40, for Many Well each 2D pair's left-well occupancy (reweighted) against
exact, for the double well ΔF against quadrature, for DW-4 and LJ-13 total-variation distances of reweighted
energy and distance histograms to the MCMC test split of benchmarks/particles_reference.py (in brackets: two MCMC
splits', the noise floor). Every row has the target energy evaluations of
training and its wall time. Writes benchmarks/results/energy_only.json and .md (mean ± sd over seeds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml
from pipeline import (
    MIN_EFFECTIVE,
    logged_records,
    markdown_table,
    mean_sd,
    pipeline,
    pool_size,
    read_results,
    stages,
    write_results,
)

from mlmol import estimators, systems
from mlmol.config import ENERGY_LOSSES
from mlmol.run import load

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = {"gmm-40": 100_000, "many-well-32": 100_000, "double-well": 100_000, "dw4": 100_000, "lj13": 10_000}
EXACT_SAMPLES = 100_000
FLOW_MATCHED = ("dw4", "lj13")  # their equivariant flow has no density gradient: temperature annealing only
NAMES = {"fab": "FAB (α = 2, AIS, replay buffer)", "fab-nobuffer": "FAB without the replay buffer",
         "kl": "reverse KL", "ta": "temperature annealing"}
VARIANTS = {"fab-nobuffer": ("fab", {"buffer": False})}  # --losses and the recipe options a config file adds


def target_metrics(name: str, out: Path, seed: int) -> dict:
    """The metrics that need the exact target: forward ESS, modes, well occupancy."""
    system = systems.get(name)
    with np.load(out / "samples.npz") as f:
        x, log_w = torch.from_numpy(f["x"]), torch.from_numpy(f["log_weights"])
    metrics: dict = {}
    if hasattr(system, "sample"):
        exact = system.sample(EXACT_SAMPLES, torch.Generator().manual_seed(2000 + seed))
        flow = load(out).flow
        with torch.no_grad():
            log_q = torch.cat([flow.log_prob(chunk.float()).double() for chunk in exact.split(20_000)])
        metrics["forward_ess"] = estimators.forward_ess_fraction(-system.energy(exact) - log_q)
    if name == "gmm-40":
        sigma = float(system.std[0, 0])
        distance = torch.cdist(system.means, x)  # [40, n]
        metrics["modes_covered"] = int((distance.min(1).values <= 2 * sigma).sum())
        # reweighted mass of each component (samples assigned to the nearest mean) against the exact 1/40
        nearest = distance.argmin(0)
        mass = torch.zeros(len(system.means), dtype=torch.float64).index_add_(0, nearest, torch.softmax(log_w, 0))
        metrics["mode_mass_error"] = float((mass - 1 / len(system.means)).abs().max())
    if name in ("dw4", "lj13"):  # reweighted histograms against the MCMC test split, beside two MCMC splits' TV
        from particles_reference import load_reference

        reference = load_reference(name)
        w = torch.exp(log_w - log_w.max()).numpy()
        observed = {split: {"energy": system.energy(y).numpy(), "distance": system.distances(y).numpy()}
                    for split, y in (("generator", x), ("test", reference["test"]), ("validation", reference["validation"]))}
        test = observed["test"]
        edges = {"energy": np.linspace(*np.percentile(test["energy"], [0.1, 99.9]), 61),
                 "distance": np.linspace(0.0, float(test["distance"].max()), 61)}
        pairs = test["distance"].shape[1]
        for key, weights in (("energy", w), ("distance", np.repeat(w, pairs))):
            generated = observed["generator"][key].ravel()
            metrics[f"tv_{key}"] = estimators.histogram_tv(generated, test[key].ravel(), edges[key])
            metrics[f"tv_{key}_reweighted"] = estimators.histogram_tv(generated, test[key].ravel(), edges[key], weights)
            metrics[f"tv_{key}_mcmc"] = estimators.histogram_tv(observed["validation"][key].ravel(), test[key].ravel(),
                                                                  edges[key])
    if name == "many-well-32":
        weights = torch.softmax(log_w, 0)
        left = (x[:, 0::2] < 0).double()
        exact_left = system.left_fraction()
        metrics["occupancy_error"] = float(((weights[:, None] * left).sum(0) - exact_left).abs().max())
        metrics["raw_occupancy_error"] = float((left.mean(0) - exact_left).abs().max())
        metrics["exact_left"] = exact_left
    return metrics


def train_target(name: str, losses: str, runs: Path) -> list[str]:
    """The arguments of `mlmol train` before --seed: the system and --losses, or for a variant a config
    file (written beside the runs) with the variant's recipe options."""
    if losses not in VARIANTS:
        return [name, "--losses", losses]
    base, options = VARIANTS[losses]
    config = runs / f"{name}-{losses}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump({"system": {"name": name}, "recipe": {"name": ENERGY_LOSSES[base], **options}}))
    return [str(config), "--losses", base]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", default=["gmm-40", "many-well-32", "double-well", "dw4", "lj13"])
    parser.add_argument("--losses", nargs="+", default=["fab", "kl", "ta"], choices=list(NAMES),
                        help="fab-nobuffer: FAB with buffer: false in the recipe (a config file beside the runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "energy_only"))
    parser.add_argument("--tabulate", action="store_true",
                        help="measure nothing: rewrite the table from the stored rows (results/energy_only.json)")
    args = parser.parse_args()
    if args.tabulate:
        rows = read_results("energy_only")
        for r in rows:  # rows stored before stages were kept: from the run's own metrics.jsonl
            run = Path(args.runs) / f"{r['system']}-{r['losses']}-{r['seed']}"
            if "stages" not in r and (run / "metrics.jsonl").is_file():
                r["stages"] = stages(logged_records(run))
        render(rows)
        return
    torch.set_num_threads(1)
    rows: list[dict] = []  # this invocation's rows
    for name in args.systems:
        for losses in args.losses:
            if name in FLOW_MATCHED and losses != "ta":
                continue
            for seed in args.seeds:
                out = Path(args.runs) / f"{name}-{losses}-{seed}"
                result = pipeline([*train_target(name, losses, Path(args.runs)), "--seed", str(seed)], out,
                                  n=SAMPLES[name], sample_seed=1000 + seed)
                m = result["metrics"]
                row = {"system": name, "losses": losses, "seed": seed, "sample_seed": 1000 + seed,
                       "exact_seed": 2000 + seed, "samples": m["n"], "ess_fraction": m["ess_fraction"],
                       "effective_samples": m["ess"], "energy_evaluations": result["energy_evaluations"],
                       "train_s": result["train_s"], "command": result["command"], "stages": result["stages"],
                       **target_metrics(name, out, seed)}
                if "log_z" in m:
                    row.update(log_z=m["log_z"]["value"], log_z_stderr=m["log_z"]["stderr"],
                               log_z_exact=m["log_z"]["exact"], log_z_error=m["log_z"]["error"])
                if "delta_f" in m and "error" in m["delta_f"]:
                    row.update(delta_f_error=m["delta_f"]["error"], delta_f_stderr=m["delta_f"]["stderr"])
                rows.append(row)
                print(f"{name} {losses} seed {seed}: ESS {100 * row['ess_fraction']:.1f}% "
                      f"({row['effective_samples']:.0f}), {row['energy_evaluations']:,} evaluations, "
                      f"{row['train_s']:.0f} s", flush=True)
                render(merged(rows))


def merged(rows: list[dict]) -> list[dict]:
    """The stored rows, read now (rows that other invocations wrote meanwhile are kept), with ``rows``
    in place of those of the same system, loss and seed."""
    mine = {(r["system"], r["losses"], r["seed"]) for r in rows}
    try:
        stored = read_results("energy_only")
    except FileNotFoundError:
        stored = []
    return [r for r in stored if (r["system"], r["losses"], r["seed"]) not in mine] + rows


def render(rows: list[dict]) -> None:
    """The table (mean ± sd over seeds per system and loss) of stored rows."""
    cells = []
    keyed: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        keyed.setdefault((r["system"], r["losses"]), []).append(r)
    order = [*SAMPLES, *NAMES]
    for (name, losses), group in sorted(keyed.items(), key=lambda item: (order.index(item[0][0]), order.index(item[0][1]))):
        counted = [r for r in group if r["effective_samples"] >= MIN_EFFECTIVE]
        quality = "—"
        if name == "gmm-40":
            quality = f"modes {mean_sd([r['modes_covered'] for r in group], 1)} / 40" + (
                f"; mode mass error {mean_sd([r['mode_mass_error'] for r in group], 4)} (exact 0.025 each)"
                if "mode_mass_error" in group[0] else "")
        elif name == "many-well-32":
            quality = (f"max occupancy error {mean_sd([r['occupancy_error'] for r in group], 3)} "
                       f"(largest {max(r['occupancy_error'] for r in group):.3f})")
        elif "tv_energy_reweighted" in group[0]:
            quality = (f"reweighted TV energy {mean_sd([r['tv_energy_reweighted'] for r in group], 3)} "
                       f"({group[0]['tv_energy_mcmc']:.3f}), distances {mean_sd([r['tv_distance_reweighted'] for r in group], 3)} "
                       f"({group[0]['tv_distance_mcmc']:.3f})")
        elif name == "double-well":
            found = [r["delta_f_error"] for r in group if "delta_f_error" in r]
            quality = (f"ΔF error {mean_sd(found, 3)} kT (largest {max(map(abs, found)):.3f})" if found
                       else "ΔF: a state has no weighted sample") + (
                f" ({len(group) - len(found)} of {len(group)} seeds without a weighted sample in one state)"
                if 0 < len(found) < len(group) else "")
        last_pools = [r["stages"][-1]["pool_ess"] for r in group if r.get("stages") and r["stages"][-1]["pool_ess"]]
        if losses == "ta" and len(last_pools) == len(group):
            quality += (f"; last rung's pool ESS {mean_sd(last_pools, 1, True)} "
                        f"(min {min(last_pools) * pool_size(name):,.0f} of {pool_size(name):,})")
        log_z = "—" if "log_z_error" not in group[0] else (
            f"{mean_sd([r['log_z_error'] for r in group], 3)} (largest {max(abs(r['log_z_error']) for r in group):.3f})")
        forward = "—" if "forward_ess" not in group[0] else (
            f"{mean_sd([r['forward_ess'] for r in group], 2, True)} "
            f"(min {min(r['forward_ess'] for r in group) * EXACT_SAMPLES:,.0f} eff.)")
        seeds = ", ".join(str(r["seed"]) for r in sorted(group, key=lambda r: r["seed"]))
        command = f"`mlmol train {name} --losses {losses} --seed S`"
        if losses in VARIANTS:
            base, options = VARIANTS[losses]
            command = (f"`mlmol train CONFIG --losses {base} --seed S`, CONFIG: system {name}, recipe "
                       + ", ".join(f"{k}: {str(v).lower()}" for k, v in options.items()))
        cells.append([name, f"{NAMES.get(losses, losses)}: {command}", seeds, quality, log_z, forward,
                      (f"{mean_sd([r['ess_fraction'] for r in group], 1, True)} "
                       f"(min {min(r['effective_samples'] for r in group):,.0f} eff.; {len(counted)} ≥ {MIN_EFFECTIVE})"),
                      f"{np.mean([r['energy_evaluations'] for r in group]):,.0f}",
                      f"{mean_sd([r['train_s'] / 60 for r in group], 1)}"])
    table = markdown_table(
        "Training from the energy alone, one PyTorch thread per run on a 2-core machine, some beside another "
        "one-thread job on the other core (`python "
        "benchmarks/energy_only.py`; mean ± sd over seeds). Each row's seeds S are sampled with `mlmol sample "
        "--n N --seed 1000+S` (N = 10,000 for LJ-13, 100,000 otherwise) and `mlmol evaluate`. Modes: GMM-40 "
        "components with a generator sample within 2σ of their mean. Occupancy error: the largest over the 16 "
        "pairs of |reweighted left-well fraction − exact|. ΔF error and log Z error (from the generator's "
        "importance weights): estimate − exact. Forward ESS: from 100,000 exact target samples (seed 2000+S). "
        "TV: total variation of reweighted histograms against the MCMC test split (in brackets: two MCMC "
        "splits, the noise floor). Evaluations: target energy evaluations in training",
        ["system", "training", "seeds", "modes / occupancy / ΔF", "log Z error", "forward ESS", "ESS",
         "evaluations", "train min"], cells, text_columns=2)
    write_results("energy_only", rows, table)


if __name__ == "__main__":
    main()
