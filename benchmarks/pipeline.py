"""Run the documented command-line pipeline (train, sample, evaluate) and time each step."""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from mlmol.config import ENERGY_DEFAULTS
from mlmol.data import atomic_write
from mlmol.experiments.schopmans2025 import schopmans2025

RESULTS = Path(__file__).resolve().parent / "results"
# a peptide reference repeat's configurations: in runs/ (not kept), or with the results (--keep-samples)
REFERENCE_SAMPLES = {"runs": RESULTS.parent.parent / "runs" / "peptide_reference", "kept": RESULTS / "peptide_reference_samples"}
MIN_EFFECTIVE = 100  # effective samples (Kish) a weighted run needs to count towards a bar

MLMOL = [sys.executable, "-m", "mlmol"]


def reference_samples(name: str, seed: int) -> Path:
    """The file of a peptide reference repeat's configurations (benchmarks/peptide_reference.py): the one
    kept with the results if there is one, else the one in runs/ (which may be missing)."""
    kept = REFERENCE_SAMPLES["kept"] / f"{name}_seed{seed}.npz"
    return kept if kept.is_file() else REFERENCE_SAMPLES["runs"] / f"{name}_seed{seed}.npz"


def residue_label(torsion: str, names: dict[str, str]) -> str:
    """A torsion's name with its residue where known: "phi2 (Gly)"."""
    return f"{torsion} ({names[torsion].title()})" if torsion in names else torsion


def run_command(args: list[str]) -> tuple[float, float]:
    """``mlmol ARGS`` in a child process: (wall seconds, peak resident memory in GiB: the largest of the
    child and the descendants it waited for, each process alone, not their sum)."""
    import os
    import tempfile

    start = time.perf_counter()
    print(f"{time.strftime('%H:%M:%S')} mlmol {' '.join(args)}", flush=True)  # its own progress goes to stderr, kept
    with tempfile.TemporaryFile("w+") as stderr:
        child = subprocess.Popen(MLMOL + args, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            stderr.seek(0)
            raise SystemExit(f"command failed: mlmol {' '.join(args)}\n{stderr.read()}")
    wall = time.perf_counter() - start
    print(f"{time.strftime('%H:%M:%S')} done in {wall / 60:.1f} min", flush=True)
    return wall, usage.ru_maxrss / 2**20  # KiB on Linux: GiB of the largest single process


def pipeline(train_args: list[str], out: Path, n: int = 100_000, sample_seed: int = 0, train: bool = True,
             evaluate_args: tuple[str, ...] = ()) -> dict:
    """``mlmol train ... --out OUT``, ``mlmol sample OUT --n N --seed SAMPLE_SEED``, ``mlmol evaluate OUT
    --samples ... EVALUATE_ARGS``; with the target energy evaluations of training (the last
    ``energy_evaluations`` logged) and the largest peak resident memory of the three commands (GiB, of
    one process: :func:`run_command`).

    ``train=False`` samples and evaluates a run that this command already trained in OUT (its training
    time is then the training loop's own clock, the last ``time_s`` of metrics.jsonl)."""
    commands = [["train", *train_args, "--out", str(out)],
                ["sample", str(out), "--n", str(n), "--out", str(out / "samples.npz"), "--seed", str(sample_seed)],
                ["evaluate", str(out), "--samples", str(out / "samples.npz"), *evaluate_args]]
    peaks = []
    if train:
        shutil.rmtree(out, ignore_errors=True)
        t_train, peak = run_command(commands[0])
        peaks.append(peak)
    (t_sample, peak_sample), (_, peak_evaluate) = (run_command(command) for command in commands[1:])
    peaks += [peak_sample, peak_evaluate]
    metrics = json.loads((out / "metrics.json").read_text())
    data_s = None
    if (out / "data.npz").is_file():  # runs from the energy alone have none
        with np.load(out / "data.npz") as data:
            data_s = float(data["seconds"]) if "seconds" in data else None
    # as the run's config.yaml holds it, defaults included (the OpenMM engine ignores the batched engine's options)
    config = yaml.safe_load((out / "config.yaml").read_text())
    data_config = config.get("data")
    logged = logged_records(out)
    evaluations = logged[-1].get("energy_evaluations") if logged else None
    if not train:
        t_train = logged[-1]["time_s"]
    return {"command": "mlmol train " + " ".join(train_args) + f" --out {out}", "data_config": data_config,
            "recipe": config.get("recipe"), "code": code_version(),
            "train_s": t_train, "data_s": data_s, "sample_s": t_sample, "metrics": metrics,
            "energy_evaluations": evaluations, "stages": stages(logged), "peak_memory_gib": max(peaks),
            "commands": ["mlmol " + " ".join(c) for c in commands]}


def trans_system(molecule, compile: bool = True):
    """The references' system: ``molecule`` on the torch force field (float32) with every peptide bond held
    trans by the flat-bottom restraint, and its masses with hydrogens at 3.024 amu (``[N]``)."""
    import torch

    from mlmol.systems.molecules import peptide_bonds
    from mlmol.systems.restraints import FlatBottomRestrained

    system = FlatBottomRestrained(molecule.evaluated_in(None, compile=compile), peptide_bonds(molecule.topology))
    return system, torch.tensor(molecule.repartitioned_masses(3.024), dtype=torch.float32)


def trans_exchange(molecule, start, ladder, args, seed: int, compile: bool = True):
    """Parallel tempering for a reference: ``args.chains`` copies of ``ladder`` started at ``start`` ``[1, 3N]``,
    BAOAB on the torch force field (float32) with hydrogens at 3.024 amu (the configurational distribution
    is unchanged), ``args.timestep_fs``, friction 1/ps, neighbour exchanges every 10 steps, every peptide
    bond held trans by the flat-bottom restraint; equilibrated for ``args.equilibration_ps``. Returns the
    :class:`~mlmol.samplers.exchange.ReplicaExchange`."""
    from mlmol.samplers.exchange import ReplicaExchange

    count = len(ladder.scales)
    x = start.repeat(args.chains * count, 1).reshape(args.chains, count, -1)
    system, masses = trans_system(molecule, compile)
    rex = ReplicaExchange(system, x, ladder, timestep=args.timestep_fs / 1000, friction=1.0, masses=masses,
                          seed=seed, exchange_every=10)
    rex.step(int(args.equilibration_ps * round(1000 / args.timestep_fs)))
    return rex


def peptide_options(parser, name_help: str, required: bool = True) -> None:
    """The options that name a peptide system, shared by the peptide scripts: ``--pdb``, ``--name``,
    ``--forcefield``, ``--implicit-solvent`` (default obc1) and ``--temperature`` (default 310 K)."""
    parser.add_argument("--pdb", required=required, help="the peptide, hydrogens included (e.g. from mlmol build)")
    parser.add_argument("--name", required=required, help=name_help)
    parser.add_argument("--forcefield", nargs="+", default=["amber14-all.xml"])
    parser.add_argument("--implicit-solvent", default="obc1")
    parser.add_argument("--temperature", type=float, default=310.0, help="the target temperature (K)")


def exchange_options(parser, chains: int, equilibration_ps: float) -> None:
    """The options the parallel-tempering reference scripts share: seeds, chains, run lengths (ps), frame
    interval (steps), time step (fs), chain-bootstrap resamples and threads."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--chains", type=int, default=chains)
    parser.add_argument("--equilibration-ps", type=float, default=equilibration_ps)
    parser.add_argument("--production-ps", type=float, default=200.0)
    parser.add_argument("--interval", type=int, default=333, help="steps between frames")
    parser.add_argument("--timestep-fs", type=float, default=3.0)
    parser.add_argument("--bootstrap", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)


def code_version() -> str:
    """The commit the benchmark runs on, with "+changes" when the work tree differs from it (so a row
    can be traced to its code); "unknown" outside a git checkout."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=RESULTS.parent, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return git("rev-parse", "HEAD") + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def mean_sd(values: list[float], digits: int, percent: bool = False, sign: bool = False) -> str:
    """Mean ± sd (ddof 1) of ``values`` with ``digits`` decimals (just the mean for one value); ``percent``
    writes fractions as percentages, ``sign`` gives the mean its sign."""
    v = np.array(values, dtype=float) * (100 if percent else 1)
    sd = f" ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else ""
    return f"{v.mean():{'+' if sign else ''}.{digits}f}{sd}" + ("%" if percent else "")


def pool_size(name: str) -> int:
    """The samples per pool of a system's built-in temperature-annealing recipe."""
    default = inspect.signature(schopmans2025).parameters["pool"].default
    return ENERGY_DEFAULTS.get(name, {}).get("ta", {}).get("pool", default)


def logged_records(out: Path) -> list[dict]:
    """The records of a run's metrics.jsonl."""
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def stages(records: list[dict]) -> list[dict]:
    """Each training stage of a run, from its metrics.jsonl records (:func:`logged_records`): name, steps,
    seconds, target energy evaluations and, for an annealing rung, the medians of its pools' metrics
    (:class:`mlmol.annealing.ReweightedPool`: ESS fraction, the overlap between the flow and the rung it is
    reweighted to; where logged, the weight power and the first state's probability)."""
    summary: list[dict] = []
    last = {"step": 0, "time_s": 0.0, "energy_evaluations": 0}
    for r in records:
        if not summary or summary[-1]["stage"] != r["stage"]:
            summary.append({"stage": r["stage"], "start": last, **{k: [] for k in POOL_METRICS}})
        summary[-1]["end"] = r
        for k in POOL_METRICS:
            if r.get(k) is not None:
                summary[-1][k].append(r[k])
        last = r
    return [{"stage": s["stage"], "steps": s["end"]["step"] - s["start"]["step"],
             "seconds": s["end"]["time_s"] - s["start"]["time_s"],
             "evaluations": s["end"]["energy_evaluations"] - s["start"]["energy_evaluations"],
             **{k: float(np.median(s[k])) if s[k] else None for k in POOL_METRICS if k == "pool_ess" or s[k]}}
            for s in summary]


POOL_METRICS = ("pool_ess", "pool_power", "pool_state_flow", "pool_state", "pool_state_fit")


def langevin_context(xml: str, masses: list[float], positions: np.ndarray, platform: str, timestep_fs: float,
                     seed: int, threads: int = 1, temperature: float = 300.0, friction: float = 1.0):
    """An OpenMM context of a serialized system with these masses (amu) under its LangevinMiddleIntegrator
    (kelvin, 1/ps, fs), on ``platform`` (``threads`` on the CPU platform), at ``positions`` (nm, ``[3N]``)
    with velocities drawn at ``temperature``; ``seed`` seeds the noise and the velocities. Returns
    (context, integrator)."""
    import openmm

    system = openmm.XmlSerializer.deserialize(xml)
    for i, mass in enumerate(masses):
        system.setParticleMass(i, mass)
    integrator = openmm.LangevinMiddleIntegrator(temperature, friction, timestep_fs / 1000)
    integrator.setRandomNumberSeed(seed)
    properties = {"Threads": str(threads)} if platform == "CPU" else {}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), properties)
    context.setPositions(positions.reshape(-1, 3))
    context.setVelocitiesToTemperature(temperature, seed)
    return context, integrator


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def markdown_table(caption: str, headers: list[str], cells: list[list[str]], text_columns: int = 1) -> list[str]:
    """Lines of a Markdown table under a caption; the first ``text_columns`` left-aligned, the rest right."""
    align = ["---"] * text_columns + ["---:"] * (len(headers) - text_columns)
    return [caption, "", "| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|",
            *("| " + " | ".join(row) + " |" for row in cells)]


def beside_marks(rows: list[dict]) -> tuple[dict[str, str], list[str]]:
    """A footnote mark for each distinct ``beside`` text of ``rows`` (what else ran on the machine during
    a row, so its times are not the time alone) and the footnotes; a text noted after the run says so."""
    texts = sorted({r["beside"] for r in rows if r.get("beside")})
    marks = {text: "†‡§¶#"[i] if i < 5 else f"[{i + 1}]" for i, text in enumerate(texts)}
    later = {r["beside"] for r in rows if r.get("beside_noted_after_run")}
    return marks, [f"{marks[t]} run beside {t} on the same cores: not the time alone"
                   + (" (noted after the run)." if t in later else ".") for t in texts]


def write_results(name: str, rows: list[dict], table: list[str]) -> None:
    """benchmarks/results/NAME.json (the rows) and NAME.md (the table), both atomically; prints the table."""
    atomic_write(RESULTS / f"{name}.json", json.dumps(rows, indent=2))
    atomic_write(RESULTS / f"{name}.md", "\n".join(table) + "\n")
    print("\n".join(table))


def read_results(name: str) -> list[dict]:
    """The rows of benchmarks/results/NAME.json, as :func:`write_results` stored them."""
    return json.loads((RESULTS / f"{name}.json").read_text())


def combine_repeats(values: np.ndarray, stderrs: np.ndarray) -> tuple[float, float, float, float, float]:
    """Mean of independent repeats and its error: the larger of the repeats' standard error sd/√n and
    MBAR's error of the mean √Σσ²/n (MBAR's alone for one repeat); returns (mean, error, sd, repeat
    standard error, MBAR's error of the mean)."""
    n = len(values)
    sd = float(values.std(ddof=1)) if n > 1 else float("nan")
    repeats, mbar = sd / np.sqrt(n), float(np.sqrt((stderrs**2).sum()) / n)
    return float(values.mean()), float(np.nanmax([repeats, mbar])), sd, float(repeats), mbar


def save_figure(fig, name: str, dpi: int = 110) -> None:
    """benchmarks/results/NAME.png, written atomically (:func:`atomic_write`), and closes the figure."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    atomic_write(RESULTS / f"{name}.png", buffer.getvalue())
    plt.close(fig)
