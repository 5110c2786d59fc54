"""Drawing reweightable samples from a trained flow."""

from __future__ import annotations

import torch

from .data import Samples, zero_weight_nonfinite
from .flows import Flow
from .systems import Energy


@torch.no_grad()
def sample(flow: Flow, system: Energy, n: int, tau: float = 1.0, seed: int = 0,
           batch_size: int = 20_000) -> Samples:
    """``n`` flow samples with log weights for the Boltzmann distribution at ``tau · kT``.

    log w = −u(x)/τ − log q_τ(x), with τ the latent temperature; energies are reduced at τ·kT.
    Where the system has a canonical domain (:meth:`~mlmol.systems.Energy.in_canonical`: the
    flow learnt one copy of each configuration), samples outside it get weight zero.
    """
    device = flow.device
    generator = torch.Generator(device=device).manual_seed(seed)
    xs, log_qs, us = [], [], []
    for start in range(0, n, batch_size):
        x, log_q = flow.sample_with_log_prob(min(batch_size, n - start), tau, generator)
        x = x.double()
        us.append(system.energy(x.to(device)).double().cpu() / tau)
        xs.append(x.cpu())
        log_qs.append(log_q.double().cpu())
    x, log_q, u = torch.cat(xs), torch.cat(log_qs), torch.cat(us)
    log_weights = zero_weight_nonfinite(-u - log_q)
    inside = system.in_canonical(x)
    if inside is not None:
        log_weights[~inside.cpu()] = -torch.inf
    return Samples(x=x, log_weights=log_weights, energy=u, kT=system.kT * tau)
