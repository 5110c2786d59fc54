"""The run directory: one contract for every kind of run (Boltzmann generator, VMC, neural operator).

::

    RUN/config.yaml     the fully resolved config and its ``kind``: enough to rerun
                        (``mlmol train RUN/config.yaml --out RUN2``)
    RUN/checkpoint.pt   the training state, written atomically; ``--resume`` continues it bit for bit
    RUN/metrics.jsonl   one line per logged training step
    RUN/metrics.json    the evaluation (``mlmol evaluate``); ``mlmol report`` reads it and never rewrites it
    RUN/report.html     the report with its figures (``mlmol report``)

A kind may add its own files beside these (a Boltzmann generator's ``data.npz``, an operator's
``data.npz`` and ``predictions.png``, a pre-trained wavefunction's ``pretrain.json``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import __version__
from .data import atomic_write
from .errors import MlmolError

KINDS = ("bg", "vmc", "operator")  # Boltzmann generator, variational Monte Carlo, neural operator


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2's floats: ``1e-3`` is a number (PyYAML's YAML 1.1 reads it as a string)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",  # YAML 1.2's core floats with an exponent
                              re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+$"), list("-+.0123456789"))


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from ``path`` (e.g. a config to train from), without the version stamp; ``1e-3``
    reads as a number, as YAML 1.2 has it."""
    path = Path(path)
    try:
        loaded = yaml.load(path.read_text(), Loader=_Loader) or {}
    except OSError as error:
        raise MlmolError(f"cannot read config {path}: {error.strerror or error}") from None
    except yaml.MarkedYAMLError as error:
        mark, problem = error.problem_mark, error.problem or "not valid YAML"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise MlmolError(f"{path} is not valid YAML ({where}{problem})") from None
    except yaml.YAMLError as error:
        raise MlmolError(f"{path} is not valid YAML ({error})") from None
    if not isinstance(loaded, dict):
        raise MlmolError(f"config {path} must be a mapping of keys to values")
    loaded.pop("mlmol_version", None)
    return loaded


def _legacy_kind(config: dict) -> str:
    """The kind of a config.json written before config.yaml (VMC and operator runs had no ``kind``)."""
    return "operator" if "problem" in config else "vmc"


@dataclass(frozen=True)
class RunDirectory:
    """The files of one run (see the module notes); reading and writing them is all it does.

    Example:
        >>> run = RunDirectory(Path("runs/dw"))  # doctest: +SKIP
        >>> run.kind, run.read_metrics()["ess"]  # doctest: +SKIP
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_file(self) -> Path:
        """RUN/config.yaml."""
        return self.path / "config.yaml"

    @property
    def checkpoint(self) -> Path:
        """RUN/checkpoint.pt."""
        return self.path / "checkpoint.pt"

    @property
    def metrics_log(self) -> Path:
        """RUN/metrics.jsonl."""
        return self.path / "metrics.jsonl"

    @property
    def metrics_file(self) -> Path:
        """RUN/metrics.json."""
        return self.path / "metrics.json"

    @property
    def report_file(self) -> Path:
        """RUN/report.html."""
        return self.path / "report.html"

    def _legacy_config_file(self) -> Path:
        return self.path / "config.json"

    def exists(self) -> bool:
        """Whether this is a run directory (it has its config)."""
        return self.config_file.is_file() or self._legacy_config_file().is_file()

    def read_config(self) -> dict:
        """The run's config with its ``kind``; a clear error when this is not a run directory."""
        if self.path.is_file():
            raise MlmolError(f"{self.path} is a file, not a run directory (give the folder mlmol train --out wrote)")
        if not self.path.is_dir():
            raise MlmolError(f"run directory {self.path} does not exist; train first: "
                             f"mlmol train SYSTEM --out {self.path}")
        if self.config_file.is_file():
            config = read_yaml(self.config_file)
            config.setdefault("kind", "bg")  # Boltzmann-generator runs written before kinds existed
        elif self._legacy_config_file().is_file():  # VMC and operator runs written before config.yaml
            config = json.loads(self._legacy_config_file().read_text())
            config = {"kind": _legacy_kind(config), **config}
        else:
            raise MlmolError(f"{self.path} is not a run directory (no config.yaml); train first: "
                             f"mlmol train SYSTEM --out {self.path}")
        if config["kind"] not in KINDS:
            raise MlmolError(f"{self.config_file} has kind {config['kind']!r}; mlmol knows {', '.join(KINDS)}")
        return config

    @property
    def kind(self) -> str:
        """``bg``, ``vmc`` or ``operator``."""
        return self.read_config()["kind"]

    def write_config(self, config: dict) -> None:
        """Write ``config`` (with its ``kind``) atomically, stamped with the mlmol version."""
        if config.get("kind") not in KINDS:
            raise MlmolError(f"a run config needs a kind, one of {', '.join(KINDS)}")
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.config_file, yaml.safe_dump({"mlmol_version": __version__, **config}, sort_keys=False))

    def start(self, resume: bool) -> None:
        """The checks before training: a new run needs a new or empty folder (or one where a run was
        begun and has no checkpoint yet); ``resume`` needs the config and checkpoint of one."""
        if self.path.exists() and not self.path.is_dir():
            raise MlmolError(f"--out {self.path} is a file, not a folder; choose a new folder for the run")
        if resume:
            if not self.exists():
                raise MlmolError(f"cannot resume: {self.config_file} does not exist; train without --resume")
            if not self.checkpoint.is_file():
                raise MlmolError(f"cannot resume: no checkpoint at {self.checkpoint}; train without --resume")
        elif self.checkpoint.exists():
            raise MlmolError(f"{self.path} already holds a trained run; pass --resume to continue it "
                             "or choose another --out")
        elif self.path.is_dir() and not self.exists() and any(self.path.iterdir()):
            raise MlmolError(f"--out {self.path} is a folder with other files in it; choose a new or empty folder "
                             "for the run")

    def read_log(self) -> list[dict]:
        """The logged training steps (RUN/metrics.jsonl), oldest first; empty when there are none."""
        if not self.metrics_log.is_file():
            return []
        return [json.loads(line) for line in self.metrics_log.read_text().splitlines() if line.strip()]

    def read_metrics(self) -> dict | None:
        """RUN/metrics.json as the evaluation wrote it, or None when there is none."""
        if not self.metrics_file.is_file():
            return None
        try:
            metrics = json.loads(self.metrics_file.read_text())
        except (OSError, ValueError) as error:
            raise MlmolError(f"cannot read {self.metrics_file} ({error}); write it again: "
                             f"mlmol evaluate {self.path}") from None
        if not isinstance(metrics, dict):
            raise MlmolError(f"{self.metrics_file} is not an evaluation written by mlmol; write it again: "
                             f"mlmol evaluate {self.path}")
        return metrics

    def write_metrics(self, metrics: dict) -> None:
        """Write the evaluation atomically."""
        atomic_write(self.metrics_file, json.dumps(metrics, indent=2))
