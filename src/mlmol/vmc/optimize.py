"""Variational Monte Carlo: minimise E[ψ] = ⟨E_L⟩_{|ψ|²} over the wavefunction's parameters.

The gradient is the VMC estimator ∇E = 2 ⟨(E_L − ⟨E_L⟩) ∇ log|ψ|⟩ over walkers sampled from
|ψ|², with local energies clipped as in FermiNet (to the median ± ``clip`` times their mean
absolute deviation from it) for the gradient only. Non-finite local energies are counted and
left out of the step; a run whose step has none finite stops with an error (the caller
restarts from the last checkpoint).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from ..errors import MlmolError
from ..estimators import Estimate
from ..losses import Batch, Diverged, Loss
from .hamiltonian import local_energy
from .sampling import Walkers, blocking_error
from .systems import ElectronicSystem


def clipped(energies: torch.Tensor, clip: float) -> torch.Tensor:
    """Local energies clipped to median ± ``clip`` · mean |E − median| (FermiNet's rule)."""
    median = energies.median()
    spread = (energies - median).abs().mean()
    return energies.clamp(median - clip * spread, median + clip * spread)


@dataclass(frozen=True)
class VMCEnergy(Estimate):
    """A VMC energy (hartree) with its blocking standard error: the shared ``Estimate`` (``n_eff`` is
    the number of independent samples worth as much, var(E_L) / stderr²) plus the ``samples`` drawn
    and the blocking level's ``block`` length in steps."""

    samples: int = 0
    block: int = 1
    series: tuple[float, ...] = field(default=(), repr=False)  # the per-sweep walker means, in order

    def __str__(self) -> str:
        return f"{self.value:.6f} ± {self.stderr:.6f} Ha"


class NaturalGradient(torch.optim.Optimizer):
    """Stochastic reconfiguration (imaginary-time natural gradient) solved in the space of the B
    samples, "minSR" (Chen & Heyl, Nat. Phys. 2024): with Ō the centred per-sample gradients of
    log|ψ| and ε the centred local energies, both divided by √B,

        δθ = Ōᵀ (Ō Ōᵀ + λ I)⁻¹ ε = (S + λ)⁻¹ ∇E / 2,   S = ŌᵀŌ,

    a B × B solve instead of the P × P one. The step θ ← θ − η δθ is shortened where needed so that
    η² δθᵀ S δθ ≤ ``max_norm`` (as KFAC in FermiNet constrains its steps). ``lr`` is η."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 0.05, damping: float = 1e-3, max_norm: float = 1e-3,
                 source: VMCObjective | None = None):
        super().__init__(params, {"lr": lr, "damping": damping, "max_norm": max_norm})
        self.source = source

    @torch.no_grad()
    def step(self, jacobian: torch.Tensor | None = None,  # type: ignore[override]
             energies: torch.Tensor | None = None) -> None:
        """Update from ``jacobian`` ``[B, P]`` (∂ log|ψ(x_b)| / ∂θ, parameters in ``param_groups``
        order) and the (clipped) local ``energies`` ``[B]``; by default those the ``source``
        objective computed in this training step."""
        if jacobian is None or energies is None:
            if self.source is None or self.source.evidence is None:
                raise MlmolError("NaturalGradient.step needs the Jacobian and local energies, or a source objective")
            jacobian, energies = self.source.evidence
        group = self.param_groups[0]
        b = len(energies)
        o = (jacobian - jacobian.mean(0)) / math.sqrt(b)
        eps = (energies - energies.mean()) / math.sqrt(b)
        gram = o @ o.T
        gram.diagonal().add_(group["damping"])
        try:
            delta = o.T @ torch.linalg.solve(gram, eps)
        except torch.linalg.LinAlgError as error:  # non-finite gradients: the wavefunction has diverged
            raise Diverged(f"the natural-gradient solve failed ({error}); restart from the last checkpoint "
                             "with a smaller learning rate") from None
        quadratic = float((o @ delta).square().sum())
        lr = min(group["lr"], math.sqrt(group["max_norm"] / quadratic)) if quadratic > 0 else group["lr"]
        offset = 0
        for p in group["params"]:
            p.sub_(lr * delta[offset:offset + p.numel()].view_as(p).to(p.dtype))
            offset += p.numel()


def log_abs_jacobian(wavefunction: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-sample gradients ∂ log|ψ(x_b)| / ∂θ as ``[B, P]`` (parameters in ``parameters()`` order)."""
    params = {k: v.detach() for k, v in wavefunction.named_parameters()}
    buffers = dict(wavefunction.named_buffers())

    def log_abs(p, xi):
        return functional_call(wavefunction, (p, buffers), (xi[None],))[1][0]

    grads = vmap(grad(log_abs), in_dims=(None, 0))(params, x.detach())
    return torch.cat([grads[k].reshape(len(x), -1) for k in params], 1)


class VMCObjective(Loss):
    """The VMC energy as a loss for :func:`mlmol.train.fit`: each step moves the walkers
    ``mcmc_steps`` sweeps, evaluates the local energies E_L ``[B]`` (hartree) and gives the VMC
    gradient 2 ⟨(E_L − ⟨E_L⟩) ∇ log|ψ|⟩ with clipped E_L (the loss value is ⟨E_L⟩). With
    ``natural_gradient`` it leaves the per-sample Jacobian and energies in ``evidence`` for a
    :class:`NaturalGradient` optimiser instead. The walkers are its checkpointed state.

    Raises :class:`~mlmol.losses.Diverged` when every local energy is non-finite or when the
    local-energy variance explodes (over 100 times the median of the last 100 steps': the sign of
    an update that threw the wavefunction off, seen with the natural gradient on Slater–Jastrow H₂).
    """

    name = "energy"

    def __init__(self, molecule: ElectronicSystem, walkers: Walkers, mcmc_steps: int = 10, clip: float = 5.0,
                 natural_gradient: bool = False):
        self.molecule, self.walkers, self.mcmc_steps, self.clip = molecule, walkers, mcmc_steps, clip
        self.natural_gradient = natural_gradient
        self.variances: deque[float] = deque(maxlen=100)  # recent local-energy variances
        self.evidence: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        wavefunction = batch.model
        acceptance = self.walkers.step(self.mcmc_steps)
        x = self.walkers.x
        energies = local_energy(wavefunction, x, self.molecule)
        finite = torch.isfinite(energies)
        if not finite.any():
            raise Diverged("every local energy was non-finite: the wavefunction has diverged")
        variance = float(energies[finite].var())
        if len(self.variances) == self.variances.maxlen and variance > 100 * statistics.median(self.variances):
            raise Diverged(f"the local-energy variance exploded to {variance:.3g}")
        self.variances.append(variance)
        mean = energies[finite].mean()
        e = clipped(energies[finite], self.clip)
        if self.natural_gradient:
            self.evidence = (log_abs_jacobian(wavefunction, x[finite]), e)
            value = mean.detach()
        else:
            log_abs = wavefunction(x[finite])[1]
            surrogate = 2 * ((e - e.mean()).detach() * log_abs).mean()
            value = mean.detach() + surrogate - surrogate.detach()  # the energy, with the VMC gradient
        return value, {"energy": float(mean), "variance": variance, "acceptance": acceptance,
                       "width": self.walkers.width, "nonfinite": int((~finite).sum())}

    def state_dict(self) -> dict:
        return {"x": self.walkers.x, "width": self.walkers.width, "generator": self.walkers.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.walkers.place(state["x"], state["width"])
        self.walkers.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"VMCObjective({self.molecule.name}, mcmc_steps={self.mcmc_steps}, clip={self.clip:g})"


def evaluate(wavefunction: nn.Module, walkers: Walkers, molecule: ElectronicSystem, steps: int = 200,
             mcmc_steps: int = 10) -> VMCEnergy:
    """The energy ⟨E_L⟩ over ``steps`` × walkers samples, with the blocking standard error of the
    per-step walker means (successive steps are correlated)."""
    means, squares = [], []
    for _ in range(steps):
        walkers.step(mcmc_steps)
        energies = local_energy(wavefunction, walkers.x, molecule)
        energies = energies[torch.isfinite(energies)]
        means.append(float(energies.mean()))
        squares.append(float((energies**2).mean()))
    value, stderr, block = blocking_error(np.asarray(means))
    variance = float(np.mean(squares)) - value**2
    return VMCEnergy(value, stderr, variance / stderr**2 if stderr > 0 else math.inf, steps * len(walkers.x), block,
                     tuple(means))
