"""OpenMM bridge: reduced energies and forces of a batch through a pool of worker processes.

Each worker is a separate Python process holding one OpenMM ``Context``; batches are
split across workers. Every call has a timeout; a worker that dies or hangs is killed,
replaced, and the call raises :class:`OpenMMWorkerError`. Workers end when the pool is
closed, when the parent exits, and when the parent dies (their input pipe closes); they
run in their own session, so Ctrl-C in a terminal reaches only the parent.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import MlmolError
from ..units import kT_kj_mol
from .base import Energy

if TYPE_CHECKING:
    from types import ModuleType

    import openmm
    from openmm import app
    from typing_extensions import Self

HEADER = struct.Struct("!Q")
WORKER = Path(__file__).with_name("_openmm_worker.py")
REFERENCE_MAX_ATOMS = 100  # "auto" platform: Reference up to this size, else CPU/CUDA


def require_openmm() -> ModuleType:
    """The ``openmm`` module, or an :class:`~mlmol.errors.MlmolError` saying how to install it."""
    try:
        import openmm
    except ImportError:
        raise MlmolError("OpenMM is not installed: pip install openmm (or install mlmol with its defaults)") from None
    return openmm


class OpenMMWorkerError(MlmolError):
    """A worker died, hung past its timeout, or failed to start; it has been replaced."""


def auto_platform(n_atoms: int, system: openmm.System | None = None) -> str:
    """Reference for small systems (fastest on CPU: no thread start-up), else CUDA or CPU.

    Systems with custom forces (e.g. OpenMM's implicit/obc2.xml, a CustomGBForce) skip
    Reference, which interprets their expressions: measured 350 MD steps/s for glycine
    dipeptide in obc2 on Reference.

    Arguments:
        n_atoms: the number of atoms (Reference up to ``REFERENCE_MAX_ATOMS``).
        system: the ``openmm.System``, checked for custom forces, or None.

    Returns:
        An OpenMM platform name: ``"Reference"``, ``"CUDA"`` or ``"CPU"``.
    """
    openmm = require_openmm()
    names = {openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())}
    custom = system is not None and any(type(f).__name__.startswith("Custom") for f in system.getForces())
    if n_atoms <= REFERENCE_MAX_ATOMS and not custom:
        return "Reference"
    return "CUDA" if "CUDA" in names else "CPU"


class _Worker:
    def __init__(self, init_message: tuple, timeout: float):
        self.process = subprocess.Popen([sys.executable, "-u", str(WORKER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, start_new_session=True,
                                        env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.send(init_message)
        status, detail = self.receive(timeout)
        if status != "ready":
            self.kill()
            raise OpenMMWorkerError(f"the OpenMM worker failed to start: {detail}")

    def send(self, obj) -> None:
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.write(HEADER.pack(len(payload)) + payload)
        self.process.stdin.flush()

    def _read(self, size: int, deadline: float) -> bytes:
        fd, chunks, remaining = self.process.stdout.fileno(), [], size
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def receive(self, timeout: float):
        deadline = time.monotonic() + timeout
        (size,) = HEADER.unpack(self._read(HEADER.size, deadline))
        return pickle.loads(self._read(size, deadline))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def close(self, wait: float = 2.0) -> None:
        try:
            self.process.stdin.close()  # end of input: the worker returns
            self.process.wait(wait)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


def _shutdown(workers: list) -> None:
    for worker in workers:
        worker.close()
    workers.clear()


class OpenMMBridge:
    """A pool of OpenMM worker processes for one ``openmm.System``.

    ``compute(positions)`` with positions ``[B, n_atoms, 3]`` in nm returns energies ``[B]``
    (kJ/mol) and forces ``[B, n_atoms, 3]`` (kJ/mol/nm). Configurations OpenMM cannot
    evaluate (e.g. NaN coordinates) get an infinite energy and zero force.

    Arguments:
        system: the ``openmm.System`` (serialised once and sent to every worker).
        platform: an OpenMM platform name, or ``"auto"`` (:func:`auto_platform`).
        workers: the number of worker processes; each batch is split across them.
        timeout: seconds a call may wait for a worker before replacing it.
        properties: OpenMM platform properties (default on CPU: one thread per worker).

    Example:
        >>> with OpenMMBridge(system, workers=2) as bridge:  # doctest: +SKIP
        ...     energies, forces = bridge.compute(positions)
    """

    def __init__(self, system: openmm.System, platform: str = "auto", workers: int = 1, timeout: float = 60.0,
                 properties: dict[str, str] | None = None) -> None:
        openmm = require_openmm()
        if workers < 1:
            raise MlmolError(f"workers must be at least 1, got {workers}")
        self.n_atoms = system.getNumParticles()
        self.platform = auto_platform(self.n_atoms, system) if platform == "auto" else platform
        if self.platform == "CPU" and properties is None:
            properties = {"Threads": "1"}  # one core per worker: never oversubscribe
        self.timeout = timeout
        self._init = (openmm.XmlSerializer.serialize(system), self.platform, dict(properties or {}))
        self.workers: list[_Worker] = []
        self._finalizer = weakref.finalize(self, _shutdown, self.workers)
        for _ in range(workers):
            self.workers.append(_Worker(self._init, timeout))
        self.failed = 0  # configurations that OpenMM could not evaluate, in total

    def _replace(self, index: int, reason: str) -> OpenMMWorkerError:
        self.workers[index].kill()
        self.workers[index] = _Worker(self._init, self.timeout)
        return OpenMMWorkerError(f"OpenMM worker {index} {reason}; it was replaced by a new one. "
                                 "Retry the call; if this repeats, check the system or raise the timeout.")

    def compute(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Energies ``[B]`` (kJ/mol) and forces ``[B, n_atoms, 3]`` (kJ/mol/nm) at ``positions`` ``[B, n_atoms, 3]``
        (nm; any shape with ``B · n_atoms · 3`` entries), float64.

        Raises:
            OpenMMWorkerError: when a worker died or timed out (it is replaced before the error is raised).
        """
        positions = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, self.n_atoms, 3)
        chunks = np.array_split(positions, min(len(self.workers), max(len(positions), 1)))
        sent = []
        for worker, chunk in zip(self.workers, chunks):
            try:
                worker.send(chunk)
                sent.append(True)
            except OSError:  # a dead worker's pipe is closed (BrokenPipeError)
                sent.append(False)
        energies, forces, error = [], [], None
        for index, _ in enumerate(chunks):
            try:
                if not sent[index]:
                    raise EOFError
                status, e, f, failed = self.workers[index].receive(self.timeout)
                energies.append(e)
                forces.append(f)
                self.failed += failed
            except TimeoutError:
                error = error or self._replace(index, f"did not answer within {self.timeout:g} s")
            except (EOFError, OSError, pickle.UnpicklingError, ValueError):
                code = self.workers[index].process.poll()
                error = error or self._replace(index, f"died (exit status {code})")
        if error is not None:
            raise error
        return np.concatenate(energies), np.concatenate(forces)

    def close(self) -> None:
        """Stop the workers (also done automatically when the bridge is garbage collected or at exit)."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ReducedEnergy(torch.autograd.Function):
    """u(x) = U(x)/kT through the bridge; du/dx = −F(x)/kT."""

    @staticmethod
    def forward(ctx, x, bridge: OpenMMBridge, kT: float):
        batch = x.shape[:-1]
        energies, forces = bridge.compute(x.detach().reshape(-1, x.shape[-1]).cpu().double().numpy())
        ctx.save_for_backward(torch.from_numpy(-forces / kT).to(x).reshape(*batch, x.shape[-1]))
        return torch.from_numpy(energies / kT).to(x).reshape(batch)

    @staticmethod
    def backward(ctx, grad_u):
        (grad_x,) = ctx.saved_tensors
        return grad_u[..., None] * grad_x, None, None


class OpenMMEnergy(Energy):
    """Reduced energy u = U/kT of an ``openmm.System`` on flat Cartesian coordinates (nm, atom-major).

    ``platform``: "auto" (Reference for ≤ 100 atoms, else CUDA if present, else CPU),
    "Reference", "CPU" or "CUDA". ``workers`` processes share each batch.

    Arguments:
        system: the ``openmm.System`` (energies in kJ/mol, positions in nm).
        topology: its ``openmm.app.Topology``, kept as ``self.topology``, or None.
        temperature: the temperature (kelvin) that sets kT.
        platform: an OpenMM platform name, or ``"auto"``.
        workers: the number of worker processes.
        timeout: seconds a call may wait for a worker.
        name: a short name.
    """

    def __init__(self, system: openmm.System, topology: app.Topology | None = None, temperature: float = 300.0,
                 platform: str = "auto", workers: int = 1, timeout: float = 60.0, name: str = "openmm") -> None:
        super().__init__(dim=3 * system.getNumParticles(), kT=kT_kj_mol(temperature))
        self.name = name
        self.temperature = temperature
        self.system = system
        self.topology = topology
        self.bridge = OpenMMBridge(system, platform=platform, workers=workers, timeout=timeout)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy ``[*batch]`` (kT) of ``x`` ``[*batch, 3N]`` (nm), differentiable (forces from OpenMM);
        infinite where OpenMM cannot evaluate a configuration."""
        self.check_input(x)
        return _ReducedEnergy.apply(x, self.bridge, self.kT)

    def close(self) -> None:
        """Stop the worker processes (also done at exit)."""
        self.bridge.close()

    def extra_repr(self) -> str:
        """Atoms, temperature, platform and workers, for the module's ``repr``."""
        return f"atoms={self.dim // 3}, T={self.temperature} K, platform={self.bridge.platform}, " \
               f"workers={len(self.bridge.workers)}"
