"""Umbrella sampling along a torsion with OpenMM, and MBAR free energies of torsion states (pymbar).

A reference for Boltzmann generators that does not use them: windows restrain the torsion
with u_k = ½ K d(θ, θ_k)² (d the periodic difference), each window runs Langevin MD,
traces are subsampled by their statistical inefficiency, and MBAR reweights all windows
to the unbiased ensemble.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import MlmolError
from ..systems.molecules import dihedral
from ..systems.openmm import OpenMMEnergy, require_openmm
from .md import MolecularDynamics


@dataclass
class UmbrellaTraces:
    """Torsion traces (radians) per window, with each window's centre (radians) and K (kJ/mol/rad²)."""

    centres: np.ndarray
    force_constants: np.ndarray
    traces: list[np.ndarray]
    kT: float  # kJ/mol


def _periodic(d):
    return (d + np.pi) % (2 * np.pi) - np.pi


def umbrella_torsion(system: OpenMMEnergy, atoms: Sequence[int], centres_deg: Sequence[float],
                     force_constants: Sequence[float] | float = 200.0, steps: int = 100_000,
                     equilibration: int = 10_000, interval: int = 100, timestep_fs: float = 1.0,
                     seed: int = 0, progress: bool = False) -> UmbrellaTraces:
    """Run one restrained MD per window (in order, each starting where the previous ended)."""
    openmm = require_openmm()
    centres = np.radians(np.asarray(centres_deg, dtype=float))
    ks = np.broadcast_to(np.asarray(force_constants, dtype=float), centres.shape).copy()
    if np.any(ks <= 0):
        raise MlmolError("umbrella force constants must be positive")
    bias = openmm.CustomTorsionForce("0.5*k*d^2; d=dt-2*pi*floor((dt+pi)/(2*pi)); dt=theta-theta0; pi=3.141592653589793")
    bias.addGlobalParameter("k", float(ks[0]))
    bias.addGlobalParameter("theta0", float(centres[0]))
    bias.addTorsion(*[int(a) for a in atoms], [])
    md = MolecularDynamics(system, timestep_fs=timestep_fs, seed=seed, equilibration=0, bias=bias)
    order = np.argsort(_periodic(centres - np.radians(-80.0)))  # one sweep around the circle, from opposite C7eq
    traces: list[np.ndarray | None] = [None] * len(centres)
    windows = range(len(centres))
    if progress:
        from tqdm.auto import tqdm
        windows = tqdm(windows, desc="umbrella windows", disable=None)
    for w in windows:
        i = order[w]
        md.context.setParameter("k", float(ks[i]))
        md.context.setParameter("theta0", float(centres[i]))
        md.integrator.step(equilibration)
        traces[i] = dihedral(md.run(steps // interval, interval), *atoms).numpy()
    return UmbrellaTraces(centres, ks, traces, system.kT)


def mbar_torsion_delta_f(data: UmbrellaTraces, low: float = 0.0, high: float = math.pi,
                         subsample: bool = True) -> tuple[float, float, dict]:
    """F(low < θ < high) − F(rest) in kT by MBAR over all windows; returns (value, stderr, details).

    ``details`` holds the samples kept per window and the smallest off-diagonal overlap
    between neighbouring windows (near 0 means a gap: add windows there).
    """
    from pymbar import MBAR, timeseries

    kept = []
    for trace in data.traces:
        if subsample and len(trace) > 10:
            signal = np.stack([np.cos(trace), np.sin(trace)]).sum(0)
            kept.append(trace[timeseries.subsample_correlated_data(signal)])
        else:
            kept.append(trace)
    theta = np.concatenate(kept)
    n_k = np.array([len(t) for t in kept])
    u_kn = 0.5 * data.force_constants[:, None] * _periodic(theta[None, :] - data.centres[:, None]) ** 2 / data.kT
    mbar = MBAR(u_kn, n_k)
    inside = (theta > low) & (theta < high)
    u_ln = np.stack([np.where(inside, 0.0, np.inf), np.where(inside, np.inf, 0.0)])
    result = mbar.compute_perturbed_free_energies(u_ln)
    value = float(result["Delta_f"][1, 0])  # pymbar: Delta_f[i, j] = f_j − f_i, so this is F(inside) − F(outside)
    stderr = float(result["dDelta_f"][1, 0])
    overlap = mbar.compute_overlap()["matrix"]
    order = np.argsort(data.centres)
    neighbours = [overlap[i, j] for i, j in zip(order, np.roll(order, -1))]  # around the circle
    return value, stderr, {"samples_per_window": n_k.tolist(), "min_neighbour_overlap": float(min(neighbours))}
