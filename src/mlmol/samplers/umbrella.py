"""Umbrella sampling and MBAR free energies (pymbar): torsions with OpenMM, any variable with MCMC.

A reference for Boltzmann generators that does not use them: window k restrains the T
variables with u_k = Σ_t ½ K_kt d(θ_t, θ_kt)² (d the periodic difference for torsions),
each window runs Langevin MD (molecules) or Metropolis chains (any energy), traces are
subsampled by their statistical inefficiency, and MBAR reweights all windows to the
unbiased ensemble. Restraining φ and ψ together (a 2D grid) removes the ψ hysteresis that
makes φ-only windows of alanine dipeptide disagree between repeats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import MlmolError
from ..estimators import Profile, mbar_split_delta_f
from ..geometry import dihedral
from ..progress import progress as progress_bar
from ..systems.base import Energy, check_finite
from ..systems.particles import ParticleSystem
from .md import MolecularDynamics, flat_bottom_restraint, torsion_restraint

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import ArrayLike

    from ..systems.molecule import Molecule


@dataclass
class UmbrellaTraces:
    """Traces of the restrained variables per window ``[n_k, T]``, window centres ``[W, T]``, force
    constants ``[W, T]`` (energy / unit²) and kT (same energy unit). Torsions (``periodic``) are in
    radians with kJ/mol; reduced energies use kT = 1. ``held`` (MD with ``hold_trans`` only): the
    held torsions per window ``[n_k, H]`` (radians), recorded with the traces, so that one can check
    that no peptide bond left trans; ``order``: the windows in the order they were run."""

    centres: np.ndarray
    force_constants: np.ndarray
    traces: list[np.ndarray]
    kT: float
    periodic: bool = True
    held: list[np.ndarray] | None = None
    order: np.ndarray | None = None

    def save(self, path: str | Path) -> None:
        """Write everything to one ``.npz`` file (atomically)."""
        from ..data import save_array

        arrays = {f"trace_{k}": t for k, t in enumerate(self.traces)}
        arrays |= {f"held_{k}": t for k, t in enumerate(self.held or [])}
        if self.order is not None:
            arrays["order"] = self.order
        save_array(path, centres=self.centres, force_constants=self.force_constants, kT=np.array(self.kT),
                   periodic=np.array(self.periodic), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> UmbrellaTraces:
        """Read traces written by :meth:`save`."""
        with np.load(path) as f:
            windows = range(len(f["centres"]))
            traces = [f[f"trace_{k}"] for k in windows]
            held = [f[f"held_{k}"] for k in windows] if "held_0" in f.files else None
            periodic = bool(f["periodic"]) if "periodic" in f.files else True
            order = f["order"] if "order" in f.files else None
            return cls(f["centres"], f["force_constants"], traces, float(f["kT"]), periodic, held, order)

    def cis_fraction(self, half_width_deg: float = 90.0) -> float:
        """Fraction of recorded frames, over all windows and held torsions, more than
        ``half_width_deg`` from trans (180°): 0 when every peptide bond stayed trans."""
        if not self.held:
            raise MlmolError("these traces hold no held-torsion records (run umbrella with hold_trans=...)")
        omega = np.concatenate([h.reshape(len(h), -1) for h in self.held])
        return float(np.mean(np.abs(_periodic(omega - np.pi)) > np.radians(half_width_deg)))

    def difference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a − b elementwise; for torsions (``periodic``) wrapped to [−π, π) radians."""
        return _periodic(a - b) if self.periodic else a - b


def _periodic(d):
    return (d + np.pi) % (2 * np.pi) - np.pi


def window_centres(step_deg: float, dims: int = 2) -> np.ndarray:
    """Window centres ``[W, dims]`` (degrees) on a periodic grid from −180° with spacing ``step_deg``."""
    axis = np.arange(-180.0, 180.0, step_deg)
    return np.stack(np.meshgrid(*[axis] * dims, indexing="ij"), -1).reshape(-1, dims)


def sweep_order(centres: np.ndarray, start: np.ndarray, reverse: bool = False) -> np.ndarray:
    """Visit every window once, always moving to the nearest unvisited one (periodic distance).

    Ties (on a grid, several neighbours are equally near) go to the lowest window index, or with
    ``reverse`` to the highest: the two sweeps run through the grid in opposite directions.

    Arguments:
        centres: window centres ``[W, T]`` (radians).
        start: where the sweep starts ``[T]`` (radians).
        reverse: break ties towards the highest window index.

    Returns:
        The window indices ``[W]`` in the order visited.

    Example:
        >>> centres = np.radians(window_centres(90.0, dims=1))  # -180°, -90°, 0°, 90°
        >>> sweep_order(centres, np.array([0.1]))
        array([2, 1, 0, 3])
        >>> sweep_order(centres, np.array([0.1]), reverse=True)
        array([2, 3, 0, 1])
    """
    left = list(range(len(centres)))
    order, here = [], np.asarray(start, dtype=float)
    while left:
        distance = np.round(np.linalg.norm(_periodic(centres[left] - here), axis=-1), 9)
        j = len(left) - 1 - int(np.argmin(distance[::-1])) if reverse else int(np.argmin(distance))
        i = left.pop(j)
        order.append(i)
        here = centres[i]
    return np.array(order)


def umbrella(system: Molecule, torsions: Sequence[Sequence[int]], centres_deg: ArrayLike,
             force_constants: float | ArrayLike = 200.0, steps: int = 20_000, equilibration: int = 5_000,
             interval: int = 100, timestep_fs: float = 1.0, seed: int = 0, progress: bool = False,
             hold_trans: Sequence[Sequence[int]] = (), positions: np.ndarray | None = None,
             reverse: bool = False) -> UmbrellaTraces:
    """Restrained MD in every window ``centres_deg`` ``[W, T]`` (degrees) on the T ``torsions``.

    One trajectory starts from ``positions`` ``[3N]`` (nm, used as given; default the system's
    structure, minimised) and visits the windows in a nearest-neighbour sweep from there (``reverse``:
    ties broken the other way, see :func:`sweep_order`), each window starting where the
    previous ended: ``equilibration`` steps, then ``steps`` steps saving the torsions every
    ``interval``. ``force_constants`` (kJ/mol/rad²): a number, one per window, or ``[W, T]``.
    ``hold_trans`` (e.g. ``peptide_bonds(topology)``) keeps those torsions within 90° of trans
    by a flat-bottom restraint, zero in the trans well: strained windows can otherwise flip a
    peptide bond to cis (seen in vacuum alanine dipeptide), a state 300 K MD never reaches,
    and the sweep then carries cis into every later window. The held torsions are recorded
    with the traces (``UmbrellaTraces.held``).

    Arguments:
        system: a molecule (MD in OpenMM at its temperature).
        torsions: the T restrained torsions, four atom indices each.
        centres_deg: window centres ``[W, T]`` (degrees).
        force_constants: kJ/mol/rad², a number, ``[W]`` or ``[W, T]``.
        steps: MD steps recorded per window.
        equilibration: MD steps per window before recording.
        interval: steps between recorded frames.
        timestep_fs: the MD time step (fs).
        seed: seeds the MD.
        progress: show a progress bar over the windows.
        hold_trans: torsions (four atom indices each) held within 90° of trans.
        positions: the starting structure ``[3N]`` (nm), or None.
        reverse: break ties of the sweep the other way.

    Returns:
        The torsion traces (radians), with the force constants (kJ/mol/rad²) and the system's kT (kJ/mol).
    """
    torsions = [tuple(int(a) for a in t) for t in torsions]
    centres = np.radians(np.asarray(centres_deg, dtype=float).reshape(-1, len(torsions)))
    ks = np.asarray(force_constants, dtype=float)
    ks = np.broadcast_to(ks[:, None] if ks.ndim == 1 else ks, centres.shape).copy()  # per window, or [W, T]
    if np.any(ks <= 0):
        raise MlmolError("umbrella force constants must be positive")
    restraints = [torsion_restraint(str(t), atoms) for t, atoms in enumerate(torsions)]
    if len(hold_trans):
        restraints.append(flat_bottom_restraint(hold_trans))
    recorded = torsions + [tuple(int(a) for a in t) for t in hold_trans]  # the restrained, then the held
    md = MolecularDynamics(system, timestep_fs=timestep_fs, seed=seed, equilibration=0, bias=restraints,
                           positions=positions, minimize=positions is None)
    start = np.stack([dihedral(md.positions(), *atoms).numpy()[0] for atoms in torsions])
    order = sweep_order(centres, start, reverse)
    traces: list[np.ndarray | None] = [None] * len(centres)
    held: list[np.ndarray | None] = [None] * len(centres)
    windows = order
    if progress:
        windows = progress_bar(order, desc="umbrella windows", unit="window")
    for i in windows:
        for t in range(len(torsions)):
            md.context.setParameter(f"k_{t}", float(ks[i, t]))
            md.context.setParameter(f"theta0_{t}", float(centres[i, t]))
        md.integrator.step(equilibration)
        frames = md.run(steps // interval, interval)
        angles = np.stack([dihedral(frames, *atoms).numpy() for atoms in recorded], -1)
        traces[i], held[i] = angles[:, :len(torsions)], angles[:, len(torsions):]
    return UmbrellaTraces(centres, ks, traces, system.kT, held=held if len(hold_trans) else None, order=order)


def _bias(data: UmbrellaTraces, theta: np.ndarray, windows: slice | list[int] = slice(None)) -> np.ndarray:
    """Reduced bias energies ``[W, n]`` of every window (or of ``windows``) at torsions ``theta`` ``[n, T]``."""
    centres = data.centres.reshape(len(data.centres), -1)[windows]
    ks = data.force_constants.reshape(len(data.centres), -1)[windows]
    u = np.zeros((len(centres), len(theta)))
    for t in range(centres.shape[1]):
        u += 0.5 * ks[:, t, None] * data.difference(theta[None, :, t], centres[:, t, None]) ** 2 / data.kT
    return u


def _wham_f_k(data: UmbrellaTraces, theta: np.ndarray, n_k: np.ndarray, bins: int = 72) -> np.ndarray:
    """Window free energies by binned WHAM, minimising its convex likelihood with L-BFGS: a
    fast starting point with which MBAR converges in a few iterations even for hundreds of windows."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp, softmax

    lo = np.full(theta.shape[1], -np.pi) if data.periodic else theta.min(0)
    width = (np.full(theta.shape[1], 2 * np.pi) if data.periodic else theta.max(0) - lo + 1e-12) / bins
    index = np.floor((theta - lo) / width).astype(int).clip(0, bins - 1)
    flat = np.ravel_multi_index(index.T, (bins,) * theta.shape[1])
    occupied, counts = np.unique(flat, return_counts=True)
    centres = np.stack(np.unravel_index(occupied, (bins,) * theta.shape[1]), -1) * width + lo + width / 2
    log_n_minus_u = np.log(n_k)[:, None] - _bias(data, centres)  # [W, B]

    def objective(f):  # −log-likelihood: Σ_b c_b log Σ_k N_k e^{f_k − u_kb} − Σ_k N_k f_k
        a = log_n_minus_u + f[:, None]
        return counts @ logsumexp(a, axis=0) - n_k @ f, softmax(a, axis=0) @ counts - n_k

    f = minimize(objective, np.zeros(len(n_k)), jac=True, method="L-BFGS-B", options={"maxiter": 5000}).x
    return f - f[0]


def in_first_torsion(low: float = 0.0, high: float = math.pi) -> Callable[[np.ndarray], np.ndarray]:
    """The state ``low < θ_0 < high`` (radians) of the first torsion, e.g. φ > 0."""
    return lambda theta: (theta[:, 0] > low) & (theta[:, 0] < high)


def statistical_inefficiency(data: UmbrellaTraces, window: int) -> float:
    """Window ``window``'s statistical inefficiency g (frames per independent sample), the largest
    of pymbar's estimates for each restrained variable (cos and sin of each torsion) and for the
    window's own bias energy: conservative where one variable decorrelates more slowly."""
    from pymbar import timeseries

    trace = data.traces[window].reshape(len(data.traces[window]), -1)
    signals = [*(np.concatenate([np.cos(trace), np.sin(trace)], -1) if data.periodic else trace).T,
               _bias(data, trace, [window])[0]]
    return max(float(timeseries.statistical_inefficiency(signal)) for signal in signals)


def _subsampled(data: UmbrellaTraces, subsample: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All windows' kept samples ``[N, T]``, samples per window ``[W]`` and biases ``u_kn`` ``[W, N]``."""
    from pymbar import timeseries

    kept = []
    for k, trace in enumerate(data.traces):
        trace = trace.reshape(len(trace), -1)
        if subsample and len(trace) > 10:
            kept.append(trace[timeseries.subsample_correlated_data(np.arange(len(trace)),
                                                                    g=statistical_inefficiency(data, k))])
        else:
            kept.append(trace)
    theta = np.concatenate(kept)
    return theta, np.array([len(t) for t in kept]), _bias(data, theta)


def mbar_delta_f(data: UmbrellaTraces, inside: Callable[[np.ndarray], np.ndarray] | None = None,
                 subsample: bool = True) -> tuple[float, float, dict[str, Any]]:
    """F(inside) − F(rest) in kT by MBAR over all windows; returns (value, stderr, details).

    ``inside`` maps traces ``[n, T]`` to a boolean mask (default: 0 < θ_0 < π). ``details``
    holds the samples kept per window, MBAR's overlap matrix ``[W, W]`` (``overlap``) and the
    smallest, over windows, of a window's largest overlap with any other window (near 0 means an
    isolated window: add windows around it). ``subsample``: keep every g-th frame of each window
    (:func:`statistical_inefficiency`).
    """
    from pymbar import MBAR

    inside = inside or in_first_torsion()
    theta, n_k, u_kn = _subsampled(data, subsample)
    mbar = MBAR(u_kn, n_k, initial_f_k=_wham_f_k(data, theta, n_k))
    mask = inside(theta)
    if mask.all() or not mask.any():
        raise MlmolError("every sample falls on one side of the state; the windows do not cover both states")
    value, stderr = mbar_split_delta_f(mbar, mask)
    matrix = mbar.compute_overlap()["matrix"]
    overlap = matrix.copy()
    np.fill_diagonal(overlap, 0.0)
    return value, stderr, {"samples_per_window": n_k.tolist(), "min_neighbour_overlap": float(overlap.max(1).min()),
                           "overlap": matrix}


def mbar_profile(data: UmbrellaTraces, edges: ArrayLike, subsample: bool = True) -> Profile:
    """Free-energy profile (kT, lowest bin 0) along the first variable by MBAR (pymbar's FES), with
    its analytical uncertainties; empty bins are NaN.

    Arguments:
        data: the umbrella traces.
        edges: bin edges ``[bins + 1]`` along the first variable (its units: radians for torsions).
        subsample: keep every g-th frame of each window (:func:`statistical_inefficiency`).
    """
    from pymbar import FES

    edges = np.asarray(edges, dtype=float)
    theta, n_k, u_kn = _subsampled(data, subsample)
    fes = FES(u_kn, n_k, mbar_options={"initial_f_k": _wham_f_k(data, theta, n_k)})
    x = theta[:, 0]
    inside = (x >= edges[0]) & (x < edges[-1])
    fes.generate_fes(np.zeros(len(x)), x, fes_type="histogram", histogram_parameters={"bin_edges": [edges]})
    centres = 0.5 * (edges[1:] + edges[:-1])
    filled = np.histogram(x[inside], bins=edges)[0] > 0
    result = fes.get_fes(centres[filled], reference_point="from-lowest", uncertainty_method="analytical")
    f, stderr = np.full(len(centres), np.nan), np.full(len(centres), np.nan)
    f[filled] = result["f_i"] - np.log(np.diff(edges)[filled])  # −log density, as Profile defines it
    stderr[filled] = result["df_i"]
    return Profile(edges, f - np.nanmin(f), stderr)


class _Restrained(Energy):
    """``system`` plus ½ K (θ(x) − θ_c)² with one centre θ_c per chain (rows of x)."""

    def __init__(self, system: Energy, variable: Callable[[torch.Tensor], torch.Tensor], centres: torch.Tensor,
                 force_constant: float):
        super().__init__(system.dim)
        self.system, self.variable, self.force_constant = system, variable, force_constant
        self.register_buffer("centres", centres)

    def bias(self, x: torch.Tensor) -> torch.Tensor:
        """½ K (θ(x) − θ_c)² per chain."""
        return 0.5 * self.force_constant * (self.variable(x) - self.centres) ** 2

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.system.energy(x) + self.bias(x)


def umbrella_mcmc(system: Energy, variable: Callable[[torch.Tensor], torch.Tensor], centres: ArrayLike,
                  force_constant: float,
                  start: Callable[[float], torch.Tensor], steps: int = 50_000, burn: int = 10_000,
                  interval: int = 50, chains: int = 8, step: float = 0.02, seed: int = 0,
                  progress: bool = False, moves: str = "all") -> UmbrellaTraces:
    """Umbrella sampling of any energy along ``variable(x)`` with Metropolis chains, all windows at once.

    ``chains`` independent chains per window centre start at ``start(centre)`` (a configuration
    ``[dim]``), run ``burn`` then ``steps`` Metropolis steps under u(x) + ½ K (θ(x) − θ_k)² (K =
    ``force_constant`` in kT / unit²) and record θ every ``interval`` steps. ``moves="all"``: a
    step moves every coordinate by N(0, ``step``²); ``moves="particle"`` (a
    :class:`~mlmol.systems.particles.ParticleSystem`): a step is a sweep of single-particle moves
    (:func:`particle_sweep`).
    Returns traces in reduced units (kT = 1) for :func:`mbar_delta_f` and :func:`mbar_profile`.

    Arguments:
        system: the reduced energy (kT).
        variable: the restrained variable, ``[n, dim] -> [n]``.
        centres: window centres ``[W]`` (the variable's units).
        force_constant: K (kT / unit²).
        start: a configuration ``[dim]`` for a window centre.
        steps: Metropolis steps (or sweeps) recorded.
        burn: steps (or sweeps) before recording.
        interval: steps between recorded values.
        chains: chains per window.
        step: the proposal's standard deviation per coordinate.
        seed: seeds the chains.
        progress: show a progress bar.
        moves: ``"all"`` or ``"particle"``.

    Returns:
        Traces ``[chains · steps / interval, 1]`` per window, chain after chain (not periodic).
    """
    from .mcmc import metropolis, particle_sweep

    centres = np.asarray(centres, dtype=float).reshape(-1)
    per_chain = torch.as_tensor(np.repeat(centres, chains))
    starts = torch.stack([torch.as_tensor(start(float(c)), dtype=torch.float64) for c in per_chain.tolist()])
    biased = _Restrained(system, variable, per_chain, force_constant)
    kept = steps // interval
    if moves == "all":
        x = metropolis(biased, kept * len(starts), seed=seed, starts=starts, step=step, chains_per_start=1,
                       burn=burn, thin=interval, progress=progress)
        theta = variable(x).reshape(kept, len(centres), chains).numpy()
    elif moves == "particle":
        if not isinstance(system, ParticleSystem):
            raise MlmolError(f"{system.name} is not a system of particles (no particle_energy): use moves='all'")
        g = torch.Generator().manual_seed(seed)
        check_finite(biased, starts, "umbrella starting points")
        x = starts
        u = biased.energy(x)

        sweeps = range(burn + steps)
        if progress:
            sweeps = progress_bar(sweeps, desc="umbrella sweeps", unit="sweep")
        recorded = []
        for k in sweeps:
            x, u, _ = particle_sweep(system, x, u, g, step, biased.bias)
            if k >= burn and (k - burn) % interval == interval - 1:
                recorded.append(variable(x))
        theta = torch.stack(recorded).reshape(kept, len(centres), chains).numpy()
    else:
        raise MlmolError(f"unknown moves {moves!r}: use 'all' or 'particle'")
    traces = [theta[:, k, :].T.reshape(-1, 1) for k in range(len(centres))]  # chain after chain
    ks = np.full((len(centres), 1), float(force_constant))
    return UmbrellaTraces(centres[:, None], ks, traces, 1.0, periodic=False)
