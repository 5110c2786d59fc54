"""Units: energies in kJ/mol, lengths in nm, reduced energies u = U / kT."""

from __future__ import annotations

BOLTZMANN_KJ_MOL_K = 0.008314462618  # k_B in kJ/(mol K), CODATA 2018 (N_A k_B)


def kT_kj_mol(temperature_k: float) -> float:
    """Thermal energy kT in kJ/mol at a temperature in kelvin."""
    if temperature_k <= 0:
        raise ValueError(f"temperature must be positive, got {temperature_k} K")
    return BOLTZMANN_KJ_MOL_K * temperature_k

