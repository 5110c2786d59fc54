"""A native batched PyTorch force field read from an OpenMM ``System``.

Evaluates the potential energy of a whole batch of configurations ``[B, 3N]`` (nm) at once, on
CPU or GPU, in float32 or float64, with forces (bonded terms by autograd, the two pair terms in
closed form) and no call into OpenMM. The batch is the innermost axis of every array, so
configurations sit side by side in SIMD lanes; bonded terms read their bond vectors from one
product with a ±1 incidence matrix, pair terms visit each unordered pair once in a circulant
layout ``[N, N/2, B]`` (:class:`Pairs`), and ``torch.compile`` fuses it all. The terms follow
OpenMM's definitions (kJ/mol, nm, radians, elementary charges):

- ``HarmonicBondForce``      ½ k (r − r₀)²
- ``HarmonicAngleForce``     ½ k (θ − θ₀)²
- ``PeriodicTorsionForce``   k (1 + cos(n φ − φ₀)), proper and improper alike
- ``NonbondedForce``         (``NoCutoff`` only) Σ 4ε((σ/r)¹² − (σ/r)⁶) + q_i q_j / (4πε₀ r) over
                             pairs, Lorentz–Berthelot combining, exceptions (scaled 1-4 pairs)
                             with their own parameters, excluded pairs left out
- ``GBSAOBCForce``           OBC2 generalised Born (Onufriev, Bashford & Case 2004; α, β, γ =
                             1, 0.8, 4.85; dielectric offset 0.009 nm) with the ACE surface term
                             (probe 0.14 nm), as OpenMM's reference platform computes it
- ``CustomGBForce``          as OpenMM's implicit-solvent files build it (implicit/obc1.xml, obc2,
                             hct, gbn, gbn2; no salt, no cutoff), recognised by its expressions
                             (:func:`born_model`)

Anything else (constraints, cutoffs, other custom forces) raises an error that names it and points to
the OpenMM bridge (``backend="openmm"``). ``CMMotionRemover`` has no energy and is ignored.

Overlapping atoms: squared distances are floored at ``MIN_DISTANCE²`` (1e-6 nm) so energies
stay finite (huge) in float64; in float32 the Lennard-Jones term overflows to +inf below about
σ/1500 (tested; see the molecules guide, docs/molecules.md).
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import MlmolError
from ..units import kT_kj_mol
from .base import Energy

if TYPE_CHECKING:
    import openmm
    from openmm import app

ONE_4PI_EPS0 = 138.93545764438198  # kJ mol⁻¹ nm e⁻²
MIN_DISTANCE = 1e-6  # nm
OBC = {"alpha": 1.0, "beta": 0.8, "gamma": 4.85, "offset": 0.009, "probe": 0.14}  # OBC2, nm
SUPPORTED = ("HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce", "GBSAOBCForce",
             "CustomGBForce (OpenMM's implicit-solvent files)")
IGNORED = ("CMMotionRemover",)
CPU_CHUNK = 2048  # configurations per CPU piece at most (compiled alanine dipeptide: the fastest of 256-4096)
PAIR_BUDGET = {"cpu": 2**22, "other": 2**28}  # atom pairs × configurations per piece, at most


class UnsupportedForce(MlmolError):
    """The system holds a force (or a setting) the torch force field does not implement."""


def _value(quantity) -> float:
    """A plain float in OpenMM's MD units (nm, ps, kJ/mol, e, radians) from a Quantity or a number."""
    from openmm import unit

    return quantity.value_in_unit_system(unit.md_unit_system) if unit.is_quantity(quantity) else float(quantity)


def _column(rows: list, k: int) -> torch.Tensor:
    """The ``k``-th entries of parameter rows as a float64 tensor in MD units."""
    return torch.tensor([_value(row[k]) for row in rows], dtype=torch.float64)


def _norm(v: torch.Tensor) -> torch.Tensor:
    """|v| over the component axis (1) of vectors ``[V, 3, B]``, floored at MIN_DISTANCE."""
    return torch.sqrt((v * v).sum(1).clamp_min(MIN_DISTANCE**2))


def _cross(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """u × v for vectors ``[V, 3, B]`` (components on axis 1)."""
    return torch.linalg.cross(u, v, dim=1)


def _dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u * v).sum(1)


class Geometry:
    """What the terms read from positions, computed once per call.

    The batch is the last, contiguous axis of everything (configurations side by side in SIMD
    lanes; sums over atoms and pairs are then plain vector additions):

    - ``positions`` ``[N, 3, B]`` nm (the pair terms take their differences from them);
    - ``vectors`` ``[V, 3, B]``: the vectors x_j − x_i the bonded terms asked for, as one product
      with a ±1 incidence matrix ``[V, N]`` (its backward is a product too, not a scatter).
    """

    def __init__(self, positions: torch.Tensor, incidence: torch.Tensor) -> None:
        """``positions`` ``[N, 3, B]`` nm, contiguous; ``incidence`` ``[V, N]`` (±1 entries)."""
        n_atoms, batch = positions.shape[0], positions.shape[2]
        self.positions = positions
        self.vectors = None
        if incidence.shape[0]:
            self.vectors = (incidence @ self.positions.reshape(n_atoms, 3 * batch)).reshape(-1, 3, batch)


class _Term(nn.Module):
    """One OpenMM force: ``energy(vectors, geometry)`` ``[B]`` in kJ/mol.

    A bonded term lists the atom pairs (i, j) of the vectors x_j − x_i it needs in ``pairs``;
    it receives them, in that order, as ``vectors`` ``[len(pairs), 3, B]``. Its parameters are
    columns ``[V, 1]``.
    """

    def __init__(self, name: str, group: int):
        super().__init__()
        self.name, self.group, self.pairs = name, group, []

    def index(self, rows: Sequence[Sequence[Any]], *vectors: tuple[int, int]) -> None:
        """Ask for the vectors x[row[b]] − x[row[a]] of every row, for each (a, b) in ``vectors``
        (``rows``: OpenMM parameter lists, atom indices first)."""
        self.pairs += [(row[a], row[b]) for a, b in vectors for row in rows]

    def parameter(self, name: str, rows: Sequence[Sequence[Any]], k: int) -> None:
        """Register the ``k``-th entries of ``rows`` (MD units) as the float64 buffer ``name`` ``[V, 1]``."""
        self.register_buffer(name, _column(rows, k)[:, None])


class HarmonicBonds(_Term):
    """OpenMM's ``HarmonicBondForce``: ½ k (r − r₀)² (k in kJ/mol/nm², r₀ in nm).

    Arguments:
        force: the ``openmm.HarmonicBondForce``.
        group: its OpenMM force group.
    """

    def __init__(self, force: openmm.HarmonicBondForce, group: int) -> None:
        super().__init__("HarmonicBondForce", group)
        rows = [force.getBondParameters(b) for b in range(force.getNumBonds())]
        self.index(rows, (0, 1))
        self.parameter("length", rows, 2)
        self.parameter("k", rows, 3)

    def forward(self, vectors: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """Energy ``[B]`` (kJ/mol) from the bond vectors ``[bonds, 3, B]`` (nm)."""
        return (0.5 * self.k * (_norm(vectors) - self.length) ** 2).sum(0)


class HarmonicAngles(_Term):
    """OpenMM's ``HarmonicAngleForce``: ½ k (θ − θ₀)² (k in kJ/mol/rad², θ₀ in radians).

    Arguments:
        force: the ``openmm.HarmonicAngleForce``.
        group: its OpenMM force group.
    """

    def __init__(self, force: openmm.HarmonicAngleForce, group: int) -> None:
        super().__init__("HarmonicAngleForce", group)
        rows = [force.getAngleParameters(a) for a in range(force.getNumAngles())]
        self.index(rows, (1, 0), (1, 2))
        self.parameter("angle", rows, 3)
        self.parameter("k", rows, 4)

    def forward(self, vectors: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """Energy ``[B]`` (kJ/mol) from the two arm vectors of each angle, ``[2 · angles, 3, B]`` (nm)."""
        u, v = vectors.chunk(2)
        theta = torch.atan2(_norm(_cross(u, v)), _dot(u, v))  # stable near 0 and π
        return (0.5 * self.k * (theta - self.angle) ** 2).sum(0)


class PeriodicTorsions(_Term):
    """OpenMM's ``PeriodicTorsionForce``: k (1 + cos(n φ − φ₀)) (k in kJ/mol, φ₀ in radians).

    Arguments:
        force: the ``openmm.PeriodicTorsionForce``.
        group: its OpenMM force group.
    """

    def __init__(self, force: openmm.PeriodicTorsionForce, group: int) -> None:
        super().__init__("PeriodicTorsionForce", group)
        rows = [force.getTorsionParameters(t) for t in range(force.getNumTorsions())]
        self.index(rows, (0, 1), (1, 2), (2, 3))
        self.parameter("periodicity", rows, 4)
        self.parameter("phase", rows, 5)
        self.parameter("k", rows, 6)

    def forward(self, vectors: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """Energy ``[B]`` (kJ/mol) from the three bond vectors of each torsion, ``[3 · torsions, 3, B]`` (nm)."""
        b1, b2, b3 = vectors.chunk(3)
        n1, n2 = _cross(b1, b2), _cross(b2, b3)
        # φ = atan2(|b2| b1·n2, n1·n2): the IUPAC torsion (trans = π), as OpenMM's
        phi = torch.atan2(_norm(b2) * _dot(b1, n2), _dot(n1, n2))
        return (self.k * (1 + torch.cos(self.periodicity * phi - self.phase))).sum(0)


class Pairs(nn.Module):
    """Every unordered atom pair once, in a circulant layout ``[N, K]`` with K = N // 2: row i,
    column k holds the pair of atom i and its partner i + k + 1 (mod N). For an even N the last
    column lists each of its pairs twice; ``unique`` ``[N, K]`` keeps the first. Pair arrays
    ``[N, K, B]`` hold half the entries of all ordered pairs ``[N, N, B]``; partners are read
    through a strided view and sums over partners are rolls, so the pair loops fuse under
    ``torch.compile`` (no gather, no scatter).

    Arguments:
        n_atoms: the number of atoms N.
    """

    def __init__(self, n_atoms: int) -> None:
        super().__init__()
        self.n_atoms, self.width = n_atoms, n_atoms // 2
        rows, columns = torch.arange(n_atoms)[:, None], torch.arange(self.width)[None, :]
        twice = (n_atoms % 2 == 0) & (columns == self.width - 1) & (rows >= self.width)
        self.register_buffer("unique", ~twice)

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        """A pair parameter ``[N, K, 1]`` from a symmetric matrix ``[N, N]``, zero on repeated pairs."""
        rows, columns = torch.arange(self.n_atoms)[:, None], torch.arange(self.width)[None, :]
        return torch.where(self.unique, values[rows, (rows + columns + 1) % self.n_atoms], 0.0)[..., None]

    def of_partner(self, values: torch.Tensor) -> torch.Tensor:
        """Per-atom ``values`` ``[N, ...]`` at the partner of every pair: a view ``[N, K, ...]``."""
        wrapped = torch.cat([values, values[:self.width]])  # row t: atom t mod N, so no modulo below
        size = wrapped[0].numel()  # (i, k) → row i + k + 1
        return wrapped.as_strided((self.n_atoms, self.width, *values.shape[1:]), (size, size, *wrapped.stride()[1:]),
                                  size)

    def partner_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Σ over the pairs whose partner is atom i, of a pair array ``[N, K, ...]``: ``[N, ...]``
        (column k rolled down by k + 1 rows; faster than a strided view or a scatter, compiled
        or eager)."""
        total = values.new_zeros(values.shape[:1] + values.shape[2:])
        return sum((values[:, k].roll(k + 1, 0) for k in range(self.width)), total)

    def differences(self, positions: torch.Tensor) -> torch.Tensor:
        """x_i − x_j ``[N, K, 3, B]`` of every pair, from positions ``[N, 3, B]``."""
        return positions[:, None] - self.of_partner(positions)

    def gradient(self, weight: torch.Tensor, differences: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
        """dE/dx ``[N, 3, B]`` from dE/d(r²) of every pair ``weight`` ``[N, K, B]``: each pair pulls on
        its two atoms with 2 w (x_i − x_j) and its opposite. Pairs closer than MIN_DISTANCE (whose
        r² is floored) contribute nothing, as autograd through the floor gives."""
        pull = torch.where(r2 < MIN_DISTANCE**2, 0.0, 2 * weight)[:, :, None] * differences
        return pull.sum(1) - self.partner_sum(pull)


class _PairTerm(_Term):
    """A term over all atom pairs whose gradient is written out in closed form
    (``energy_and_gradient``), evaluated through :class:`_AnalyticEnergy`."""

    def __init__(self, name: str, group: int, n_atoms: int):
        super().__init__(name, group)
        self.pair_list = Pairs(n_atoms)

    def geometry(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Differences ``[N, K, 3, B]``, squared distances and inverse distances ``[N, K, B]`` (nm)."""
        d = self.pair_list.differences(positions)
        r2 = (d * d).sum(2)
        return d, r2, torch.rsqrt(r2.clamp_min(MIN_DISTANCE**2))

    def forward(self, vectors: torch.Tensor | None, geometry: Geometry) -> torch.Tensor:
        """Energy ``[B]`` (kJ/mol) from ``geometry.positions`` (``vectors`` is unused), closed-form gradient."""
        return _AnalyticEnergy.apply(geometry.positions, self)


class Nonbonded(_PairTerm):
    """Lennard-Jones and Coulomb over all pairs without cutoff, with pair parameters ``[N, K, 1]``:
    Lorentz–Berthelot pairs, exceptions in their place, excluded pairs zero.

    Arguments:
        force: the ``openmm.NonbondedForce`` (``NoCutoff``, no parameter offsets).
        group: its OpenMM force group.
    """

    def __init__(self, force: openmm.NonbondedForce, group: int) -> None:
        super().__init__("NonbondedForce", group, force.getNumParticles())
        from openmm import NonbondedForce

        if force.getNonbondedMethod() != NonbondedForce.NoCutoff:
            raise UnsupportedForce("the torch force field supports NonbondedForce only without cutoff (NoCutoff); "
                                   "build the system with nonbondedMethod=app.NoCutoff or use backend='openmm'")
        if force.getNumParticleParameterOffsets() or force.getNumExceptionParameterOffsets():
            raise UnsupportedForce("NonbondedForce parameter offsets are not supported by the torch force field; "
                                   "use backend='openmm'")
        particles = [force.getParticleParameters(i) for i in range(force.getNumParticles())]
        charge, sigma, epsilon = (_column(particles, k) for k in range(3))
        charge_product = charge[:, None] * charge[None, :]
        sigma = 0.5 * (sigma[:, None] + sigma[None, :])
        epsilon = torch.sqrt(epsilon[:, None] * epsilon[None, :])
        exceptions = [force.getExceptionParameters(e) for e in range(force.getNumExceptions())]
        if exceptions:
            i, j = (torch.tensor([e[k] for e in exceptions]) for k in (0, 1))
            for matrix, k in ((charge_product, 2), (sigma, 3), (epsilon, 4)):
                matrix[i, j] = matrix[j, i] = _column(exceptions, k)  # excluded pairs: zeros
        sigma[epsilon == 0] = 0.0  # no 0 × inf in float32 when the atoms overlap
        self.register_buffer("charge_product", self.pair_list.matrix(ONE_4PI_EPS0 * charge_product))  # kJ/mol nm
        self.register_buffer("sigma2", self.pair_list.matrix(sigma**2))
        self.register_buffer("epsilon", self.pair_list.matrix(4 * epsilon))  # 4ε

    def energy_and_gradient(self, positions: torch.Tensor,
                            gradient: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Energy ``[B]`` kJ/mol and, if ``gradient``, dE/dx ``[N, 3, B]`` kJ/mol/nm (else None) from positions
        ``[N, 3, B]`` nm."""
        d, r2, inverse_r = self.geometry(positions)
        inverse_r2 = inverse_r * inverse_r
        s6 = (self.sigma2 * inverse_r2) ** 3
        lennard_jones, coulomb = self.epsilon * (s6 * s6 - s6), self.charge_product * inverse_r
        energy = (lennard_jones + coulomb).sum((0, 1))
        if not gradient:
            return energy, None
        weight = (-3 * self.epsilon * (2 * s6 * s6 - s6) - 0.5 * coulomb) * inverse_r2  # dE/d(r²)
        return energy, self.pair_list.gradient(weight, d, r2)


_NUMBER = r"([-+0-9.eE]+)"
_VDW = ("select(step(r+sr2-or1), 0.5*(1/L-1/U+0.25*(r-sr2^2/r)*(1/(U^2)-1/(L^2))+0.5*log(L/U)/r), 0);"
        "U=r+sr2;L=max(or1, D);D=abs(r-sr2)")
_NECK = ("Ivdw+neckScale*Ineck;Ineck=step(radius1+radius2+neckCut-r)*getm0(radindex1,radindex2)/(1+100*(r-getd0("
         "radindex1,radindex2))^2+0.3*1000000*(r-getd0(radindex1,radindex2))^6);Ivdw=" + _VDW + ";radius1=or1+offset; "
         "radius2=or2+offset;neckScale={}; neckCut={}; offset={}")
_OBC_RADII = "1/(1/or-tanh({})/radius);psi=I*or; radius=or+offset; offset={}"
_HCT_RADII = "1/(1/or-I)"
# the tanh polynomials of OpenMM's generators: OBC1, OBC2, GBn (α, β, γ), GBn2 (per atom)
_POLYNOMIALS = {"0.8*psi+2.909125*psi^3": ("OBC1", (0.8, 0.0, 2.909125)),
                "psi-0.8*psi^2+4.85*psi^3": ("OBC2", (1.0, 0.8, 4.85)),
                "1.09511284*psi-1.907992938*psi^2+2.50798245*psi^3": ("GBn", (1.09511284, 1.907992938, 2.50798245)),
                "alpha*psi-beta*psi^2+gamma*psi^3": ("GBn2", None)}
_DIELECTRICS = "; solventDielectric={}; soluteDielectric={}; kappa=0; offset={}"
_SELF = "-0.5*138.935485*(1/soluteDielectric-1/solventDielectric)*charge^2/B" + _DIELECTRICS
_ACE = "28.3919551*(radius+0.14)^2*(radius/B)^6; radius=or+offset" + _DIELECTRICS
_PAIR = ("-138.935485*(1/soluteDielectric-1/solventDielectric)*charge1*charge2/f;"
         "f=sqrt(r^2+B1*B2*exp(-r^2/(4*B1*B2)))" + _DIELECTRICS)


def _match(template: str, text: str) -> list[float] | None:
    """The numbers in ``text`` where ``template`` has ``{}`` (None if the rest differs)."""
    found = re.fullmatch(re.escape(template).replace(r"\{\}", _NUMBER), text)
    return None if found is None else [float(v) for v in found.groups()]


def born_model(force: openmm.GBSAOBCForce | openmm.CustomGBForce) -> dict:
    """The generalised Born model of an OpenMM force as the numbers :class:`GeneralizedBorn` needs:
    ``GBSAOBCForce`` (OBC2), or a ``CustomGBForce`` whose expressions are those OpenMM's implicit-solvent
    files build (obc1.xml, obc2.xml, hct.xml, gbn.xml, gbn2.xml; no salt, no cutoff). Raises
    :class:`UnsupportedForce` for anything else.

    Returns a dict: ``name``; per-atom ``charge``, ``offset_radius`` ρ, ``scaled`` s, ``radius`` R (in the
    tanh rule; None for HCT), ``ace_radius`` (nm) and ``polynomial`` (α, β, γ per atom, or None for HCT's
    radii); ``coulomb``
    (kJ/mol nm e⁻²), ``solute``/``solvent`` dielectrics, ``surface`` (kJ/mol/nm², 0 without the ACE
    term), ``inside`` (Tinker's term for an atom inside another: GBSAOBCForce only) and ``neck``
    (None, or scale, cutoff nm and the m0, d0 matrices [N, N] of the atoms' radius indices).
    """
    from openmm import CustomGBForce, GBSAOBCForce

    n = force.getNumParticles()
    rows = [[_value(v) for v in force.getParticleParameters(i)] for i in range(n)]
    if isinstance(force, GBSAOBCForce):
        if force.getNonbondedMethod() != GBSAOBCForce.NoCutoff:
            raise UnsupportedForce("the torch force field supports GBSAOBCForce only without cutoff (NoCutoff); "
                                   "use backend='openmm'")
        offset = OBC["offset"]
        return {"name": "OBC2", "charge": [r[0] for r in rows], "offset_radius": [r[1] - offset for r in rows],
                "scaled": [(r[1] - offset) * r[2] for r in rows], "polynomial": [(OBC["alpha"], OBC["beta"],
                                                                                    OBC["gamma"])] * n,
                "radius": [r[1] for r in rows], "ace_radius": [r[1] for r in rows], "coulomb": ONE_4PI_EPS0,
                "solute": force.getSoluteDielectric(), "solvent": force.getSolventDielectric(),
                "surface": 4 * math.pi * _value(force.getSurfaceAreaEnergy()), "inside": True, "neck": None}
    unsupported = UnsupportedForce(
        "the torch force field supports a CustomGBForce only as OpenMM's implicit-solvent files build it "
        "(implicit/obc1.xml, obc2.xml, hct.xml, gbn.xml, gbn2.xml) without salt or cutoff; use backend='openmm'")
    names = [force.getPerParticleParameterName(i) for i in range(force.getNumPerParticleParameters())]
    if (force.getNonbondedMethod() != CustomGBForce.NoCutoff or force.getNumGlobalParameters()
            or force.getNumComputedValues() != 2 or names[:3] != ["charge", "or", "sr"]):
        raise unsupported
    (i_name, i_text, i_kind), (b_name, b_text, b_kind) = (force.getComputedValueParameters(k) for k in range(2))
    pair, single = CustomGBForce.ParticlePairNoExclusions, CustomGBForce.SingleParticle
    if (i_name, i_kind, b_name, b_kind) != ("I", pair, "B", single):
        raise unsupported
    neck = _match(_NECK, i_text)
    if neck is None and i_text != _VDW:
        raise unsupported
    if b_text == _HCT_RADII:
        name, polynomial, offset = "HCT", None, None
    else:
        found = re.fullmatch(re.escape(_OBC_RADII).replace(r"\{\}", "(.*)", 1).replace(r"\{\}", _NUMBER), b_text)
        if found is None or found.group(1) not in _POLYNOMIALS:
            raise unsupported
        (name, fixed), offset = _POLYNOMIALS[found.group(1)], float(found.group(2))
        polynomial = [fixed] * n if fixed else [tuple(r[names.index(k)] for k in ("alpha", "beta", "gamma"))
                                                 for r in rows]
    terms = [force.getEnergyTermParameters(k) for k in range(force.getNumEnergyTerms())]
    templates = {2: ((_SELF, single), (_PAIR, pair)),
                 3: ((_SELF, single), (_ACE, single), (_PAIR, pair))}.get(len(terms), ())
    matched = [_match(template, text) if kind == wanted else None
               for (text, kind), (template, wanted) in zip(terms, templates, strict=False)]
    if not matched or len(matched) != len(terms) or any(m is None or m != matched[0] for m in matched):
        raise unsupported
    solvent, solute, ace_offset = matched[0]
    if neck:
        index = [int(r[names.index("radindex")]) for r in rows]
        tables = {}
        for k in range(force.getNumTabulatedFunctions()):
            size_x, _, values = force.getTabulatedFunction(k).getFunctionParameters()
            tables[force.getTabulatedFunctionName(k)] = [[values[a + size_x * b] for b in index] for a in index]
        neck = {"scale": neck[0], "cutoff": neck[1], "offset": neck[2], "m0": tables["getm0"], "d0": tables["getd0"]}
    return {"name": name, "charge": [r[0] for r in rows], "offset_radius": [r[1] for r in rows],
            "scaled": [r[2] for r in rows], "polynomial": polynomial,
            "radius": None if offset is None else [r[1] + offset for r in rows],
            "ace_radius": [r[1] + ace_offset for r in rows], "coulomb": 138.935485, "solute": solute,
            "solvent": solvent, "surface": 28.3919551 if len(terms) == 3 else 0.0, "inside": False, "neck": neck}


class GeneralizedBorn(_PairTerm):
    """Generalised Born implicit solvent with the ACE non-polar term: OpenMM's ``GBSAOBCForce`` (OBC2) and
    the ``CustomGBForce`` its implicit-solvent files build (OBC1, OBC2, HCT, GBn, GBn2; :func:`born_model`).

    Born radii B_i = 1 / (1/ρ_i − tanh(α ψ_i − β ψ_i² + γ ψ_i³)/R_i) with ψ_i = ρ_i I_i (HCT:
    1 / (1/ρ_i − I_i)), I_i the HCT descreening integral over the other atoms (plus the neck integral
    for GBn and GBn2), ρ_i the offset radius and R_i = ρ_i + offset; energy Σ_i ½ c q_i²/B_i +
    Σ_{i<j} c q_i q_j / f_ij with f_ij = √(r² + B_i B_j exp(−r²/4B_iB_j)), c = −k_e (1/ε_solute − 1/ε_solvent),
    plus the ACE term s (R_i + 0.14)² (R_i/B_i)⁶.

    Arguments:
        force: the ``openmm.GBSAOBCForce`` or ``openmm.CustomGBForce`` (no cutoff).
        group: its OpenMM force group.
    """

    def __init__(self, force: openmm.GBSAOBCForce | openmm.CustomGBForce, group: int) -> None:
        super().__init__(type(force).__name__, group, force.getNumParticles())
        model = born_model(force)
        self.model, self.inside, self.surface = model["name"], model["inside"], model["surface"]
        self.hct = model["polynomial"] is None
        for key in ("charge", "offset_radius", "scaled", "ace_radius", *(() if self.hct else ("radius",))):
            self.register_buffer(key, torch.tensor(model[key], dtype=torch.float64)[:, None])  # [N, 1]
        if not self.hct:
            self.register_buffer("polynomial", torch.tensor(model["polynomial"], dtype=torch.float64))  # [N, 3]
        charge = self.charge
        solute, solvent = model["solute"], model["solvent"]
        self.prefactor = -model["coulomb"] * (1 / solute - 1 / solvent) if solute and solvent else 0.0
        # the polar prefactor times q_i q_j, kJ/mol nm
        self.register_buffer("charge_product", self.pair_list.matrix(self.prefactor * charge * charge.T))
        self.neck = model["neck"]
        if self.neck is not None:
            m0, d0 = (torch.tensor(self.neck[k], dtype=torch.float64) for k in ("m0", "d0"))
            neck_radius = self.offset_radius + self.neck["offset"]
            self.register_buffer("neck_reach", self.pair_list.matrix(neck_radius + neck_radius.T + self.neck["cutoff"]))
            # i descreened by its partner j and j by i: the tables are indexed (receiving atom, other atom)
            self.register_buffer("m0_ij", self.pair_list.matrix(self.neck["scale"] * m0))
            self.register_buffer("m0_ji", self.pair_list.matrix(self.neck["scale"] * m0.T))
            self.register_buffer("d0_ij", self.pair_list.matrix(d0))
            self.register_buffer("d0_ji", self.pair_list.matrix(d0.T))

    @staticmethod
    def descreening(r: torch.Tensor, inverse_r: torch.Tensor, rho: torch.Tensor, scaled: torch.Tensor,
                    unique: torch.Tensor, inside: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The HCT descreening integral of atom j over atom i ``[N, K, B]`` (with Tinker's term for
        an atom inside another if ``inside``) and its derivative in r_ij, from distances r and 1/r (nm),
        the offset radius ρ_i of i and the scaled radius s_j of j. The integral is stationary in its limits
        U = 1/(r + s) and L but for i inside j's sphere, so the derivative is the explicit r-dependence
        ¼(1 + s²/r²)(U² − L²) − ½ ln(U/L)/r², plus 2L² where i is inside (without Tinker's term)."""
        overlaps = (rho < r + scaled) & unique
        lower_distance = torch.maximum(rho, (r - scaled).abs())  # 1/L
        upper = 1 / (r + scaled)
        lower = 1 / lower_distance
        log_ratio = torch.log(lower_distance * upper)  # ln(U/L)
        squares = upper**2 - lower**2
        scaled2 = scaled**2
        term = lower - upper + 0.25 * r * squares + (0.5 * log_ratio - 0.25 * scaled2 * squares) * inverse_r
        derivative = 0.25 * (1 + scaled2 * inverse_r**2) * squares - 0.5 * log_ratio * inverse_r**2
        buried = rho < scaled - r  # i inside j's scaled sphere: L = s − r, where the integral is not stationary
        if inside:  # Tinker's term 2(1/ρ − 1/L) cancels that dependence
            term = term + torch.where(buried, 2 * (1 / rho - lower), 0.0)
        else:  # ∂I/∂L dL/dr = (−2/L²)(−1)
            derivative = derivative + torch.where(buried, 2 * lower**2, 0.0)
        return torch.where(overlaps, term, 0.0), torch.where(overlaps, derivative, 0.0)

    @staticmethod
    def neck_integral(r: torch.Tensor, reach: torch.Tensor, m0: torch.Tensor,
                      d0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """GBn's neck integral m0 / (1 + 100 x² + 3·10⁵ x⁶), x = r − d0, within ``reach`` (nm), times the
        neck scale (in ``m0``), and its derivative in r: ``[N, K, B]``."""
        x = r - d0
        x2 = x * x
        denominator = 1 + 100 * x2 + 3e5 * x2 * x2 * x2
        within = r < reach
        value = m0 / denominator
        return (torch.where(within, value, 0.0),
                torch.where(within, -value / denominator * (200 * x + 1.8e6 * x2 * x2 * x), 0.0))

    def energy_and_gradient(self, positions: torch.Tensor,
                            gradient: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Energy ``[B]`` kJ/mol and, if ``gradient``, dE/dx ``[N, 3, B]`` kJ/mol/nm (else None) from positions
        ``[N, 3, B]`` nm: the chain rule through the Born radii in closed form, as OpenMM does."""
        pairs = self.pair_list
        d, r2, inverse_r = self.geometry(positions)
        r = r2 * inverse_r
        rho, scaled = self.offset_radius, self.scaled  # [N, 1]
        unique = pairs.unique[..., None]
        term_ij, d_term_ij = self.descreening(r, inverse_r, rho[:, None], pairs.of_partner(scaled), unique,
                                              self.inside)  # i descreened by j
        term_ji, d_term_ji = self.descreening(r, inverse_r, pairs.of_partner(rho), scaled[:, None], unique,
                                              self.inside)  # j descreened by i
        integral = 0.5 * (term_ij.sum(1) + pairs.partner_sum(term_ji))  # I_i [N, B]
        if self.neck is not None:
            neck_ij, d_neck_ij = self.neck_integral(r, self.neck_reach, self.m0_ij, self.d0_ij)
            neck_ji, d_neck_ji = self.neck_integral(r, self.neck_reach, self.m0_ji, self.d0_ji)
            integral = integral + neck_ij.sum(1) + pairs.partner_sum(neck_ji)
        if self.hct:
            inverse_born = 1 / rho - integral
        else:
            alpha, beta, gamma = self.polynomial[:, 0:1], self.polynomial[:, 1:2], self.polynomial[:, 2:3]
            psi = rho * integral
            tanh = torch.tanh(alpha * psi - beta * psi**2 + gamma * psi**3)
            inverse_born = 1 / rho - tanh / self.radius  # [N, B]
        born = 1 / inverse_born
        area = self.surface * (self.ace_radius + OBC["probe"]) ** 2 * (self.ace_radius * inverse_born) ** 6
        born_i, born_j = born[:, None], pairs.of_partner(born)  # R_i, R_j [N, 1, B], [N, K, B]
        product = born_i * born_j  # A_ij
        quarter = 0.25 * r2 / product
        damping = torch.exp(-quarter)
        inverse_f = torch.rsqrt(r2 + damping * product)
        pair = self.charge_product * inverse_f
        own = 0.5 * self.prefactor * self.charge**2 * inverse_born  # i = j: f = R_i
        energy = pair.sum((0, 1)) + (own + area).sum(0)
        if not gradient:
            return energy, None
        d_f = -pair * inverse_f  # ∂e_ij/∂f_ij
        d_product = 0.5 * d_f * inverse_f * damping * (1 + quarter)  # ∂e_ij/∂A_ij
        d_born = ((d_product * born_j).sum(1) + pairs.partner_sum(d_product * born_i)
                  - own * inverse_born - 6 * area * inverse_born)  # dE/dB_i [N, B]
        if self.hct:  # dE/dI_i
            d_integral = d_born * born**2
        else:
            d_integral = d_born * born**2 / self.radius * (1 - tanh**2) * (
                alpha - 2 * beta * psi + 3 * gamma * psi**2) * rho
        # dE/d(r²) = dE/dI ∂I/∂r / 2r: ½ of each descreening term, the neck terms whole
        half = 0.25 * d_integral
        descreened = half[:, None] * d_term_ij + pairs.of_partner(half) * d_term_ji
        if self.neck is not None:
            descreened = descreened + 0.5 * (d_integral[:, None] * d_neck_ij + pairs.of_partner(d_integral) * d_neck_ji)
        weight = 0.5 * d_f * inverse_f * (1 - 0.25 * damping) + descreened * inverse_r  # dE/d(r²)
        return energy, pairs.gradient(weight, d, r2)


class _AnalyticEnergy(torch.autograd.Function):
    """A pair term's energy with its gradient computed in the forward pass
    (``term.energy_and_gradient``). Higher derivatives (``create_graph=True``: Hessians, force
    matching) differentiate the energy again by autograd."""

    @staticmethod
    def forward(ctx, positions: torch.Tensor, term: _PairTerm) -> torch.Tensor:
        energy, gradient = term.energy_and_gradient(positions, gradient=ctx.needs_input_grad[0])
        ctx.term = term
        ctx.save_for_backward(positions, gradient if gradient is not None else positions.new_zeros(0))
        return energy

    @staticmethod
    def backward(ctx, grad_energy: torch.Tensor):
        positions, gradient = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: the gradient as a differentiable function
            with torch.enable_grad():
                energy, _ = ctx.term.energy_and_gradient(positions, gradient=False)
                (gradient,) = torch.autograd.grad(energy, positions, grad_energy, create_graph=True)
            return gradient, None
        return grad_energy * gradient, None


TERMS = {"HarmonicBondForce": HarmonicBonds, "HarmonicAngleForce": HarmonicAngles,
         "PeriodicTorsionForce": PeriodicTorsions, "NonbondedForce": Nonbonded, "GBSAOBCForce": GeneralizedBorn,
         "CustomGBForce": GeneralizedBorn}


class ForceField(nn.Module):
    """The potential energy (kJ/mol) of an OpenMM ``System`` for positions ``[B, 3N]`` (nm).

    ``terms(x)`` gives each force's energy ``[B]`` by name; ``groups(x)`` sums them by OpenMM
    force group. Buffers follow ``.to(device, dtype)``.

    A batch is evaluated in pieces of ``chunk`` configurations; by default 2048 on the CPU (the
    fastest measured for alanine dipeptide), fewer for large molecules, so that a piece holds at
    most ``PAIR_BUDGET`` pair entries.
    ``compile=True`` (or :meth:`compile_terms`) runs the terms through ``torch.compile``.

    Arguments:
        system: the ``openmm.System``: non-periodic, no constraints, supported forces only.
        compile: whether to evaluate through ``torch.compile``.
        chunk: configurations per piece (default: chosen from the device and the atom count).

    Example:
        >>> forcefield = ForceField(system)  # doctest: +SKIP
        >>> energies = forcefield(x)  # doctest: +SKIP
    """

    def __init__(self, system: openmm.System, compile: bool = False, chunk: int | None = None) -> None:
        super().__init__()
        self.chunk = chunk
        self.__dict__["_compiled"] = None
        if system.getNumConstraints():
            raise MlmolError(f"the system has {system.getNumConstraints()} constraints; Boltzmann generator samples "
                             "are unconstrained: build it with constraints=None (and rigidWater=False)")
        if system.usesPeriodicBoundaryConditions():
            raise UnsupportedForce("the torch force field supports only non-periodic systems; use backend='openmm'")
        self.n_atoms = system.getNumParticles()
        terms, unsupported = [], []
        for force in system.getForces():
            kind = type(force).__name__
            if kind in TERMS:
                terms.append(TERMS[kind](force, force.getForceGroup()))
            elif kind not in IGNORED:
                unsupported.append(kind)
        if unsupported:
            raise UnsupportedForce(f"the torch force field does not support {', '.join(sorted(set(unsupported)))}; "
                                   f"it handles {', '.join(SUPPORTED)}. Use the OpenMM bridge (backend='openmm', "
                                   "--energy-backend openmm) for this system")
        self.terms_ = nn.ModuleList(terms)
        pairs = [pair for term in terms for pair in term.pairs]
        incidence = torch.zeros(len(pairs), self.n_atoms, dtype=torch.float64)  # [V, N]
        rows = torch.arange(len(pairs))
        if pairs:
            i, j = torch.tensor(pairs).T
            incidence[rows, j] += 1.0
            incidence[rows, i] -= 1.0
        self.register_buffer("incidence", incidence)
        self.slices = []
        start = 0
        for term in terms:
            self.slices.append(slice(start, start + len(term.pairs)))
            start += len(term.pairs)
        if compile:
            self.compile_terms()

    def compile_terms(self) -> ForceField:
        """Evaluate :meth:`column_energies` through ``torch.compile`` (fused, vectorised C++ on the
        CPU, Triton kernels on CUDA), with a dynamic batch size: several times faster than eager on the
        CPU (benchmarks/forcefield_speed.py) after 20-60 s of compilation over the first two calls
        (an empty compile cache). Where compilation fails (no C++ compiler, say)
        it warns and stays eager."""
        import torch._dynamo

        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self.__dict__["_compiled"] = torch.compile(self.column_energies, dynamic=True)
        return self

    def _column_energies_compiled(self, piece: torch.Tensor) -> list[torch.Tensor]:
        try:
            return self._compiled(self.columns(piece))
        except MlmolError:
            raise
        except Exception as error:  # noqa: BLE001 (compilation failures have many types)
            warnings.warn(f"torch.compile failed ({type(error).__name__}: {error}); the torch force field "
                          "goes on without it (eager)", RuntimeWarning, stacklevel=3)
            self.__dict__["_compiled"] = None
            return self.column_energies(self.columns(piece))

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 3 * self.n_atoms:
            raise MlmolError(f"expected coordinates [batch, {3 * self.n_atoms}] (nm, atom-major) for "
                             f"{self.n_atoms} atoms, got {tuple(x.shape)}")
        return x.reshape(-1, x.shape[-1])

    def columns(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates ``[*batch, 3N]`` as contiguous columns ``[N, 3, B]`` (the batch innermost)."""
        return self._flat(x).reshape(-1, self.n_atoms, 3).permute(1, 2, 0).contiguous()

    def column_energies(self, columns: torch.Tensor) -> list[torch.Tensor]:
        """Each term's energy ``[B]`` kJ/mol, in the order of ``terms_``, from columns ``[N, 3, B]``
        (the part worth ``torch.compile``)."""
        geometry = Geometry(columns, self.incidence)
        vectors = geometry.vectors
        return [term(None if vectors is None else vectors[part], geometry)
                for term, part in zip(self.terms_, self.slices, strict=True)]

    def _energies(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each term's energy ``[*batch]`` kJ/mol, in the order of ``terms_``, piece by piece."""
        flat = self._flat(x)
        if not len(flat):
            return [x.new_zeros(x.shape[:-1]) for _ in self.terms_]
        cpu = x.device.type == "cpu"
        budget = PAIR_BUDGET["cpu" if cpu else "other"] // self.n_atoms**2
        chunk = self.chunk or max(1, min(budget, CPU_CHUNK) if cpu else budget)
        pieces = []
        for piece in flat.split(chunk):
            if self._compiled is not None:
                pieces.append(self._column_energies_compiled(piece))
            else:
                pieces.append(self.column_energies(self.columns(piece)))
        return [torch.cat(parts).reshape(x.shape[:-1]) for parts in zip(*pieces, strict=True)]

    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Energy of each force by name, each ``[*batch]`` kJ/mol."""
        return {term.name: energy for term, energy in zip(self.terms_, self._energies(x), strict=True)}

    def groups(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Energy of each OpenMM force group, each ``[*batch]`` kJ/mol."""
        out = {}
        for term, energy in zip(self.terms_, self._energies(x), strict=True):
            out[term.group] = out[term.group] + energy if term.group in out else energy
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The potential energy ``[*batch]`` (kJ/mol) of positions ``[*batch, 3N]`` (nm)."""
        return sum(self._energies(x))


class TorchEnergy(Energy):
    """Reduced energy u = U/kT of an OpenMM ``System`` by :class:`ForceField`, batched, in PyTorch.

    Evaluated in ``precision`` (float64 by default, whatever the input's dtype; the result is cast
    back) on the input's device. A float64 master copy of the parameters is kept on the CPU and
    converted copies are cached per device and precision. ``compile=True`` evaluates through
    ``torch.compile`` (:meth:`ForceField.compile_terms`).

    Arguments:
        system: the ``openmm.System`` (see :class:`ForceField` for what it may hold).
        topology: its ``openmm.app.Topology``, kept as ``self.topology``, or None.
        temperature: the temperature (kelvin) that sets kT.
        name: a short name.
        precision: the dtype of the evaluation, or None for the input's dtype.
        compile: whether to evaluate through ``torch.compile``.
    """

    def __init__(self, system: openmm.System, topology: app.Topology | None = None, temperature: float = 300.0,
                 name: str = "torch", precision: torch.dtype | None = torch.float64, compile: bool = False) -> None:
        super().__init__(dim=3 * system.getNumParticles(), kT=kT_kj_mol(temperature))
        self.name, self.temperature, self.system, self.topology = name, temperature, system, topology
        self.precision, self.compiled = precision, compile
        self.__dict__["forcefield"] = ForceField(system).double()  # not a submodule: .float() must not touch it
        self.__dict__["_copies"] = {}

    def evaluated_in(self, precision: torch.dtype | None, compile: bool) -> TorchEnergy:
        """A copy evaluating in ``precision`` (None: the input's dtype), through ``torch.compile`` or not;
        it shares the master parameters, not the cached converted copies."""
        clone = copy.copy(self)
        clone.__dict__["_copies"] = {}
        clone.precision, clone.compiled = precision, compile
        return clone

    def forcefield_for(self, device: torch.device | str, dtype: torch.dtype) -> ForceField:
        """The force field with its parameters on ``device`` in ``dtype`` (cached)."""
        key = (torch.device(device), dtype)
        if key not in self._copies:
            self._copies[key] = copy.deepcopy(self.forcefield).to(device=key[0], dtype=dtype)
            if self.compiled:
                self._copies[key].compile_terms()
        return self._copies[key]

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy ``[*batch]`` (kT) of ``x`` ``[*batch, 3N]`` (nm), in ``x``'s dtype, differentiable."""
        self.check_input(x)
        dtype = self.precision or x.dtype
        u = self.forcefield_for(x.device, dtype)(x.to(dtype)) / self.kT
        return u.to(x.dtype)

    def extra_repr(self) -> str:
        """Atoms, temperature and the force terms, for the module's ``repr``."""
        terms = ", ".join(term.name for term in self.forcefield.terms_)
        return f"atoms={self.dim // 3}, T={self.temperature} K, backend=torch ({terms})"
