"""Every kind of run behind one interface: train, evaluate and report a run directory, whatever its
kind (``bg``: Boltzmann generator, ``vmc``: variational Monte Carlo, ``operator``: neural operator).

The kind is in RUN/config.yaml (:mod:`mlmol.rundir`); each kind's own module does the work:
:mod:`mlmol.run`, :mod:`mlmol.vmc.run`, :mod:`mlmol.operators.run`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .data import Samples
from .errors import MlmolError
from .rundir import RunDirectory


def kind_of_target(name: str) -> str:
    """The kind of run a name given to ``mlmol train`` makes: a VMC system (``He``), an operator
    problem (``burgers``), else a Boltzmann generator's system."""
    from .operators.problems import PROBLEMS
    from .vmc.systems import EXACT_ENERGIES

    return "vmc" if name in EXACT_ENERGIES else "operator" if name in PROBLEMS else "bg"


def resolved_config(kind: str, base: dict, name: str | None = None, **changes: object) -> dict:
    """The full config of a VMC or operator run from a config's settings (``base``, e.g. another run's
    config.yaml) or a system/problem ``name`` with its defaults, and ``changes`` (e.g. ``seed``)."""
    settings = {**{k: v for k, v in base.items() if k != "kind"}, **changes}
    if kind == "vmc":
        from .vmc import run as vmc_run

        return {"kind": kind, **vmc_run.make_config(settings.pop("system", name), **settings)}
    if kind == "operator":
        from .operators import run as operator_run

        return {"kind": kind, **operator_run.make_config(settings.pop("problem", name), **settings)}
    raise MlmolError(f"unknown kind of run {kind!r}; mlmol knows bg, vmc and operator")


def train(config: dict | None, out: str | Path, resume: bool = False, progress: bool = False,
          notify: Callable[[str], None] | None = None) -> RunDirectory:
    """Train (or with ``resume`` continue) the run ``config`` describes, whatever its kind; ``notify``
    (e.g. ``print``) is told what the user should know (where a resumed run continues, ...)."""
    run = RunDirectory(Path(out))
    kind = run.kind if resume else (config or {}).get("kind", "bg")
    if kind == "vmc":
        from .vmc import run as vmc_run

        vmc_run.train(config, out, resume=resume, progress=progress, notify=notify)
    elif kind == "operator":
        from .operators import run as operator_run

        operator_run.train(config, out, resume=resume, progress=progress, notify=notify)
    else:
        from . import run as bg_run

        bg_run.train(config, out, resume=resume, progress=progress, notify=notify)
    return run


def evaluate(path: str | Path, n: int | None = None, seed: int = 0, samples_file: str | None = None,
             reference: str | None = None) -> tuple[str, dict]:
    """Evaluate the run in ``path`` into RUN/metrics.json; returns its kind and the metrics. ``n``,
    ``seed`` and ``samples_file`` choose a Boltzmann generator's samples (other kinds have none);
    ``reference`` adds a molecule's W2 distances to reference configurations."""
    run = RunDirectory(Path(path))
    kind = run.kind
    if kind != "bg" and (n is not None or samples_file is not None or reference is not None):
        raise MlmolError(f"{run.path} is a {kind} run: --n, --samples and --reference apply to Boltzmann "
                         "generators only")
    if kind == "vmc":
        from .vmc import run as vmc_run

        return kind, vmc_run.evaluate_run(run)
    if kind == "operator":
        from .operators import run as operator_run

        return kind, operator_run.evaluate_run(run)
    from . import run as bg_run

    samples = Samples.load(samples_file) if samples_file else None
    return kind, bg_run.evaluate_run(bg_run.load(path), n=n, seed=seed, samples=samples, source=samples_file,
                                     reference=reference)


def describe(kind: str, metrics: dict) -> list[str]:
    """The evaluation of a run of ``kind`` as lines for the terminal."""
    if kind == "vmc":
        from .vmc.run import describe as vmc_describe

        return [vmc_describe(metrics)]
    if kind == "operator":
        from .operators.run import describe as operator_describe

        return [operator_describe(metrics)]
    from .evaluation import summary_rows

    return [f"{name:<28s} {value}" for name, value in summary_rows(metrics)]


def report(path: str | Path, n: int = 20_000, seed: int = 0, samples_file: str | None = None) -> Path:
    """Write RUN/report.html with the figures of the run's kind; returns its path. ``n``, ``seed`` and
    ``samples_file`` choose a Boltzmann generator's figure samples (other kinds have none)."""
    kind = RunDirectory(Path(path)).kind
    if kind != "bg" and samples_file is not None:
        raise MlmolError(f"{path} is a {kind} run: --samples applies to Boltzmann generators only")
    if kind == "vmc":
        from .vmc.report import report as vmc_report

        return vmc_report(path)
    if kind == "operator":
        from .operators.report import report as operator_report

        return operator_report(path)
    from .run import load
    from .run_report import report as bg_report

    return bg_report(load(path), n=n, seed=seed, samples_file=samples_file)
