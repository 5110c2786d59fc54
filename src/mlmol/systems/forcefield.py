"""A native batched PyTorch force field read from an OpenMM ``System``.

Evaluates the potential energy of a whole batch of configurations ``[B, 3N]`` (nm) at once, on
CPU or GPU, in float32 or float64, with forces by autograd, and no call into OpenMM. The terms
follow OpenMM's definitions (kJ/mol, nm, radians, elementary charges):

- ``HarmonicBondForce``      ½ k (r − r₀)²
- ``HarmonicAngleForce``     ½ k (θ − θ₀)²
- ``PeriodicTorsionForce``   k (1 + cos(n φ − φ₀)), proper and improper alike
- ``NonbondedForce``         (``NoCutoff`` only) Σ 4ε((σ/r)¹² − (σ/r)⁶) + q_i q_j / (4πε₀ r) over
                             pairs, Lorentz–Berthelot combining, exceptions (scaled 1-4 pairs)
                             with their own parameters, excluded pairs left out
- ``GBSAOBCForce``           OBC2 generalised Born (Onufriev, Bashford & Case 2004; α, β, γ =
                             1, 0.8, 4.85; dielectric offset 0.009 nm) with the ACE surface term
                             (probe 0.14 nm), as OpenMM's reference platform computes it

Anything else (constraints, cutoffs, custom forces) raises an error that names it and points to
the OpenMM bridge (``backend="openmm"``). ``CMMotionRemover`` has no energy and is ignored.

Overlapping atoms: squared distances are floored at ``MIN_DISTANCE²`` (1e-6 nm) so energies
stay finite (huge) in float64; in float32 the Lennard-Jones term overflows to +inf below about
σ/1500 (tested and documented in README).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..errors import MlmolError
from ..units import kT_kj_mol
from .base import Energy

ONE_4PI_EPS0 = 138.93545764438198  # kJ mol⁻¹ nm e⁻²
MIN_DISTANCE = 1e-6  # nm
OBC = {"alpha": 1.0, "beta": 0.8, "gamma": 4.85, "offset": 0.009, "probe": 0.14}  # OBC2, nm
SUPPORTED = ("HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce", "GBSAOBCForce")
IGNORED = ("CMMotionRemover",)


class UnsupportedForce(MlmolError):
    """The system holds a force (or a setting) the torch force field does not implement."""


def _value(quantity) -> float:
    """A plain float in OpenMM's MD units (nm, ps, kJ/mol, e, radians) from a Quantity or a number."""
    from openmm import unit

    return quantity.value_in_unit_system(unit.md_unit_system) if unit.is_quantity(quantity) else float(quantity)


def _column(rows: list, k: int) -> torch.Tensor:
    """The ``k``-th entries of parameter rows as a float64 tensor in MD units."""
    return torch.tensor([_value(row[k]) for row in rows], dtype=torch.float64)


def _distance(x: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """|x_j − x_i| ``[B, P]`` for atom index pairs, floored at MIN_DISTANCE (finite for overlaps)."""
    d = x[:, j] - x[:, i]
    return torch.sqrt((d * d).sum(-1).clamp_min(MIN_DISTANCE**2))


class _Term(nn.Module):
    """One OpenMM force: ``energy(x)`` ``[B]`` in kJ/mol from positions ``[B, N, 3]`` nm."""

    def __init__(self, name: str, group: int):
        super().__init__()
        self.name, self.group = name, group

    def index(self, name: str, rows: list[tuple[int, ...]], width: int) -> None:
        self.register_buffer(name, torch.tensor(rows, dtype=torch.long).reshape(-1, width))

    def parameter(self, name: str, rows: list, k: int) -> None:
        self.register_buffer(name, _column(rows, k))


class HarmonicBonds(_Term):
    def __init__(self, force, group: int):
        super().__init__("HarmonicBondForce", group)
        rows = [force.getBondParameters(b) for b in range(force.getNumBonds())]
        self.index("atoms", [r[:2] for r in rows], 2)
        self.parameter("length", rows, 2)
        self.parameter("k", rows, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = _distance(x, self.atoms[:, 0], self.atoms[:, 1])
        return (0.5 * self.k * (r - self.length) ** 2).sum(-1)


class HarmonicAngles(_Term):
    def __init__(self, force, group: int):
        super().__init__("HarmonicAngleForce", group)
        rows = [force.getAngleParameters(a) for a in range(force.getNumAngles())]
        self.index("atoms", [r[:3] for r in rows], 3)
        self.parameter("angle", rows, 3)
        self.parameter("k", rows, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x[:, self.atoms[:, 0]] - x[:, self.atoms[:, 1]]
        v = x[:, self.atoms[:, 2]] - x[:, self.atoms[:, 1]]
        theta = torch.atan2(torch.linalg.cross(u, v).norm(dim=-1), (u * v).sum(-1))  # stable near 0 and π
        return (0.5 * self.k * (theta - self.angle) ** 2).sum(-1)


class PeriodicTorsions(_Term):
    def __init__(self, force, group: int):
        super().__init__("PeriodicTorsionForce", group)
        rows = [force.getTorsionParameters(t) for t in range(force.getNumTorsions())]
        self.index("atoms", [r[:4] for r in rows], 4)
        self.parameter("periodicity", rows, 4)
        self.parameter("phase", rows, 5)
        self.parameter("k", rows, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c, d = (x[:, self.atoms[:, i]] for i in range(4))
        b1, b2, b3 = b - a, c - b, d - c
        n1, n2 = torch.linalg.cross(b1, b2), torch.linalg.cross(b2, b3)
        # φ = atan2(|b2| b1·n2, n1·n2): the IUPAC torsion (trans = π), as OpenMM's
        phi = torch.atan2(b2.norm(dim=-1) * (b1 * n2).sum(-1), (n1 * n2).sum(-1))
        return (self.k * (1 + torch.cos(self.periodicity * phi - self.phase))).sum(-1)


class Nonbonded(_Term):
    """Lennard-Jones and Coulomb over all pairs without cutoff; exceptions replace their pair."""

    def __init__(self, force, group: int):
        super().__init__("NonbondedForce", group)
        from openmm import NonbondedForce

        if force.getNonbondedMethod() != NonbondedForce.NoCutoff:
            raise UnsupportedForce("the torch force field supports NonbondedForce only without cutoff (NoCutoff); "
                                   "build the system with nonbondedMethod=app.NoCutoff or use backend='openmm'")
        if force.getNumParticleParameterOffsets() or force.getNumExceptionParameterOffsets():
            raise UnsupportedForce("NonbondedForce parameter offsets are not supported by the torch force field; "
                             "use backend='openmm'")
        n = force.getNumParticles()
        particles = [force.getParticleParameters(i) for i in range(n)]
        charge, sigma, epsilon = (_column(particles, k) for k in range(3))
        exceptions = [force.getExceptionParameters(e) for e in range(force.getNumExceptions())]
        special = {tuple(sorted(e[:2])) for e in exceptions}
        i, j = torch.triu_indices(n, n, 1)
        keep = torch.tensor([(a, b) not in special for a, b in zip(i.tolist(), j.tolist(), strict=True)],
                            dtype=torch.bool)
        i, j = i[keep], j[keep]
        kept = [e for e in exceptions if _value(e[2]) != 0.0 or _value(e[4]) != 0.0]  # others: exclusions
        pair_i = torch.cat([i, torch.tensor([e[0] for e in kept], dtype=torch.long)])
        pair_j = torch.cat([j, torch.tensor([e[1] for e in kept], dtype=torch.long)])
        self.register_buffer("i", pair_i)
        self.register_buffer("j", pair_j)
        self.register_buffer("charge_product", torch.cat([charge[i] * charge[j], _column(kept, 2)]))
        self.register_buffer("sigma", torch.cat([0.5 * (sigma[i] + sigma[j]), _column(kept, 3)]))
        self.register_buffer("epsilon", torch.cat([torch.sqrt(epsilon[i] * epsilon[j]), _column(kept, 4)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = _distance(x, self.i, self.j)
        s6 = (self.sigma / r) ** 6
        return (4 * self.epsilon * (s6 * s6 - s6) + ONE_4PI_EPS0 * self.charge_product / r).sum(-1)


class GeneralizedBorn(_Term):
    """OBC2 implicit solvent with the ACE non-polar term (OpenMM's ``GBSAOBCForce``)."""

    def __init__(self, force, group: int):
        super().__init__("GBSAOBCForce", group)
        from openmm import GBSAOBCForce

        if force.getNonbondedMethod() != GBSAOBCForce.NoCutoff:
            raise UnsupportedForce("the torch force field supports GBSAOBCForce only without cutoff (NoCutoff); "
                                   "use backend='openmm'")
        rows = [force.getParticleParameters(i) for i in range(force.getNumParticles())]
        self.parameter("charge", rows, 0)
        self.parameter("radius", rows, 1)
        self.parameter("scale", rows, 2)
        solute, solvent = force.getSoluteDielectric(), force.getSolventDielectric()
        self.prefactor = -ONE_4PI_EPS0 * (1 / solute - 1 / solvent) if solute and solvent else 0.0
        self.surface = 4 * math.pi * _value(force.getSurfaceAreaEnergy())  # kJ/mol/nm²

    def born_radii(self, r: torch.Tensor) -> torch.Tensor:
        """Born radii ``[B, N]`` (nm) from distances ``[B, N, N]``: the HCT descreening integral
        (with Tinker's term for an atom inside another) rescaled by OBC2's tanh."""
        offset_radius = self.radius - OBC["offset"]  # [N]
        rho = offset_radius[:, None]  # atom i, rows
        scaled = (offset_radius * self.scale)[None, :]  # atom j, columns
        n = r.shape[-1]
        others = ~torch.eye(n, dtype=torch.bool, device=r.device)
        overlaps = (rho < r + scaled) & others
        safe_r = torch.where(overlaps, r, torch.ones_like(r))
        lower = 1 / torch.maximum(rho, (safe_r - scaled).abs())
        upper = 1 / (safe_r + scaled)
        term = (lower - upper + 0.25 * safe_r * (upper**2 - lower**2) + 0.5 / safe_r * torch.log(upper / lower)
                + 0.25 * scaled**2 / safe_r * (lower**2 - upper**2))
        term = term + torch.where(rho < scaled - safe_r, 2 * (1 / rho - lower), torch.zeros_like(term))
        psi = 0.5 * offset_radius * torch.where(overlaps, term, torch.zeros_like(term)).sum(-1)
        tanh = torch.tanh(OBC["alpha"] * psi - OBC["beta"] * psi**2 + OBC["gamma"] * psi**3)
        return 1 / (1 / offset_radius - tanh / self.radius)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x[:, None, :, :] - x[:, :, None, :]
        r2 = (d * d).sum(-1).clamp_min(MIN_DISTANCE**2)
        born = self.born_radii(torch.sqrt(r2))
        r2 = r2.masked_fill(torch.eye(x.shape[1], dtype=torch.bool, device=x.device), 0.0)  # i = j: f = R_i
        alpha2 = born[:, :, None] * born[:, None, :]
        f = torch.sqrt(r2 + alpha2 * torch.exp(-r2 / (4 * alpha2)))
        qq = self.charge[:, None] * self.charge[None, :]
        polar = 0.5 * self.prefactor * (qq / f).sum((-1, -2))  # i = j once with ½, i ≠ j pairs twice with ½
        nonpolar = (self.surface * (self.radius + OBC["probe"]) ** 2 * (self.radius / born) ** 6).sum(-1)
        return polar + nonpolar


TERMS = {"HarmonicBondForce": HarmonicBonds, "HarmonicAngleForce": HarmonicAngles,
         "PeriodicTorsionForce": PeriodicTorsions, "NonbondedForce": Nonbonded, "GBSAOBCForce": GeneralizedBorn}


class ForceField(nn.Module):
    """The potential energy (kJ/mol) of an OpenMM ``System`` for positions ``[B, 3N]`` (nm).

    ``terms(x)`` gives each force's energy ``[B]`` by name; ``groups(x)`` sums them by OpenMM
    force group. Buffers follow ``.to(device, dtype)``.
    """

    def __init__(self, system):
        super().__init__()
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

    def _positions(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 3 * self.n_atoms:
            raise MlmolError(f"expected coordinates [batch, {3 * self.n_atoms}] (nm, atom-major) for "
                             f"{self.n_atoms} atoms, got {tuple(x.shape)}")
        return x.reshape(-1, self.n_atoms, 3)

    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Energy of each force by name, each ``[*batch]`` kJ/mol."""
        positions = self._positions(x)
        return {term.name: term(positions).reshape(x.shape[:-1]) for term in self.terms_}

    def groups(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Energy of each OpenMM force group, each ``[*batch]`` kJ/mol."""
        positions, out = self._positions(x), {}
        for term in self.terms_:
            energy = term(positions).reshape(x.shape[:-1])
            out[term.group] = out[term.group] + energy if term.group in out else energy
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions = self._positions(x)
        return sum(term(positions) for term in self.terms_).reshape(x.shape[:-1])


class TorchEnergy(Energy):
    """Reduced energy u = U/kT of an OpenMM ``System`` by :class:`ForceField`, batched, in PyTorch.

    Evaluated in ``precision`` (float64 by default, whatever the input's dtype; the result is cast
    back) on the input's device. A float64 master copy of the parameters is kept on the CPU and
    converted copies are cached per device and precision.
    """

    def __init__(self, system, topology=None, temperature: float = 300.0, name: str = "torch",
                 precision: torch.dtype | None = torch.float64):
        super().__init__(dim=3 * system.getNumParticles(), kT=kT_kj_mol(temperature))
        self.name, self.temperature, self.system, self.topology = name, temperature, system, topology
        self.precision = precision
        self.__dict__["forcefield"] = ForceField(system).double()  # not a submodule: .float() must not touch it
        self.__dict__["_copies"] = {}

    def forcefield_for(self, device: torch.device, dtype: torch.dtype) -> ForceField:
        """The force field with its parameters on ``device`` in ``dtype`` (cached)."""
        key = (torch.device(device), dtype)
        if key not in self._copies:
            self._copies[key] = copy.deepcopy(self.forcefield).to(device=key[0], dtype=dtype)
        return self._copies[key]

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        dtype = self.precision or x.dtype
        u = self.forcefield_for(x.device, dtype)(x.to(dtype)) / self.kT
        return u.to(x.dtype)

    def extra_repr(self) -> str:
        terms = ", ".join(term.name for term in self.forcefield.terms_)
        return f"atoms={self.dim // 3}, T={self.temperature} K, backend=torch ({terms})"
