"""Contracts of the benchmark scripts that the README's numbers rest on: equal-core speed
baselines, the reference's error bar, disjoint design and held-out seeds."""

from __future__ import annotations

import importlib
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """Import a benchmark script by name (they import their sibling ``pipeline``)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(BENCHMARKS))


def _row(method: str, dtype: str, batch: int, rate: float, system: str = "alanine-dipeptide-implicit") -> dict:
    return {"system": system, "method": method, "dtype": dtype, "batch": batch, "configurations_per_s": rate,
            "median_round": rate, "rounds": [rate], "first_call_s": None, "threads": 2, "device": "cpu",
            "device_name": "CPU", "command": "python benchmarks/forcefield_speed.py", "openmm": "x", "torch": "y"}


def test_the_speed_baseline_is_the_fastest_openmm_row_and_the_goal_is_judged_against_it(bench, tmp_path):
    speed = bench("forcefield_speed")
    rows = [_row("OpenMM context loop (Reference)", "float64", 2000, 20_000.0),
            _row("OpenMM context loop (CPU, 2 threads)", "mixed", 2000, 2_000.0),
            _row("OpenMM bridge, 2 workers (Reference)", "float64", 2000, 28_000.0),
            _row("torch.compile", "float32", 4096, 250_000.0), _row("torch.compile", "float64", 4096, 100_000.0)]
    fastest = speed.baselines(rows)
    assert fastest["alanine-dipeptide-implicit"]["method"].startswith("OpenMM bridge")
    for r in rows:
        r["vs_fastest_openmm"] = r["configurations_per_s"] / 28_000.0
    table = "\n".join(speed.summary(rows, fastest, fair=True))
    assert "250,000 (8.93×; 8.93×)" in table and "10×: ✗" in table  # 8.9× against the bridge misses 10×
    rows[3]["configurations_per_s"], rows[3]["vs_fastest_openmm"] = 300_000.0, 300_000 / 28_000
    assert "10×: ✗" in "\n".join(speed.summary(rows, fastest, fair=True))  # its median round still misses
    rows[3]["median_round"] = 300_000.0
    assert "10×: ✓" in "\n".join(speed.summary(rows, fastest, fair=True))


def test_a_gpu_run_without_openmm_cuda_gets_no_ratios(bench, monkeypatch, tmp_path):
    speed = bench("forcefield_speed")
    monkeypatch.setattr(speed, "RESULTS", tmp_path)
    monkeypatch.setattr(speed, "write_results", lambda name, rows, table: (tmp_path / f"{name}.md").write_text(
        "\n".join(table)))
    rows = [dict(_row("OpenMM bridge, 2 workers (Reference)", "float64", 2000, 20_000.0), device="cuda"),
            dict(_row("torch.compile", "float32", 4096, 1_000_000.0), device="cuda")]
    speed.render(rows)
    assert "vs_fastest_openmm" not in rows[1] and "no ratio" in (tmp_path / "forcefield_speed_cuda.md").read_text()
    assert "×" not in (tmp_path / "forcefield_speed_cuda_summary.md").read_text().split("\n", 2)[2]


def test_the_reference_error_is_the_larger_of_the_repeat_spread_and_mbar(bench):
    combine = bench("pipeline").combine_repeats  # the umbrella references of alanine dipeptide and the dimer
    mean, error, sd, repeats, mbar = combine(np.array([3.2, 3.4, 3.7]), np.array([0.12, 0.12, 0.12]))
    assert np.isclose(mean, 3.4333, atol=1e-4) and np.isclose(repeats, sd / np.sqrt(3))
    assert np.isclose(mbar, 0.12 / np.sqrt(3)) and error == max(repeats, mbar) == repeats
    _, error, *_ = combine(np.array([3.88, 3.89, 3.90]), np.array([0.13, 0.13, 0.13]))
    assert np.isclose(error, 0.13 / np.sqrt(3))  # agreeing repeats: MBAR's error
    _, error, sd, *_ = combine(np.array([3.9]), np.array([0.13]))
    assert np.isnan(sd) and error == 0.13  # one repeat: MBAR's error, not NaN


def test_the_held_out_seeds_of_the_gradient_benchmark_were_used_for_nothing_else(bench):
    seeds = bench("gradient_estimators").SEEDS
    sets = {name: set(group.values()) for name, group in seeds.items()}
    for (a, first), (b, second) in combinations(sets.items(), 2):
        assert not first & second, (a, b, first & second)
    assert len(sets["test"]) == 4  # a new stream for each budget and each kind of noise


def test_every_random_stream_of_the_gradient_benchmark_is_seeded_from_its_seed_table():
    """No literal seed in the script: each ``manual_seed``/``default_rng`` takes a value that comes
    from ``SEEDS`` (directly or through a variable), so the table the README quotes is complete."""
    import ast

    tree = ast.parse((BENCHMARKS / "gradient_estimators.py").read_text())
    seeded = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("manual_seed", "default_rng", "seed")]
    assert len(seeded) >= 8
    literal = [ast.unparse(node) for node in seeded
               if any(isinstance(n, ast.Constant) and type(n.value) is int for n in ast.walk(node))]
    assert not literal, literal


def test_every_openmm_row_of_the_speed_benchmark_gets_the_cores_the_torch_rows_get(bench, monkeypatch):
    """``--threads T`` (torch's threads): the CPU platform runs T threads and the bridge T Reference
    workers, so the fastest of them is OpenMM at equal cores; the Reference loop runs on one."""
    from argparse import Namespace

    speed = bench("forcefield_speed")
    used = {}
    monkeypatch.setattr(speed, "openmm_loop", lambda system, x, platform, threads: used.setdefault(platform, threads))
    monkeypatch.setattr(speed, "bridge_call", lambda system, x, workers: used.setdefault("bridge", workers))
    args = Namespace(openmm_configurations=4, device="cpu", threads=3, batches=[], no_compile=True)
    monkeypatch.setattr(speed, "ForceField", lambda *a, **k: torch.nn.Identity())
    rows = speed.candidates(None, np.zeros((8, 6)), args)
    for method, *_, make, _ in rows:
        if method.startswith("OpenMM"):
            make()
    assert used == {"Reference": 3, "CPU": 3, "bridge": 3}  # a Reference context ignores its threads
    assert {method for method, *_ in rows} == {"OpenMM context loop (Reference)",
                                               "OpenMM context loop (CPU, 3 threads)",
                                               "OpenMM bridge, 3 workers (Reference)"}


def test_stage_summaries_take_each_rung_s_pool_metrics_and_the_rung_table_stars_thin_pools(bench):
    """pipeline.stages splits metrics.jsonl records at stage changes (steps, seconds, evaluations as
    differences; the pool metrics' medians), and the alanine-dipeptide rung table marks a weighted share
    that rests on fewer than 100 effective samples."""
    pipeline = bench("pipeline")
    records = [{"stage": "kl at 4 T", "step": 10, "time_s": 1.0, "energy_evaluations": 100},
               {"stage": "kl at 4 T", "step": 20, "time_s": 2.0, "energy_evaluations": 200},
               {"stage": "rml at 2 T", "step": 30, "time_s": 5.0, "energy_evaluations": 1200, "pool_ess": 1e-4,
                "pool_power": 0.5, "pool_state": 0.2, "pool_state_fit": 0.1, "pool_state_flow": 0.05},
               {"stage": "rml at 2 T", "step": 40, "time_s": 6.0, "energy_evaluations": 1200, "pool_ess": 3e-4,
                "pool_power": 0.7, "pool_state": 0.4, "pool_state_fit": 0.3, "pool_state_flow": 0.05}]
    kl, rung = pipeline.stages(records)
    assert (kl["steps"], kl["seconds"], kl["evaluations"], kl["pool_ess"]) == (20, 2.0, 200, None)
    assert (rung["steps"], rung["seconds"], rung["evaluations"]) == (20, 4.0, 1000)
    assert rung["pool_ess"] == pytest.approx(2e-4) and rung["pool_power"] == pytest.approx(0.6)
    assert rung["pool_state"] == pytest.approx(0.3) and "pool_power" not in kl
    ala2 = bench("ala2_energy_only")
    thin = {"pool_ess": 1e-4, "pool_state": 0.05, "pool_state_fit": 0.02}  # 50 effective samples of 500,000
    assert ala2._pool_cell("pool_state", thin, 500_000).endswith("*")
    assert not ala2._pool_cell("pool_state_fit", thin, 500_000).endswith("*")  # the floor lifts the fitted weights
    assert not ala2._pool_cell("pool_state", {**thin, "pool_ess": 1e-3}, 500_000).endswith("*")  # 500
    assert ala2._rung_kelvin({"high": 4.0, "temperatures": 10, "kl_fraction": 0.5})[0] == "1029 K"


def test_a_peptide_row_meets_its_bars_only_on_enough_effective_samples_and_within_two_hours(bench):
    """peptide_bg.judged: a row that meets every bar; the same row with 99 effective samples in one φ > 0
    basin, with its ΔF 0.31 kT off, with a reweighted W2 over twice the floor at its ESS, or over two hours
    of data, training and sampling, misses exactly that bar."""
    judged = bench("peptide_bg").judged
    reference = {"residues": {"phi2": {"delta_f": 3.8, "stderr": 0.1}}}
    w2 = {"reweighted": 0.5, "floor_reweighted": 0.3, "floor": 0.28, "raw": 0.6}

    def row(value=3.9, effective=(150, 9000), torus=w2, hours=1.5, ess=0.06, wrong=0.0) -> dict:
        metrics = {"ess_fraction": ess, "ess": ess * 1e6, "wrong_handed_fraction": wrong,
                   "delta_f_residues": {"phi2": {"value": value, "stderr": 0.05, "effective_samples": list(effective)}},
                   "reference": {"torus_w2": torus, "energy_w2": w2, "tica_w2": w2}}
        return {"metrics": metrics, "train_s": hours * 3600 - 300, "sample_s": 300}

    assert judged(row(), reference)["meets"]
    assert judged(row(torus={**w2, "reweighted": 0.58}), reference)["meets"]  # 2× the floor at its ESS, not the floor
    assert judged({**row(hours=3.9), "hours": 4.0}, reference)["meets"]  # a row's own time bar (hexa-alanine: 4 h)
    assert not judged({**row(hours=4.1), "hours": 4.0}, reference)["checks"]["time"]
    misses = {name: judged(r, reference)["checks"] for name, r in {
        "delta_f": row(effective=(99, 9000)), "delta_f ": row(value=3.8 + 0.31), "delta_f  ": row(value=3.8 - 0.31),
        "torus_w2": row(torus={**w2, "reweighted": 0.61}), "time": row(hours=2.01), "ess": row(ess=0.049),
        "wrong_handed": row(wrong=0.01)}.items()}
    for name, checks in misses.items():
        assert [k for k, ok in checks.items() if not ok] == [name.strip()]
    # proline: no φ > 0 basin in the reference; a generator with none either misses nothing, one with some does
    proline = {"residues": {**reference["residues"], "phi3": {"unavailable": "1 of 1 repeats lack a basin"}}}
    none, some = row(), row()
    none["metrics"]["delta_f_residues"]["phi3"] = {"unavailable": "no sample", "effective_samples": [0.0, 9000]}
    some["metrics"]["delta_f_residues"]["phi3"] = {"value": 9.0, "stderr": 1.0, "effective_samples": [2.0, 9000]}
    assert judged(none, proline)["meets"] and not judged(some, proline)["checks"]["delta_f"]


def test_a_peptide_table_averages_test_seeds_only_and_marks_rows_judged_against_fewer_repeats(bench):
    """peptide_bg.table: a peptide's design seed is shown but left out of the mean and the verdict (another
    peptide's seed 0 is a test seed); a row whose
    W2 were taken against fewer reference repeats than the reference now holds is marked."""
    peptide_bg = bench("peptide_bg")
    reference = {"residues": {"phi2": {"delta_f": 3.8, "stderr": 0.1}}, "repeats": 3, "command": "ref"}
    w2 = {"reweighted": 0.5, "floor_reweighted": 0.3, "floor": 0.28, "raw": 0.6}

    def row(seed: int, value: float, ess: float, repeats: list[int]) -> dict:
        metrics = {"ess_fraction": ess, "ess": ess * 1e6, "wrong_handed_fraction": 0.0,
                   "delta_f_residues": {"phi2": {"value": value, "stderr": 0.05, "effective_samples": [150, 9000]}},
                   "reference": {"torus_w2": w2, "energy_w2": w2, "tica_w2": w2}}
        r = {"seed": seed, "metrics": metrics, "data_s": 600, "train_s": 3000, "sample_s": 300, "samples": 10**6,
             "peak_memory_gib": 5.0, "config": "c.yaml", "benchmark_command": f"b.py --seed {seed}",
             "data_config": {"n": 10, "replicas": 2}, "recipe": {"name": "noe2019", "steps": 5},
             "reference_repeats": repeats}
        return {**r, "judged": peptide_bg.judged(r, reference)}

    rows = [row(0, 9.0, 0.5, [0, 1, 2]), row(1, 3.9, 0.10, [0, 1, 2]), row(2, 3.4, 0.06, [0, 1])]
    text = "\n".join(peptide_bg.table("ala3", rows, reference, [0, 1, 2]))  # Ace-Ala3-Nme: seeds 0, 100 designed
    mean = next(line for line in text.splitlines() if line.startswith("| mean"))
    assert "test seeds 1, 2" in mean and "8.0 ± 2.8%" in mean and "-0.150 ± 0.354" in mean  # seed 0 left out
    assert "Every bar met by 1 of 2 test seeds (2 miss)." in text
    assert "| 2* |" in text and "seed 2: 0, 1" in text and "| 1 |" in text and "| 0 (design) |" in text
    other = "\n".join(peptide_bg.table("ala6", rows, reference, [0, 1, 2]))  # no design runs: every seed tests
    assert "(design)" not in other and "test seeds 0, 1, 2" in other and "1 of 3 test seeds" in other
