"""The Energy contract: a reduced energy u(x) = U(x) / kT on flat coordinates."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch

from ..errors import MlmolError

Bounds = tuple[tuple[float, float], ...]

_STATE = re.compile(r"^\s*([A-Za-z_]\w*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")
_COORDINATE = re.compile(r"^x(\d+)$")


class State:
    """A region of configuration space given as ``"x0 < 0.5"`` or ``"phi > 0"``.

    The left side is a coordinate ``x<i>`` or the name of one of ``variables`` (functions of
    x, e.g. a torsion in radians). Calling it on ``x`` ``[*batch, dim]`` gives a mask ``[*batch]``.

    Arguments:
        spec: the region, ``"<coordinate or variable> <op> <number>"`` with op one of <, >, <=, >=.
        variables: named functions of x ``[*batch, dim] -> [*batch]`` usable on the left side.

    Example:
        >>> State("x0 < 0.5")(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        tensor([ True, False])
    """

    def __init__(self, spec: str, variables: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None) -> None:
        match = _STATE.match(spec)
        variables = variables or {}
        if match is None or not (_COORDINATE.match(match.group(1)) or match.group(1) in variables):
            known = ", ".join(["x0, x1, ...", *variables])
            raise MlmolError(
                f"cannot read the state {spec!r}: write a coordinate or variable ({known}), a comparison "
                "and a number, for example 'x0 < 0' or 'x1 >= 0.75'"
            )
        self.spec = spec.strip()
        name = match.group(1)
        coordinate = _COORDINATE.match(name)
        self.variable = (lambda x, i=int(coordinate.group(1)): x[..., i]) if coordinate else variables[name]
        self.op = match.group(2)
        self.value = float(match.group(3))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c = self.variable(x)
        return {"<": c < self.value, ">": c > self.value,
                "<=": c <= self.value, ">=": c >= self.value}[self.op]

    def __repr__(self) -> str:
        return f"State({self.spec!r})"


class Energy(torch.nn.Module):
    """A system's reduced energy ``u(x)`` (units of kT) on flat coordinates ``[*batch, dim]``.

    Subclasses implement :meth:`energy`. Optional metadata used by training and evaluation:

    - ``bounds``: a box ``((lo, hi), ...)`` holding essentially all the Boltzmann mass; with
      ``dim <= 2`` it gives exact references by quadrature.
    - ``states``: two state specs (``"x0 < 0"``, ``"phi > 0"``) whose ΔF is reported.
    - ``variables``: named functions of x usable in state specs.
    - ``profile_coords``: coordinate indices along which free-energy profiles are reported.
    - ``rc``: ``(index, lo, hi)`` of the reaction coordinate used by the RC loss.
    - ``minima``: points in the metastable states where reference sampling starts.

    Systems with symmetries a plain flow should not have to learn (identical solvent particles)
    override :meth:`augment`, :meth:`canonical` and :meth:`in_canonical`: training data are
    augmented and mapped to one canonical copy, and generated samples outside the canonical
    domain get zero weight (see :func:`mlmol.sample`).

    Arguments:
        dim: the number of coordinates.
        kT: the thermal energy in the system's energy unit (kJ/mol for molecules; 1 for reduced units).
    """

    name: str = "energy"
    # named collective variables, functions of x (e.g. torsions), for states
    variables: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    bounds: Bounds | None = None
    states: tuple[str, str] | None = None
    profile_coords: tuple[int, ...] = (0,)
    rc: tuple[int, float, float] | None = None
    minima: tuple[tuple[float, ...], ...] | None = None

    def __init__(self, dim: int, kT: float = 1.0) -> None:
        super().__init__()
        if dim < 1:
            raise MlmolError(f"dim must be a positive integer, got {dim}")
        self.dim = int(dim)
        self.kT = float(kT)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy u(x), shape ``[*batch]``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reduced energy :meth:`energy` of ``x`` ``[*batch, dim]``, shape ``[*batch]``."""
        return self.energy(x)

    def force(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced force -du/dx (units of kT per length), shape ``[*batch, dim]``, by autograd."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(x).sum(), x)
        return -grad

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` and its images under maps that leave u unchanged, ``[k n, dim]`` (exact data
        augmentation for training); here no images, ``x`` itself."""
        return x

    def canonical(self, x: torch.Tensor) -> torch.Tensor:
        """One canonical copy of each configuration among its symmetry copies (here ``x`` itself)."""
        return x

    def in_canonical(self, x: torch.Tensor) -> torch.Tensor | None:
        """Mask ``[*batch]`` of configurations :meth:`canonical` leaves unchanged, or None where
        every configuration counts (no symmetry handled, the default)."""
        return None

    def check_input(self, x: torch.Tensor) -> None:
        """Raise an :class:`~mlmol.errors.MlmolError` unless the last axis of ``x`` has ``dim`` entries."""
        if x.shape[-1] != self.dim:
            raise MlmolError(
                f"{self.name} has dim {self.dim} but got coordinates of shape {tuple(x.shape)}; "
                f"pass a tensor of shape [batch, {self.dim}]"
            )

    def close(self) -> None:
        """Release what the energy holds outside this process (worker processes); usually nothing."""

    def extra_repr(self) -> str:
        """``dim`` and ``kT``, for the module's ``repr``."""
        return f"dim={self.dim}, kT={self.kT}"


class Tempered(Energy):
    """``system`` at ``factor`` times its temperature: u(x) / factor, reduced at kT · factor.

    Example:
        >>> from mlmol.systems import DoubleWell
        >>> hot = Tempered(DoubleWell(), 4.0)
        >>> x = torch.zeros(1, 2)
        >>> bool(hot.energy(x) == DoubleWell().energy(x) / 4)
        True
    """

    def __init__(self, system: Energy, factor: float):
        if not factor > 0:
            raise MlmolError(f"a temperature factor must be positive, got {factor}")
        super().__init__(system.dim, system.kT * factor)
        self.system, self.factor = system, float(factor)
        self.name = f"{system.name} at {self.factor:g} T"
        self.bounds, self.states, self.variables = system.bounds, system.states, system.variables

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced energy u(x) / factor ``[*batch]``."""
        return self.system.energy(x) / self.factor


class FunctionEnergy(Energy):
    """A user's energy: a function of a ``[batch, dim]`` tensor returning reduced energies ``[batch]``.

    Arguments:
        function: the reduced energy u (kT), ``[batch, dim] -> [batch]``.
        dim: the number of coordinates.
        name: a short name for messages.
        bounds: a box ``((lo, hi), ...)`` holding the Boltzmann mass (enables quadrature for dim <= 2).
        states: two state specs whose ΔF is reported (default ``("x0 < 0", "x0 > 0")``).

    Example:
        >>> u = FunctionEnergy(lambda x: (x**2).sum(-1) / 2, dim=2)
        >>> u.energy(torch.ones(3, 2))
        tensor([1., 1., 1.])
    """

    def __init__(
        self,
        function: Callable[[torch.Tensor], torch.Tensor],
        dim: int,
        name: str = "user energy",
        bounds: Sequence[Sequence[float]] | None = None,
        states: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(dim)
        self.function = function
        self.name = name
        if bounds is not None:
            self.bounds = tuple((float(lo), float(hi)) for lo, hi in bounds)
        if states is not None:
            self.states = tuple(states)
        else:
            self.states = ("x0 < 0", "x0 > 0")
        self.profile_coords = tuple(range(min(dim, 2)))
        check_energy_function(self)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``function(x)``: reduced energies ``[batch]`` of ``x`` ``[batch, dim]``."""
        return self.function(x)


def check_energy_function(system: Energy, batch: int = 4) -> None:
    """Call the energy once on a small batch and check the output shape; raise a clear error.

    Arguments:
        system: the energy to check.
        batch: the size of the test batch ``[batch, dim]`` (N(0, 0.1²) coordinates).
    """
    x = torch.randn(batch, system.dim, generator=torch.Generator().manual_seed(0)) * 0.1
    try:
        u = system.energy(x)
    except Exception as error:  # the user's code failed: say where and suggest the usual cause
        raise MlmolError(
            f"{system.name}: calling the energy on a [{batch}, {system.dim}] batch failed with "
            f"{type(error).__name__}: {error}. Check that --dim {system.dim} is the dimension "
            "the function expects."
        ) from None
    if not isinstance(u, torch.Tensor):
        raise MlmolError(
            f"{system.name}: the energy returned {type(u).__name__}; it must return a torch "
            f"tensor of shape [batch] (here [{batch}])"
        )
    if tuple(u.shape) != (batch,):
        hint = " (drop the trailing dimension, e.g. with .squeeze(-1))" if u.shape == (batch, 1) else ""
        raise MlmolError(
            f"{system.name}: the energy returned shape {tuple(u.shape)} for a [{batch}, "
            f"{system.dim}] batch; it must return reduced energies of shape [{batch}]{hint}. "
            f"If the function expects another dimension, fix --dim."
        )
    x = (torch.randn(64, system.dim, generator=torch.Generator().manual_seed(1)) * 1.5).requires_grad_(True)
    try:
        (grad,) = torch.autograd.grad(system.energy(x).nansum(), x, allow_unused=True)
    except RuntimeError:  # not differentiable by autograd (e.g. computed in NumPy): nothing to check here
        return
    unused = list(range(system.dim)) if grad is None else torch.nonzero((grad == 0).all(0)).flatten().tolist()
    if unused:
        names = ", ".join(f"x{i}" for i in unused[:6]) + (", ..." if len(unused) > 6 else "")
        raise MlmolError(
            f"{system.name}: the energy does not depend on {names} (zero gradient on 64 random points), so "
            f"the Boltzmann distribution is not normalisable along it. Is --dim {system.dim} right?"
        )


def check_finite(system: Energy, x: torch.Tensor, what: str) -> torch.Tensor:
    """Reduced energies ``[n]`` of ``x`` ``[n, dim]``; raise an error naming how many and which are NaN/inf.

    Arguments:
        system: the energy.
        x: the configurations ``[n, dim]``.
        what: what ``x`` is, for the message (e.g. ``"starting points"``).
    """
    with torch.no_grad():
        u = system.energy(x)
    bad = ~torch.isfinite(u)
    if bad.any():
        n_bad = int(bad.sum())
        first = x[bad][0].tolist()
        shown = ", ".join(f"{v:.4g}" for v in first[:6]) + (", ..." if len(first) > 6 else "")
        raise MlmolError(
            f"{system.name}: the energy is NaN or inf at {n_bad} of {len(u)} {what} "
            f"(first at x = [{shown}], u = {u[bad][0].item()}). Fix the energy function or "
            "start from configurations where it is finite."
        )
    return u

