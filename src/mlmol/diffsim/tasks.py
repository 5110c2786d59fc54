"""Differentiable simulators for the gradient-estimator comparison, batched in PyTorch.

Each task is a callable ``f(theta [n, d]) -> cost [n]`` (lower is better), differentiable
by autograd wherever the simulator is, with ``dim`` parameters and a starting point ``theta0``:

- :class:`BallWithWall`: the paper's ball thrown at a wall (launch angle θ in rad). The
  landing distance jumps where the ball starts clearing the wall: a discontinuity.
- :class:`Pushing`: a pusher with initial speed θ strikes a box through a penalty contact of
  stiffness k (semi-implicit Euler): stiff but continuous dynamics.
- :class:`LinearQuadratic`: open-loop controls of a damped double integrator with quadratic
  cost: smooth, the smoothed gradient is exactly the gradient.
- :class:`LangevinBias`: overdamped Langevin dynamics in the double well of
  :class:`~mlmol.systems.DoubleWell` plus a linear bias θ x₁; the cost is an observable after
  T steps. Each evaluation draws its own noise path (a stochastic simulator).
- :class:`MoleculeLangevin`: the same question on a molecule: overdamped Langevin dynamics of
  all atoms of alanine dipeptide (or any molecule's torch-backend energy) with a bias θ cos φ
  on a backbone torsion; forces come from the native torch force field, and the first-order
  gradient backpropagates through them (second derivatives of the force field).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from ..errors import MlmolError
from ..systems import DoubleWell

if TYPE_CHECKING:
    from ..systems.molecule import Molecule


class BallWithWall:
    """Cost −x_final² of a ball launched at angle θ with speed ``v0`` towards a wall of height
    ``wall_height`` at ``wall_distance`` (the paper's example and constants: v0 = 1 m/s, wall at
    0.06 m, 0.02 m high, g = 9.81 m/s²). A ball that lands short of the wall lands at its range
    v0² sin 2θ / g; one that reaches the wall below its top stops there (x_final = wall
    distance); one that clears it lands at its range. The cost jumps at the two angles where the
    ball starts and stops clearing the wall (≈ 0.693 and 1.199 rad).

    Called on angles θ ``[n, 1]`` (radians), it returns costs ``[n]`` (m²).

    Arguments:
        v0: the launch speed (m/s).
        wall_distance: the wall's distance from the launch point (m).
        wall_height: the wall's height (m).
        g: the gravitational acceleration (m/s²).

    Example:
        >>> BallWithWall()(torch.tensor([[0.5], [0.9]]))  # stopped by the wall; over it
        tensor([-0.0036, -0.0099])
    """

    dim = 1
    theta0 = (0.5,)

    def __init__(self, v0: float = 1.0, wall_distance: float = 0.06, wall_height: float = 0.02,
                 g: float = 9.81) -> None:
        self.v0, self.wall_distance, self.wall_height, self.g = v0, wall_distance, wall_height, g

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        angle = theta[:, 0]
        reach = self.v0**2 * torch.sin(2 * angle) / self.g
        d = self.wall_distance
        height_at_wall = torch.tan(angle) * d - 0.5 * self.g * d**2 / (self.v0**2 * torch.cos(angle) ** 2)
        blocked = (reach > d) & (height_at_wall <= self.wall_height)
        x_final = torch.where(blocked, torch.full_like(reach, d), reach)
        return -x_final**2

    def __repr__(self) -> str:
        return f"BallWithWall(wall at {self.wall_distance} m, {self.wall_height} m high)"


class Pushing:
    """A pusher (mass 1) leaves x = 0 with speed θ towards a box (mass 1) at ``gap``; contact
    force k · max(0, x_pusher − x_box) (penalty contact of stiffness ``stiffness``), viscous
    friction ``friction`` on both bodies, ``steps`` semi-implicit Euler steps of ``dt``. The cost
    is (x_box(T) − ``target``)².

    Called on initial speeds θ ``[n, 1]``, it returns costs ``[n]`` (dimensionless units throughout).

    Arguments:
        stiffness: the contact stiffness k.
        gap: the box's initial position.
        target: the box's target position.
        friction: the viscous friction coefficient.
        dt: the time step.
        steps: the number of steps.
    """

    dim = 1
    theta0 = (1.0,)

    def __init__(self, stiffness: float = 100.0, gap: float = 0.2, target: float = 0.6, friction: float = 1.0,
                 dt: float = 0.01, steps: int = 300) -> None:
        self.stiffness, self.gap, self.target, self.friction = stiffness, gap, target, friction
        self.dt, self.steps = dt, steps

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return (self.final_positions(theta)[1] - self.target) ** 2

    def final_positions(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions ``[n]`` of the pusher and of the box after ``steps`` steps, for speeds θ ``[n, 1]``."""
        pusher, box = torch.zeros_like(theta[:, 0]), torch.full_like(theta[:, 0], self.gap)
        v_pusher, v_box = theta[:, 0], torch.zeros_like(theta[:, 0])
        for _ in range(self.steps):
            contact = self.stiffness * torch.relu(pusher - box)
            v_pusher = v_pusher + self.dt * (-contact - self.friction * v_pusher)
            v_box = v_box + self.dt * (contact - self.friction * v_box)
            pusher, box = pusher + self.dt * v_pusher, box + self.dt * v_box
        return pusher, box

    def __repr__(self) -> str:
        return f"Pushing(stiffness={self.stiffness})"


class LinearQuadratic:
    """Open-loop control u₀ … u_{H−1} (θ, ``horizon`` of them) of a damped double integrator
    (position, velocity; dt 0.1, damping 0.1) from (1, 0); cost Σ |x_t|² + ``control_cost`` u_t²
    over the horizon plus |x_H|². Quadratic in θ, so F(θ) = f(θ) + const and ∇F = ∇f.

    Called on controls θ ``[n, horizon]``, it returns costs ``[n]`` (dimensionless).

    Arguments:
        horizon: the number of controls H (``dim``).
        control_cost: the weight of u_t² in the cost.
    """

    theta0: tuple[float, ...]

    def __init__(self, horizon: int = 20, control_cost: float = 0.1) -> None:
        self.horizon, self.control_cost = horizon, control_cost
        self.dim = horizon
        self.theta0 = (0.0,) * horizon
        self.a = torch.tensor([[1.0, 0.1], [0.0, 0.99]], dtype=torch.float64)
        self.b = torch.tensor([0.0, 0.1], dtype=torch.float64)

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        x = torch.tensor([1.0, 0.0], dtype=theta.dtype).expand(len(theta), 2)
        a, b = self.a.to(theta.dtype), self.b.to(theta.dtype)
        cost = torch.zeros(len(theta), dtype=theta.dtype)
        for t in range(self.horizon):
            u = theta[:, t]
            cost = cost + (x**2).sum(-1) + self.control_cost * u**2
            x = x @ a.T + u[:, None] * b
        return cost + (x**2).sum(-1)

    def __repr__(self) -> str:
        return f"LinearQuadratic(horizon={self.horizon})"


class LangevinBias:
    """Overdamped Langevin dynamics x ← x − Δt (∂u/∂x₁ + θ) + √(2 Δt τ) ξ along x₁ of the double
    well :class:`~mlmol.systems.DoubleWell` (reduced units; its x₂ is harmonic and decoupled, so
    it is left out), at thermal energy ``kT`` (reduced units), from the left minimum for ``steps``
    steps of ``dt``. The bias θ x₁ tilts the well. The cost is (⟨x₁⟩ − ``target``)², ⟨x₁⟩ the
    time average of x₁ over the second half of the path; each evaluation draws its own noise
    path, so f is itself random.

    Called on biases θ ``[n, 1]`` (reduced energy per unit length), it returns costs ``[n]``.

    Arguments:
        steps: the number of time steps.
        dt: the time step (reduced).
        kT: the thermal energy, in the units of the potential.
        target: the target of ⟨x₁⟩.
        generator: the source of the noise, or None for the global one.
    """

    dim = 1
    theta0 = (0.0,)

    def __init__(self, steps: int = 1000, dt: float = 0.005, kT: float = 3.0, target: float = 0.0,
                 generator: torch.Generator | None = None) -> None:
        self.steps, self.dt, self.kT, self.target = steps, dt, kT, target
        self.system = DoubleWell()
        self.generator = generator

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        a, b, c = self.system.a, self.system.b, self.system.c
        x = torch.full_like(theta[:, 0], self.system.minima[0][0])
        noise_scale = math.sqrt(2 * self.dt * self.kT)
        total, start = torch.zeros_like(x), self.steps // 2
        for step in range(self.steps):
            force = -(4 * a * x**3 + 2 * b * x + c) - theta[:, 0]
            x = x + self.dt * force + noise_scale * torch.randn(x.shape, generator=self.generator, dtype=x.dtype)
            if step >= start:
                total = total + x
        return (total / (self.steps - start) - self.target) ** 2

    def __repr__(self) -> str:
        return f"LangevinBias(steps={self.steps}, kT={self.kT})"


class MoleculeLangevin:
    """Overdamped Langevin dynamics of every atom of a molecule in reduced energy u = U/kT:
    x ← x − s ∇(u + θ cos φ) + √(2 s) ξ, with ``step`` s = D Δt in nm², from the molecule's
    structure for ``steps`` steps. The scheme is stable for s < 2/λ_max; alanine dipeptide's
    largest Hessian eigenvalue at its structure is about 5.5e5 kT/nm² (amber99sbildn, 300 K), so
    the default 1e-6 nm² has s λ_max ≈ 0.55. θ (in kT) biases the torsion ``torsion`` (φ by
    default). The cost is the time average of cos φ over the second half of the path. Each
    evaluation draws its own noise path; ``energy`` defaults to vacuum alanine dipeptide through
    the native torch force field (float64), whose second derivatives the first-order gradient
    needs.

    Called on biases θ ``[n, 1]`` (kT), it returns the averages of cos φ ``[n]``.

    Arguments:
        steps: the number of time steps.
        step: the step s = D Δt (nm²).
        energy: a molecule with a torch-backend energy and the torsion in its ``variables``
            (default: vacuum alanine dipeptide).
        torsion: the name of the biased torsion.
        generator: the source of the noise, or None for the global one.

    Example:
        >>> task = MoleculeLangevin(steps=10)  # doctest: +SKIP
        >>> task(torch.zeros(4, 1)).shape  # doctest: +SKIP
        torch.Size([4])
    """

    dim = 1
    theta0 = (0.0,)

    def __init__(self, steps: int = 100, step: float = 1e-6, energy: Molecule | None = None, torsion: str = "phi",
                 generator: torch.Generator | None = None) -> None:
        from ..systems.molecules import alanine_dipeptide

        self.steps, self.step, self.torsion = steps, step, torsion
        self.energy = energy if energy is not None else alanine_dipeptide(backend="torch")
        variables = self.energy.variables
        if torsion not in variables:
            raise MlmolError(f"the energy has no torsion {torsion!r}; it has {sorted(variables)}")
        self.generator = generator

    def gradient(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """∇ₓ(u + θ cos φ) ``[n, 3N]`` (kT/nm) at ``x`` ``[n, 3N]`` (nm) for θ ``[n, 1]`` (kT), differentiable in x
        and θ when autograd is recording."""
        recording = torch.is_grad_enabled()
        with torch.enable_grad():
            y = x if x.requires_grad else x.detach().requires_grad_(True)
            u = self.energy.energy(y) + theta[:, 0] * torch.cos(self.energy.variables[self.torsion](y))
            (gradient,) = torch.autograd.grad(u.sum(), y, create_graph=recording)
        return gradient if recording else gradient.detach()

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(self.energy.positions, dtype=theta.dtype).reshape(1, -1).repeat(len(theta), 1)
        noise_scale, torsion = math.sqrt(2 * self.step), self.energy.variables[self.torsion]
        total, start = theta.new_zeros(len(theta)), self.steps // 2
        for step in range(self.steps):
            noise = torch.randn(x.shape, generator=self.generator, dtype=x.dtype)
            x = x - self.step * self.gradient(x, theta) + noise_scale * noise
            if step >= start:
                total = total + torch.cos(torsion(x))
        return total / (self.steps - start)

    def __repr__(self) -> str:
        return f"MoleculeLangevin({self.energy.name}, steps={self.steps}, step={self.step} nm²)"
