"""Wasserstein-2 distances between a generator's samples and reference samples: the metrics the
peptide Boltzmann-generator literature reports (energy-W2, torus-W2 on backbone torsions, TICA-W2),
computed exactly on the given points by optimal transport (POT), with the generator's importance
weights as its marginal for the reweighted variants.

Each is only meaningful beside its noise floor, the same distance between two independent halves of
the reference (:func:`noise_floor`).

Example:
    >>> import numpy as np
    >>> u = np.array([0.0, 1.0, 2.0])
    >>> round(energy_w2(u + 0.5, u), 6)
    0.5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from .data import zero_weight_nonfinite
from .errors import MlmolError

if TYPE_CHECKING:
    import mdtraj


def marginal(n: int, log_weights: np.ndarray | None) -> np.ndarray:
    """The probabilities ``[n]`` of n samples: uniform, or normalised exp(``log_weights``) (non-finite
    entries: zero weight); refuses weights that are all zero."""
    if log_weights is None:
        return np.full(n, 1.0 / n)
    log_weights = zero_weight_nonfinite(torch.as_tensor(np.asarray(log_weights, dtype=float)))
    if log_weights.shape != (n,):
        raise MlmolError(f"expected {n} log weights, one per sample, got shape {tuple(log_weights.shape)}")
    if not bool(torch.isfinite(log_weights).any()):
        raise MlmolError("every sample has zero weight (no finite log weight): there is nothing to compare")
    return torch.softmax(log_weights, 0).numpy()


def energy_w2(energies: np.ndarray, reference: np.ndarray, log_weights: np.ndarray | None = None) -> float:
    """W2 between two one-dimensional samples (e.g. reduced energies, kT) ``[n]`` and ``[m]``; with
    ``log_weights`` ``[n]`` the first sample is weighted (reweighted to the target)."""
    import ot

    energies, reference = np.asarray(energies, dtype=float), np.asarray(reference, dtype=float)
    return float(np.sqrt(ot.emd2_1d(energies, reference, marginal(len(energies), log_weights),
                                    marginal(len(reference), None))))


def euclidean_w2(x: np.ndarray, reference: np.ndarray, log_weights: np.ndarray | None = None) -> float:
    """W2 between point clouds ``[n, d]`` and ``[m, d]`` under the Euclidean cost (e.g. TICA coordinates)."""
    x, reference = np.asarray(x, dtype=float), np.asarray(reference, dtype=float)
    cost = sum((x[:, None, k] - reference[None, :, k]) ** 2 for k in range(x.shape[1]))
    return _transport(cost, log_weights)


def torus_w2(angles: np.ndarray, reference: np.ndarray, log_weights: np.ndarray | None = None) -> float:
    """W2 between angle samples ``[n, k]`` and ``[m, k]`` (radians) on the k-torus: the cost of a pair
    is Σ over angles of the squared shortest arc, min(|Δ|, 2π − |Δ|)²."""
    angles, reference = np.asarray(angles, dtype=float), np.asarray(reference, dtype=float)
    cost = np.zeros((len(angles), len(reference)))
    for k in range(angles.shape[1]):  # one angle at a time: [n, m] memory, not [n, m, k]
        difference = np.abs(angles[:, None, k] - reference[None, :, k]) % (2 * np.pi)
        cost += np.minimum(difference, 2 * np.pi - difference) ** 2
    return _transport(cost, log_weights)


def _transport(cost: np.ndarray, log_weights: np.ndarray | None) -> float:
    """√ of the optimal transport cost between the rows (weighted) and the columns (uniform) of ``cost``."""
    import ot

    n, m = cost.shape
    if n * m > 10**8:
        raise MlmolError(f"{n} × {m} samples make a {n * m:,}-entry transport problem; compare at most about "
                         "10,000 of each (subsample first)")
    value, log = ot.emd2(marginal(n, log_weights), marginal(m, None), cost, numItermax=10**8, log=True)
    if log.get("warning"):  # the network simplex stopped before the optimum: the distance would be wrong
        raise MlmolError(f"optimal transport between {n} and {m} samples did not converge ({log['warning']}); "
                         "compare fewer samples")
    return float(np.sqrt(max(float(value), 0.0)))


def reference_halves(frames: int, chains: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The indices of two independent halves of ``frames`` reference frames stored frame-major over
    ``chains`` independent chains (frame i belongs to chain i mod chains), each in random order: the first
    and the second half of the chains or, for one chain, of its time."""
    index = np.arange(frames)
    parts = ((index % chains < chains // 2, index % chains >= chains // 2) if chains > 1 else
             (index < frames // 2, index >= frames // 2))
    return tuple(rng.permutation(index[part]) for part in parts)


def noise_floor(distance: Callable[[np.ndarray, np.ndarray], float], reference: np.ndarray, n: int,
                seed: int = 0, chains: int = 1) -> float:
    """``distance`` between ``n`` samples of each of two independent halves of ``reference``
    (:func:`reference_halves`): the value a perfect generator would get on ``n`` samples, given the
    reference's own noise."""
    a, b = reference_halves(len(reference), chains, np.random.default_rng(seed))
    if min(len(a), len(b)) < n:
        raise MlmolError(f"the noise floor at {n} samples needs {n} reference samples in each half; the reference's "
                         f"halves have {len(a)} and {len(b)}: compare fewer samples or run a longer reference")
    return distance(reference[a[:n]], reference[b[:n]])


def backbone_angles(x: np.ndarray, topology: mdtraj.Topology) -> np.ndarray:
    """Every residue's backbone φ and ψ ``[n, k]`` (radians) of configurations ``[n, 3N]`` (nm), the
    torsions torus-W2 compares (mdtraj's definitions: φ where a residue has a preceding C, ψ a following N)."""
    import mdtraj

    trajectory = mdtraj.Trajectory(np.asarray(x, dtype=np.float32).reshape(len(x), -1, 3), topology)
    return np.concatenate([mdtraj.compute_phi(trajectory)[1], mdtraj.compute_psi(trajectory)[1]], axis=1)


def tica_features(x: np.ndarray, topology: mdtraj.Topology) -> np.ndarray:
    """TICA input features ``[n, f]`` of configurations ``[n, 3N]`` (nm): sin and cos of the backbone φ, ψ
    and ω, and the distances between all pairs of C, N and S atoms (nm)."""
    import mdtraj

    trajectory = mdtraj.Trajectory(np.asarray(x, dtype=np.float32).reshape(len(x), -1, 3), topology)
    torsions = np.concatenate([f(trajectory)[1] for f in (mdtraj.compute_phi, mdtraj.compute_psi,
                                                           mdtraj.compute_omega)], axis=1)
    heavy = topology.select("symbol == C or symbol == N or symbol == S")
    i, j = np.triu_indices(len(heavy), k=1)
    distances = mdtraj.compute_distances(trajectory, np.stack([heavy[i], heavy[j]], axis=1))
    return np.concatenate([np.sin(torsions), np.cos(torsions), distances], axis=1)


def fit_tica(trajectories: Sequence[np.ndarray], lag: int, dim: int = 2) -> Callable[[np.ndarray], np.ndarray]:
    """TICA (deeptime) fitted on time-ordered feature trajectories ``[T_k, f]`` at ``lag`` frames; returns
    the projection of features ``[n, f]`` onto the ``dim`` slowest components ``[n, dim]``."""
    from deeptime.decomposition import TICA

    if any(len(t) <= lag for t in trajectories):
        raise MlmolError(f"TICA at lag {lag} needs trajectories longer than {lag} frames; use a shorter lag")
    model = TICA(lagtime=lag, dim=dim).fit(list(trajectories)).fetch_model()
    return model.transform


def reference_tica(md: np.ndarray, topology: mdtraj.Topology, lag: int = 10,
                   dim: int = 2) -> Callable[[np.ndarray], np.ndarray]:
    """TICA fitted on time-ordered MD trajectories of the reference's ensemble ``[chains, frames, 3N]``
    (nm), on :func:`tica_features`, at ``lag`` frames; returns the projection of configurations
    ``[n, 3N]`` onto the ``dim`` slowest components."""
    if md.ndim != 3:
        raise MlmolError(f"TICA needs trajectories [chains, frames, 3N], got shape {tuple(md.shape)}")
    project = fit_tica([tica_features(trajectory, topology) for trajectory in md], lag, dim)
    return lambda x: project(tica_features(x, topology))
