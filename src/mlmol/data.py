"""Sample containers and file I/O; every write is atomic (temp file, then rename)."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import MlmolError

if TYPE_CHECKING:
    import mdtraj
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike
    from openmm import app


_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: the process's umask (there is no way to read it without setting it)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename (with the
    permissions a plain ``open`` would give, not mkstemp's owner-only 0600).

    Arguments:
        path: the file to write; missing parent folders are created.
        data: the contents (text is written as UTF-8).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save`` of ``obj`` to ``path`` through :func:`atomic_write`; returns the path."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, buffer.getvalue())


def load_torch(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load`` of ``path`` onto the CPU (full unpickling: trusted files only).

    Arguments:
        path: the file written by :func:`save_torch`.
        what: what the file is, for the error messages.

    Raises:
        MlmolError: when the file is missing or cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise MlmolError(f"no {what} at {path}; train first (mlmol train ... --out {path.parent})")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise MlmolError(
            f"the {what} {path} is corrupt or unreadable ({type(error).__name__}: {error}); "
            f"delete it and train again without --resume"
        ) from None


def zero_weight_nonfinite(log_weights: torch.Tensor) -> torch.Tensor:
    """Log weights (or log densities) with every NaN and ±inf as −inf: a sample whose energy or density
    could not be computed has zero weight, and a +inf never dominates.

    Example:
        >>> zero_weight_nonfinite(torch.tensor([0.0, float("nan"), float("inf")]))
        tensor([0., -inf, -inf])
    """
    return torch.nan_to_num(log_weights, nan=-torch.inf, posinf=-torch.inf, neginf=-torch.inf)


def ess(log_weights: torch.Tensor) -> float:
    """Kish effective sample size (Σw)² / Σw², computed stably from log weights (also
    :func:`mlmol.estimators.ess`; here so that :class:`Samples` can print it).

    Arguments:
        log_weights: unnormalised log weights ``[N]``; -inf and NaN count as zero weights.

    Example:
        >>> round(ess(torch.zeros(10)), 6)
        10.0
    """
    lw = torch.as_tensor(log_weights, dtype=torch.float64)
    lw = lw[torch.isfinite(lw)]  # -inf is a zero weight; NaN counts as zero too
    if lw.numel() == 0:
        return 0.0
    return float(torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)))


@dataclass
class Samples:
    """Generator samples with their unnormalised log weights log w = −u(x) − log q(x).

    ``x`` [N, dim] float64; ``log_weights`` [N]; ``energy`` [N] reduced (units of ``kT``).

    Arguments:
        x: the samples ``[N, dim]``.
        log_weights: their log weights ``[N]``.
        energy: their reduced energies u(x) ``[N]`` (kT).
        kT: the thermal energy of the system (kJ/mol for molecules, 1 in reduced units).
        topology: PDB text of the molecule's topology, or None.
    """

    x: torch.Tensor
    log_weights: torch.Tensor
    energy: torch.Tensor
    kT: float = 1.0
    topology: str | None = None

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        return f"Samples(n={len(self)}, dim={self.x.shape[-1]}, kT={self.kT:g}, ess={ess(self.log_weights):.1f})"

    def save(self, path: str | Path) -> Path:
        """Write ``.npz`` with x, log_weights, energy, kT (and topology as PDB text); returns the path."""
        arrays = {"x": self.x.detach().double().cpu().numpy(),
                  "log_weights": self.log_weights.detach().double().cpu().numpy(),
                  "energy": self.energy.detach().double().cpu().numpy(),
                  "kT": np.float64(self.kT)}
        if self.topology is not None:
            arrays["topology"] = np.array(self.topology)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return atomic_write(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Samples:
        """Read samples written by :meth:`save`."""
        path = Path(path)
        try:
            with np.load(path) as f:
                topology = str(f["topology"]) if "topology" in f.files else None
                return cls(torch.from_numpy(f["x"]), torch.from_numpy(f["log_weights"]),
                           torch.from_numpy(f["energy"]), float(f["kT"]), topology)
        except FileNotFoundError:
            raise MlmolError(f"samples file {path} does not exist; write one with mlmol sample RUN --out {path}") from None
        except KeyError as error:
            raise MlmolError(f"{path} is an .npz file without {error} : not samples written by mlmol sample") from None
        except (OSError, ValueError, zipfile.BadZipFile):
            raise MlmolError(f"{path} is not a samples file written by mlmol sample (an .npz of x, log_weights, "
                             "energy and kT); write one with mlmol sample RUN --out FILE.npz") from None


def save_array(path: str | Path, **arrays: ArrayLike) -> Path:
    """Write ``arrays`` (by name) as one ``.npz`` file through :func:`atomic_write`; returns the path."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write(path, buffer.getvalue())


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a matplotlib figure as PNG atomically (temp file, then rename) and close it; returns the path."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write(path, buffer.getvalue())


TRAJECTORY_SUFFIXES = (".dcd", ".xtc", ".trr", ".h5", ".nc", ".netcdf", ".pdb", ".gro", ".xyz", ".lammpstrj", ".mdcrd",
                       ".crd")  # formats mdtraj writes


def check_trajectory_path(path: str | Path) -> Path:
    """``path`` if its suffix names a trajectory format mdtraj writes, else a clear error."""
    path = Path(path)
    if path.suffix.lower() not in TRAJECTORY_SUFFIXES:
        raise MlmolError(f"--out {path}: the suffix names no trajectory format; use one of "
                         + ", ".join(TRAJECTORY_SUFFIXES))
    if path.is_dir():
        raise MlmolError(f"--out {path} is a folder; give a trajectory file such as {path / 'md.dcd'}")
    return path


def check_samples_path(path: str | Path) -> Path:
    """``path`` if it is a place for a samples file: ending in .npz, not a folder, not another kind of file."""
    path = Path(path)
    if path.is_dir():
        raise MlmolError(f"--out {path} is a folder; give a file name such as {path / 'samples.npz'}")
    if path.suffix != ".npz":
        raise MlmolError(f"--out {path}: samples are written as .npz; give a file name ending in .npz")
    return path


def save_trajectory(path: str | Path, x: torch.Tensor, topology: mdtraj.Topology | app.Topology) -> Path:
    """Write frames ``[n, 3N]`` (nm) with an OpenMM or mdtraj topology; format from the suffix
    (.dcd, .h5, .xtc, .pdb — whatever mdtraj writes). Atomic: temp file, then rename. Returns the path."""
    import mdtraj

    path = Path(path)
    top = topology if isinstance(topology, mdtraj.Topology) else mdtraj.Topology.from_openmm(topology)
    xyz = torch.as_tensor(x).detach().cpu().double().numpy().reshape(len(x), -1, 3)
    if xyz.shape[1] != top.n_atoms:
        raise MlmolError(f"{path}: {xyz.shape[1]} atoms per frame but the topology has {top.n_atoms}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        mdtraj.Trajectory(xyz, top).save(tmp, force_overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_trajectory(path: str | Path, topology: mdtraj.Topology | app.Topology) -> torch.Tensor:
    """Frames ``[n, 3N]`` (nm, float64) of a trajectory file; the atom count must match ``topology``."""
    import mdtraj

    path = Path(path)
    if not path.is_file():
        raise MlmolError(f"trajectory {path} does not exist")
    top = topology if isinstance(topology, mdtraj.Topology) else mdtraj.Topology.from_openmm(topology)
    try:
        traj = mdtraj.load(str(path), top=top)
    except ValueError as error:
        raise MlmolError(f"trajectory {path} does not match the topology ({top.n_atoms} atoms): {error}") from None
    except Exception as error:
        raise MlmolError(f"cannot read trajectory {path}: {type(error).__name__}: {error}") from None
    return torch.from_numpy(traj.xyz.astype(np.float64).reshape(traj.n_frames, -1))


def pdb_text(topology: app.Topology, x: torch.Tensor) -> str:
    """PDB text of an OpenMM topology at flat coordinates ``x`` [3N] (nm)."""
    from openmm import app, unit

    buffer = io.StringIO()
    xyz = torch.as_tensor(x).detach().double().cpu().numpy().reshape(-1, 3)
    app.PDBFile.writeFile(topology, xyz * unit.nanometer, buffer)
    return buffer.getvalue()
