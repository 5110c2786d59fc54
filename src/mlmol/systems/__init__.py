"""Systems: energies on flat coordinates (see :class:`Energy`)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import MlmolError
from .base import Energy, FunctionEnergy, State, Tempered, check_finite
from .molecule import Molecule
from .particles import LennardJones, MultiDoubleWell, ParticleSystem, SolvatedDimer
from .quadrature import log_partition
from .targets import GaussianMixture, ManyWell, gmm40
from .toy import DoubleWell, Gaussian, MuellerBrown

BUILTIN: dict[str, Callable[[], Energy]] = {
    "double-well": DoubleWell,
    "mueller-brown": MuellerBrown,
    "gaussian": Gaussian,
    "dw4": MultiDoubleWell,
    "lj13": LennardJones,
    "solvated-dimer": SolvatedDimer,
    "gmm-40": gmm40,
    "many-well-32": ManyWell,
}

_MOLECULAR = ("from_pdb", "alanine_dipeptide", "molecule")  # need OpenMM: imported on first use
__all__ = ["Energy", "FunctionEnergy", "State", "Tempered", "Molecule", "ParticleSystem", "DoubleWell", "MuellerBrown", "Gaussian",
           "MultiDoubleWell", "LennardJones", "SolvatedDimer", "GaussianMixture", "ManyWell", "gmm40",
           "BUILTIN", "get", "from_file", "check_finite", "log_partition", *_MOLECULAR]


def __getattr__(name: str):
    """``mlmol.systems.from_pdb``, ``alanine_dipeptide`` and ``molecule`` load
    :mod:`mlmol.systems.molecules` (and OpenMM) only when first asked for."""
    if name in _MOLECULAR:
        from . import molecules

        return getattr(molecules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get(name: str) -> Energy:
    """A built-in system by name, e.g. ``get("double-well")``."""
    try:
        factory = BUILTIN[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN))
        raise MlmolError(
            f"unknown system {name!r}. Known systems: {known}. "
            "For your own energy use --energy path/to/file.py:function --dim D"
        ) from None
    return factory()


def from_file(spec: str, dim: int, **kwargs) -> FunctionEnergy:
    """Load ``path/to/file.py:function`` as an energy of dimension ``dim``."""
    path_text, sep, function_name = spec.rpartition(":")
    if not sep or not path_text or not function_name:
        raise MlmolError(
            f"cannot read --energy {spec!r}: write it as path/to/file.py:function"
        )
    path = Path(path_text)
    if not path.is_file():
        raise MlmolError(f"energy file {path} does not exist")
    module_name = f"_mlmol_user_energy_{abs(hash(str(path.resolve())))}"
    try:
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError("not a Python file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
    except Exception as error:
        raise MlmolError(
            f"energy file {path} does not load: {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, function_name, None)
    if function is None or not callable(function):
        found = sorted(n for n in vars(module) if not n.startswith("_") and callable(vars(module)[n]))
        raise MlmolError(
            f"energy file {path} has no function {function_name!r}; it defines: "
            + (", ".join(found) or "nothing callable")
        )
    return FunctionEnergy(function, dim, name=f"{path.name}:{function_name}", **kwargs)
