"""The ``mlmol`` command line: parse, call library functions, print."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

DESCRIPTION = """\
mlmol: Boltzmann generators and friends for molecular simulation.

A typical session:
  mlmol systems                                    list built-in systems
  mlmol train double-well --out runs/dw --seed 0   train a Boltzmann generator
  mlmol sample runs/dw --n 100000 --out s.npz      draw reweightable samples
  mlmol evaluate runs/dw --samples s.npz           ESS, ΔF and profiles vs exact
  mlmol report runs/dw                             runs/dw/report.html with figures
  mlmol simulate alanine-dipeptide --out md.dcd --frames 10000   reference MD (OpenMM)
  mlmol vmc He --out runs/he                       FermiNet energy of helium by VMC
  mlmol operator burgers --out runs/burgers        Fourier neural operator on Burgers' equation

Every run directory (Boltzmann generator, VMC, operator) holds config.yaml, checkpoint.pt,
metrics.jsonl and metrics.json; mlmol train --resume, evaluate and report work on all of them.

Your own energy: a Python function of a [batch, D] torch tensor returning reduced
energies (units of kT) of shape [batch]:
  mlmol train --energy my_energy.py:u --dim 2 --out runs/mine
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) that point to --help, like mlmol's own errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


RUN_HELP = "a run directory written by mlmol train, mlmol vmc or mlmol operator"
SEED_HELP = "random seed (default 0)"
THREADS_HELP = "PyTorch CPU threads (default 1)"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mlmol", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("systems", help="list built-in systems, molecules, VMC systems and operator problems",
                   description="List what mlmol train, simulate, vmc and operator can run by name.")

    train = sub.add_parser("train", help="train a run (Boltzmann generator, VMC, operator) into a run directory",
                           description="Train a run. Writes RUN/config.yaml, checkpoint.pt and metrics.jsonl (and "
                                       "a Boltzmann generator's data.npz). A VMC system (H, He, Li, H2, LiH) or an "
                                       "operator problem (burgers, darcy, ...) trains with its defaults; mlmol vmc "
                                       "and mlmol operator take their options.")
    train.add_argument("target", nargs="?", help="a built-in system, molecule, VMC system or operator problem, "
                                                 "or a CONFIG.yaml (e.g. another run's)")
    train.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    train.add_argument("--energy", metavar="FILE.py:FUNCTION", help="your own energy function")
    train.add_argument("--dim", type=int, help="number of coordinates (with --energy)")
    train.add_argument("--pdb", help="your own molecule: a PDB file (OpenMM builds the system)")
    train.add_argument("--forcefield", nargs="+", help="OpenMM force-field files for --pdb (default amber14-all.xml)")
    train.add_argument("--implicit-solvent", help="obc1, obc2, gbn, gbn2, hct or an XML file (with --pdb)")
    train.add_argument("--add-hydrogens", action=argparse.BooleanOptionalAction, default=None,
                       help="with --pdb: add missing hydrogens with OpenMM's Modeller (default; a notice says how "
                            "many), or refuse a PDB without them")
    train.add_argument("--temperature", type=float, metavar="KELVIN",
                       help="molecules: the temperature of the Boltzmann distribution (default 300)")
    train.add_argument("--seed", type=int, help=SEED_HELP)
    train.add_argument("--steps", type=int, help="total optimisation steps (default from the recipe)")
    train.add_argument("--losses", help="with data: ml, ml+kl or ml+kl+rc (default: the system's recipe, e.g. ml+kl+rc "
                                        "for toy systems and ml for molecules; RUN/config.yaml shows it); from the "
                                        "energy alone, no data made: fab (α = 2 divergence with AIS and a replay "
                                        "buffer), kl (reverse KL) or ta (temperature annealing)")
    train.add_argument("--flow", dest="flow_kind", choices=["realnvp", "spline", "equivariant"],
                       help="flow family (equivariant: identical particles, e.g. dw4, lj13)")
    train.add_argument("--energy-backend", choices=["torch", "openmm"],
                       help="molecules: torch (native batched force field; the default where it supports every "
                            "force) or openmm (the OpenMM bridge)")
    train.add_argument("--data-engine", choices=["torch", "openmm"],
                       help="molecules: MD engine of the training data: torch (many replicas stepped together on the "
                            "native force field; the default where it supports the molecule) or openmm")
    train.add_argument("--device", help="cpu (default) or cuda")
    train.add_argument("--threads", type=int, help=THREADS_HELP)
    train.add_argument("--resume", action="store_true", help="continue RUN from its checkpoint")

    sample = sub.add_parser("sample", help="draw reweightable samples from a trained run",
                            description="Draw samples from a Boltzmann generator's flow with their log weights "
                                        "(log w = −u(x) − log q(x)) for reweighting to the Boltzmann distribution.")
    sample.add_argument("run", metavar="RUN", help=RUN_HELP)
    sample.add_argument("--n", type=int, help="number of samples (default: the run's evaluate.n, 100000 for most)")
    sample.add_argument("--out", required=True, metavar="FILE.npz",
                        help="samples file to write: x, log_weights, energy, kT (and a molecule's topology)")
    sample.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    sample.add_argument("--tau", type=float, default=1.0,
                        help="latent temperature factor τ: samples the system at τ·kT (default 1)")

    evaluate = sub.add_parser("evaluate", help="evaluate a run (BG: ESS, ΔF, profiles; VMC: energy; operator: test "
                                               "errors); writes RUN/metrics.json",
                              description="Evaluate a run of any kind and write RUN/metrics.json: a Boltzmann "
                                          "generator's ESS, ΔF and profiles (against exact references where there "
                                          "are some), a VMC energy with its blocking error, an operator's test "
                                          "errors.")
    evaluate.add_argument("run", metavar="RUN", help=RUN_HELP)
    evaluate.add_argument("--n", type=int, help="number of fresh samples (default: the run's evaluate.n, 100000 "
                                               "for most)")
    evaluate.add_argument("--samples", metavar="FILE.npz", help="evaluate these samples instead of fresh ones")
    evaluate.add_argument("--seed", type=int, default=0, help=SEED_HELP + " of the fresh samples")
    evaluate.add_argument("--reference", metavar="FILE.npz",
                          help="molecules: reference configurations (x [frames, 3N] nm; with chains C, C "
                               "time-ordered trajectories stored frame-major, e.g. from benchmarks/peptide_reference.py);"
                               " adds energy-W2, torus-W2 and TICA-W2 (TICA fitted on the reference), raw, reweighted "
                               "and the reference's own noise floor")

    build = sub.add_parser("build", help="build a peptide from its sequence into a PDB file",
                           description="Build a peptide from one-letter codes: ideal geometry (PeptideBuilder), L "
                                       "amino acids, acetyl/N-methylamide caps or charged termini, hydrogens for the "
                                       "force field (OpenMM's Modeller), minimised in vacuum. Writes OUT atomically; "
                                       "mlmol train --pdb OUT and mlmol simulate --pdb OUT take it.")
    build.add_argument("sequence", help="one-letter codes, N to C terminus (e.g. AAA: with caps Ace-Ala3-Nme)")
    build.add_argument("--out", required=True, metavar="PEPTIDE.pdb", help="PDB file to write")
    build.add_argument("--caps", choices=["ace-nme", "none"], default="ace-nme",
                       help="ace-nme (default: acetyl and N-methylamide caps) or none (charged termini)")
    build.add_argument("--forcefield", nargs="+", default=["amber14-all.xml"],
                       help="OpenMM force-field files whose hydrogens are added (default amber14-all.xml)")
    build.add_argument("--conformation", choices=["extended", "ppii", "helix"], default="extended",
                       help="the starting backbone before minimisation (default extended)")

    simulate = sub.add_parser("simulate", help="Langevin MD of a molecule into a trajectory file",
                              description="Langevin MD (OpenMM) of a built-in molecule or a PDB file. Writes "
                                          "the trajectory (format from the suffix: .dcd, .h5, .xtc, ...) and "
                                          "OUT.chk atomically every 500 frames; --resume continues it.")
    simulate.add_argument("molecule", nargs="?", help="alanine-dipeptide or alanine-dipeptide-implicit")
    simulate.add_argument("--pdb", help="your own molecule (instead of a built-in one)")
    simulate.add_argument("--forcefield", nargs="+", default=["amber14-all.xml"], help="OpenMM force-field files")
    simulate.add_argument("--implicit-solvent", help="obc1, obc2, gbn, gbn2, hct or an XML file")
    simulate.add_argument("--add-hydrogens", action=argparse.BooleanOptionalAction, default=True,
                          help="with --pdb: add missing hydrogens (default; a notice says how many), or refuse")
    simulate.add_argument("--temperature", type=float, default=300.0, help="kelvin (default 300)")
    simulate.add_argument("--out", required=True, metavar="TRAJ.dcd", help="trajectory file to write (format from "
                                                                             "the suffix)")
    simulate.add_argument("--frames", type=int, required=True, help="total number of frames")
    simulate.add_argument("--interval", type=int, default=250, help="MD steps between frames (default 250)")
    simulate.add_argument("--timestep-fs", type=float, default=1.0, help="femtoseconds (default 1; no constraints)")
    simulate.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    simulate.add_argument("--resume", action="store_true", help="continue OUT from OUT.chk")
    simulate.add_argument("--engine", choices=["openmm", "torch"], default="openmm",
                          help="openmm (default: one trajectory, OpenMM's LangevinMiddle) or torch (many replicas "
                               "stepped together on the native force field, BAOAB)")
    simulate.add_argument("--replicas", type=int, default=1,
                          help="torch engine: independent copies stepped together (default 1); the trajectory holds "
                               "them time-major (frame t × replicas + r)")
    simulate.add_argument("--temperatures", metavar="LOW:HIGH:COUNT",
                          help="torch engine: parallel tempering over COUNT temperatures from LOW to HIGH kelvin "
                               "(geometric); the trajectory holds LOW's frames")
    simulate.add_argument("--hydrogen-mass", type=float, metavar="AMU",
                          help="torch engine: hydrogen mass repartitioning (e.g. 3.024 for 4 fs steps); the "
                               "configurations' distribution is unchanged")
    simulate.add_argument("--precision", choices=["float32", "float64"],
                          help="torch engine: arithmetic of the dynamics and force field (default float32)")
    simulate.add_argument("--compile", action="store_true",
                          help="torch engine: evaluate the force field through torch.compile (3-4x faster for "
                               "hundreds of replicas, after about a minute of compilation)")

    vmc = sub.add_parser("vmc", help="variational Monte Carlo of an atom or molecule (FermiNet)",
                         description="Optimise a neural wavefunction by VMC, then print its energy with the "
                                     "blocking standard error. Writes RUN/config.yaml, checkpoint.pt, "
                                     "metrics.jsonl and metrics.json.")
    vmc.add_argument("system", nargs="?", help="H, He, Li, H2 (R = 1.4 bohr) or LiH (R = 3.015 bohr)")
    vmc.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    vmc.add_argument("--ansatz", choices=["ferminet", "slater-jastrow"], help="the wavefunction (default ferminet)")
    vmc.add_argument("--steps", type=int, help="optimisation steps (default 5000)")
    vmc.add_argument("--walkers", type=int, help="Metropolis walkers (default 512)")
    vmc.add_argument("--optimizer", choices=["adam", "natural-gradient"],
                     help="adam (default) or natural-gradient (stochastic reconfiguration in sample space)")
    vmc.add_argument("--lr", type=float, help="learning rate (default 1e-3 for adam, 0.05 for natural-gradient; "
                     "decayed as lr / (1 + t / 1000))")
    vmc.add_argument("--eval-steps", type=int, help="evaluation sweeps after training (default 200)")
    vmc.add_argument("--seed", type=int, help=SEED_HELP)
    vmc.add_argument("--pretrain", type=int, metavar="STEPS", dest="pretrain_steps",
                     help="pre-train the orbitals to Hartree–Fock for STEPS steps first (needs pyscf; default 0)")
    vmc.add_argument("--basis", help="Gaussian basis for Hartree–Fock pre-training (default cc-pvdz)")
    vmc.add_argument("--max-minutes", type=float, help="stop training after this many minutes of wall time")
    vmc.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    vmc.add_argument("--resume", action="store_true", help="continue RUN from its checkpoint")

    operator = sub.add_parser("operator", help="train a Fourier neural operator on Burgers, Darcy or Smoluchowski data",
                              description="Make the data (or reuse --data), train an FNO watching its validation "
                                          "pairs, then print its relative L2 error on held-out test pairs (drawn "
                                          "from their own random stream, evaluated once at the end). Writes "
                                          "RUN/config.yaml, data.npz (unless --data), checkpoint.pt, metrics.jsonl "
                                          "(validation error as training goes), metrics.json (validation and test "
                                          "errors, reference predictors) and predictions.png.")
    operator.add_argument("problem", nargs="?", help="burgers (ν = 0.1, the paper's text), burgers-shock (ν = 1/1000, "
                          "the paper's released generator), darcy or smoluchowski")
    operator.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    operator.add_argument("--data", metavar="FILE.npz", help="shared data file: reused if it exists, written if not "
                          "(a file from before the validation split gets its test pairs added)")
    operator.add_argument("--train", type=int, help="training pairs (default 1000)")
    operator.add_argument("--validation", type=int, help="validation pairs, watched during training (default 100)")
    operator.add_argument("--test", type=int, help="held-out test pairs, evaluated once after training (default 200)")
    operator.add_argument("--resolution", type=int, help="training grid points per axis (burgers 1024, darcy 85)")
    operator.add_argument("--eval-resolutions", type=int, nargs="+", metavar="N",
                          help="also evaluate at these resolutions (zero-shot super-resolution), e.g. 4096")
    operator.add_argument("--epochs", type=int, help="epochs at the training resolution (burgers 80, burgers-shock 50, "
                          "darcy 20, smoluchowski 100)")
    operator.add_argument("--coarse-epochs", type=int, help="epochs first at a coarser resolution (darcy 120 at half, "
                          "burgers-shock 450 at a quarter)")
    operator.add_argument("--batch-size", type=int, help="training pairs per step (default 20)")
    operator.add_argument("--lr", type=float, help="initial Adam learning rate (default 1e-3; cosine to 0)")
    operator.add_argument("--modes", type=int, help="Fourier modes per axis (default 16 in 1D, 12 in 2D)")
    operator.add_argument("--width", type=int, help="channels (default 64 in 1D, 32 in 2D)")
    operator.add_argument("--seed", type=int, help=SEED_HELP)
    operator.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    operator.add_argument("--resume", action="store_true", help="continue RUN from its checkpoint")

    report = sub.add_parser("report", help="write RUN/report.html: the metrics mlmol evaluate wrote, with figures",
                            description="Write RUN/report.html, one self-contained page: the evaluation in "
                                        "RUN/metrics.json (never rewritten) and the figures of the run's kind.")
    report.add_argument("run", metavar="RUN", help=RUN_HELP)
    report.add_argument("--samples", metavar="FILE.npz",
                        help="Boltzmann generators: draw the figures from these samples (default: the file "
                             "metrics.json names, else RUN/samples.npz, else --n fresh ones)")
    report.add_argument("--n", type=int, default=20_000,
                        help="Boltzmann generators: fresh samples for the figures when there is no samples file "
                             "(default 20000)")
    report.add_argument("--seed", type=int, default=0, help=SEED_HELP + " of the fresh samples")
    return parser


def _set_threads(threads: int | None) -> None:
    """PyTorch's CPU threads, after checking the number (``--threads``)."""
    import torch

    from .errors import MlmolError

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise MlmolError(f"--threads must be a positive whole number, got {threads!r}")
    torch.set_num_threads(int(threads or 1))


def _notice(message: str) -> None:
    """Print a library notice (resuming, hydrogens added, the OpenMM bridge in use) on standard error."""
    print(f"mlmol: {message}", file=sys.stderr)


def _positive(flag: str, value: float | None) -> None:
    from .errors import MlmolError

    if value is not None and not value > 0:
        raise MlmolError(f"{flag} must be positive, got {value:g}")


def _cmd_systems(args) -> None:
    from . import systems
    from .operators.problems import PROBLEMS
    from .systems.molecules import MOLECULES
    from .vmc.systems import EXACT_ENERGIES

    print("built-in systems:")
    for name, factory in sorted(systems.BUILTIN.items()):
        s = factory()
        print(f"  {name:15s} dim={s.dim}  {(factory.__doc__ or s.__doc__ or '').strip().splitlines()[0]}")
    print("your own: mlmol train --energy FILE.py:FUNCTION --dim D --out RUN")
    print("molecules (OpenMM force fields; mlmol train and mlmol simulate; your own: --pdb FILE):")
    for name, (_, description) in MOLECULES.items():
        print(f"  {name:26s} {description}")
    print("VMC systems (mlmol vmc or mlmol train): " + ", ".join(EXACT_ENERGIES))
    print("operator problems (mlmol operator or mlmol train): " + ", ".join(PROBLEMS))


def _cmd_train(args) -> None:

    from . import runs
    from .config import is_molecule, make_config, peptide_schedule, residues
    from .errors import MlmolError
    from .rundir import RunDirectory, read_yaml

    overrides = {"seed": args.seed, "steps": args.steps, "losses": args.losses, "flow_kind": args.flow_kind,
                 "device": args.device, "threads": args.threads, "backend": args.energy_backend,
                 "engine": args.data_engine, "temperature": args.temperature}
    molecular = {k: getattr(args, k) for k in ("energy", "dim", "pdb", "forcefield", "implicit_solvent",
                                               "add_hydrogens")}
    if args.resume:
        given = [f"--{k.replace('_', '-')}" for k, v in {**overrides, **molecular}.items() if v is not None]
        if args.target or given:
            raise MlmolError(f"--resume continues RUN with its own config.yaml; drop the other options "
                             f"{' '.join(given)}".rstrip())
        config, directory = None, RunDirectory(Path(args.out))
        directory.start(resume=True)
        threads = directory.read_config().get("threads", 1)
    else:
        system, base = args.target, None
        if args.target is not None and args.target.endswith((".yaml", ".yml")):
            base, system = read_yaml(args.target), None
        kind = (base or {}).get("kind") or (runs.kind_of_target(system) if system else "bg")
        if kind != "bg":  # a VMC system or an operator problem: its defaults, or the config's settings
            shared = ("seed", "threads", "steps") if kind == "vmc" else ("seed", "threads")
            bg_only = [f"--{k.replace('_', '-')}" for k, v in {**overrides, **molecular}.items()
                       if v is not None and k not in shared]
            if bg_only:
                raise MlmolError(f"{' '.join(bg_only)} apply to Boltzmann generators; for a {kind} run use "
                                 f"mlmol {kind} with its options")
            changes = {k: overrides[k] for k in shared if k != "threads" and overrides[k] is not None}
            config = runs.resolved_config(kind, base or {}, system, **changes)
            threads = args.threads or 1
        else:
            if args.pdb is not None and args.energy is not None:
                raise MlmolError("give either --pdb (a molecule) or --energy (your own function), not both")
            if args.pdb is None and any(v is not None for v in (args.forcefield, args.implicit_solvent,
                                                                 args.add_hydrogens)):
                raise MlmolError("--forcefield, --implicit-solvent and --add-hydrogens go with --pdb FILE")
            if args.pdb is not None:
                molecule = {"pdb": args.pdb, "implicit_solvent": args.implicit_solvent,
                            "add_hydrogens": True if args.add_hydrogens is None else args.add_hydrogens}
                if args.forcefield:
                    molecule["forcefield"] = args.forcefield
                base = {**(base or {}), "system": molecule}
            if system is None and base is None and args.energy is None:
                raise MlmolError("name a system (see mlmol systems), a CONFIG.yaml, or --energy FILE.py:FUNCTION "
                                 "--dim D")
            if system is not None and args.energy is not None:
                raise MlmolError("give either a system name or --energy, not both")
            config = make_config(system=system, energy=args.energy, dim=args.dim, base=base, **overrides)
            threads = config["threads"]
            count = residues(config["system"]) if is_molecule(config["system"]) else 1
            schedule = peptide_schedule(count)
            if schedule is not None and config["data"]["sampler"] == "md":
                _notice(f"a peptide of {count} residues: the schedule of {schedule[0]} wherever the config sets "
                        f"nothing else (this run: {config['data']['n']:,} MD frames, {config['recipe']['steps']:,} "
                        "training steps; every setting in RUN/config.yaml)")
    _set_threads(threads)
    started = time.perf_counter()
    run = runs.train(config, args.out, resume=args.resume, progress=True, notify=_notice)
    print(f"trained in {time.perf_counter() - started:.1f} s; run directory: {run.path}")
    if run.kind == "bg":
        print(f"next: mlmol sample {run.path} --n 100000 --out samples.npz; mlmol evaluate {run.path}; "
              f"mlmol report {run.path}")
    else:
        print("\n".join(runs.describe(run.kind, run.read_metrics() or {})))
        print(f"wrote {run.metrics_file}; next: mlmol report {run.path}")


def _cmd_sample(args) -> None:
    from . import run as runs
    from .data import check_samples_path
    from .errors import MlmolError
    from .rundir import RunDirectory

    _positive("--n", args.n)
    _positive("--tau", args.tau)
    check_samples_path(args.out)
    kind = RunDirectory(Path(args.run)).kind
    if kind != "bg":
        raise MlmolError(f"{args.run} is a {kind} run; mlmol sample draws from Boltzmann generators only")
    run = runs.load(args.run)
    n = args.n or run.config["evaluate"]["n"]
    samples = run.sample(n, seed=args.seed, tau=args.tau)
    samples.save(args.out)
    print(f"wrote {n} samples to {args.out}: {samples}")


def _cmd_evaluate(args) -> None:
    from . import runs

    _positive("--n", args.n)
    kind, metrics = runs.evaluate(args.run, n=args.n, seed=args.seed, samples_file=args.samples,
                                  reference=args.reference)
    print(f"evaluation of {args.run}" + (f" on {args.samples}" if args.samples else ""))
    for line in runs.describe(kind, metrics):
        print("  " + line)
    print(f"wrote {Path(args.run) / 'metrics.json'}")


def _cmd_report(args) -> None:
    from . import runs

    _positive("--n", args.n)
    print(f"wrote {runs.report(args.run, n=args.n, seed=args.seed, samples_file=args.samples)}")


def _cmd_build(args) -> None:
    from .systems.peptides import write_peptide

    out, atoms, energy = write_peptide(args.sequence, args.out, caps=args.caps, forcefield=args.forcefield,
                                       conformation=args.conformation)
    print(f"wrote {out}: {args.sequence.strip()} ({'capped' if args.caps == 'ace-nme' else 'charged termini'}), "
          f"{atoms} atoms, minimised vacuum energy {energy:.1f} kJ/mol")


def _ladder(text: str) -> tuple[float, float, int]:
    """LOW:HIGH:COUNT (kelvin, kelvin, states) from --temperatures, checked."""
    from .errors import MlmolError

    try:
        low, high, count = text.split(":")
        low, high, count = float(low), float(high), int(count)
    except ValueError:
        raise MlmolError(f"--temperatures {text!r}: write LOW:HIGH:COUNT, e.g. 300:600:8") from None
    if not 0 < low < high or count < 2:
        raise MlmolError(f"--temperatures {text!r}: need 0 < LOW < HIGH and COUNT ≥ 2")
    return low, high, count


def _cmd_simulate(args) -> None:
    import torch

    from .data import check_trajectory_path
    from .errors import MlmolError
    from .samplers.exchange import temperature_ladder
    from .simulation import simulate, simulate_replicas
    from .systems import molecules

    check_trajectory_path(args.out)
    scales = None
    if args.engine == "openmm" and (args.replicas != 1 or args.temperatures or args.hydrogen_mass or args.precision
                                    or args.compile):
        raise MlmolError("--replicas, --temperatures, --hydrogen-mass, --precision and --compile go with --engine torch")
    _positive("--replicas", args.replicas)
    _positive("--hydrogen-mass", args.hydrogen_mass)
    if args.temperatures:
        low, high, count = _ladder(args.temperatures)
        args.temperature = low
        scales = temperature_ladder(low, high, count).scales.tolist()
    _positive("--frames", args.frames)
    _positive("--interval", args.interval)
    _positive("--temperature", args.temperature)
    _positive("--timestep-fs", args.timestep_fs)
    if (args.molecule is None) == (args.pdb is None):
        raise MlmolError("name a built-in molecule (" + ", ".join(molecules.MOLECULES) + ") or give --pdb FILE")
    if args.pdb:
        system = molecules.from_pdb(args.pdb, forcefield=args.forcefield, implicit_solvent=args.implicit_solvent,
                                    temperature=args.temperature, add_hydrogens=args.add_hydrogens)
        for notice in system.notices():
            _notice(notice)
    else:
        system = molecules.molecule(args.molecule, temperature=args.temperature)
    started = time.perf_counter()
    if args.engine == "torch":
        frames, acceptance = simulate_replicas(system, args.out, args.frames, interval=args.interval,
                                               replicas=args.replicas, scales=scales,
                                               timestep_fs=args.timestep_fs, hydrogen_mass=args.hydrogen_mass,
                                               seed=args.seed, resume=args.resume, progress=True,
                                               precision=getattr(torch, args.precision or "float32"),
                                               compile=args.compile)
        if acceptance:
            print("swap acceptance between neighbouring temperatures: "
                  + ", ".join(f"{a:.2f}" for a in acceptance))
        frames = frames.reshape(-1, system.dim)
    else:
        frames = simulate(system, args.out, args.frames, interval=args.interval, seed=args.seed,
                          resume=args.resume, progress=True, timestep_fs=args.timestep_fs)
    system.close()
    print(f"wrote {len(frames)} frames of {system.name} to {args.out} in {time.perf_counter() - started:.1f} s")


def _cmd_vmc(args) -> None:

    from .errors import MlmolError
    from .vmc import run as vmc_run

    _set_threads(args.threads)
    overrides = {"ansatz": args.ansatz, "optimizer": args.optimizer, "steps": args.steps, "walkers": args.walkers,
                 "lr": args.lr, "eval_steps": args.eval_steps, "seed": args.seed,
                 "pretrain_steps": args.pretrain_steps, "basis": args.basis, "max_minutes": args.max_minutes}
    if args.resume:
        if args.system or any(v is not None for k, v in overrides.items() if k not in ("steps", "max_minutes")):
            raise MlmolError("--resume continues RUN with its own config.yaml; only --steps and --max-minutes "
                             "may change")
        config = None
    else:
        if args.system is None:
            raise MlmolError("name a system: H, He, Li, H2 or LiH")
        config = vmc_run.make_config(args.system, **overrides)
    started = time.perf_counter()
    changes = {"steps": args.steps, "max_minutes": args.max_minutes} if args.resume else {}
    result = vmc_run.train(config, args.out, resume=args.resume, progress=True, **changes)
    print(f"{result['system']} ({result['ansatz']}, {result['steps']} steps, {time.perf_counter() - started:.0f} s): "
          + vmc_run.describe(result))
    print(f"wrote {Path(args.out) / 'metrics.json'}; next: mlmol report {args.out}")


def _cmd_operator(args) -> None:

    from .errors import MlmolError
    from .operators import run as operator_run

    _set_threads(args.threads)
    overrides = {"data": args.data, "train": args.train, "validation": args.validation, "test": args.test,
                 "resolution": args.resolution,
                 "eval_resolutions": args.eval_resolutions, "epochs": args.epochs,
                 "coarse_epochs": args.coarse_epochs, "batch_size": args.batch_size, "lr": args.lr,
                 "modes": args.modes, "width": args.width, "seed": args.seed}
    if args.resume:
        if args.problem or any(v is not None for v in overrides.values()):
            raise MlmolError("--resume continues RUN with its own config.yaml; give only --out (and --threads)")
        config = None
    else:
        if args.problem is None:
            raise MlmolError(f"name a problem: {', '.join(operator_run.PROBLEMS)}")
        config = operator_run.make_config(args.problem, **overrides)
    result = operator_run.train(config, args.out, resume=args.resume, progress=True)
    print(f"{result['problem']} ({result['train']} training pairs, {result['train_seconds']:.0f} s of training on "
          f"{result['threads']} threads): " + operator_run.describe(result))
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'predictions.png'}")


COMMANDS = {"systems": _cmd_systems, "build": _cmd_build, "simulate": _cmd_simulate, "train": _cmd_train, "sample": _cmd_sample,
            "evaluate": _cmd_evaluate, "report": _cmd_report, "vmc": _cmd_vmc,
            "operator": _cmd_operator}


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: sys.argv); returns the exit status (2 for bad input)."""
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # said by the subcommand that got them, as argparse would for the top level
            commands = {name: command for action in parser._subparsers._group_actions
                        for name, command in action.choices.items()}
            (commands.get(args.command) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as stop:  # --help (0) or a usage error (2, one line already printed)
        return int(stop.code or 0)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from .errors import MlmolError

    try:
        COMMANDS[args.command](args)
    except MlmolError as error:
        print(f"mlmol {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nmlmol {args.command}: interrupted; a training run can continue with --resume",
              file=sys.stderr)
        return 130
    except OSError as error:
        if error.errno not in USER_ERRNOS:
            return _bug(args.command, error)
        print(f"mlmol {args.command}: error: {error.filename or 'a file'}: {error.strerror} (check the path and "
              "its permissions)", file=sys.stderr)
        return 2
    except Exception as error:  # a bug, not bad input: short message unless MLMOL_DEBUG is set
        return _bug(args.command, error)
    return 0


# a file the user named cannot be written or read: permission, read-only or full disk, missing folder, a folder
USER_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.ENOENT, errno.EISDIR, errno.ENOTDIR)


def _bug(command: str, error: Exception) -> int:
    """Exit 1 with a short message (the traceback with MLMOL_DEBUG=1)."""
    if os.environ.get("MLMOL_DEBUG"):
        raise error
    print(f"mlmol {command}: unexpected error: {type(error).__name__}: {error}\n"
          "  (rerun with MLMOL_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
