"""Gradients through simulators: zeroth-, first- and α-order estimators (Suh et al., ICML 2022).

- :mod:`~mlmol.diffsim.gradients`: the three estimators of the gradient of a Gaussian-smoothed
  objective, for any batched objective ``f(theta [n, d]) -> [n]``, each with its variance.
- :mod:`~mlmol.diffsim.tasks`: differentiable simulators with a discontinuity (ball and wall),
  stiffness (pushing through a penalty contact), a smooth control problem, and Langevin
  dynamics in the double well and of a molecule (alanine dipeptide through the native torch
  force field).
"""

from .gradients import (
    GradientEstimate,
    alpha_blend,
    alpha_order,
    first_order,
    smoothed_gradient_quadrature,
    smoothed_value_quadrature,
    zeroth_order,
)
from .tasks import BallWithWall, LangevinBias, LinearQuadratic, MoleculeLangevin, Pushing

__all__ = [
    "BallWithWall",
    "GradientEstimate",
    "LangevinBias",
    "LinearQuadratic",
    "MoleculeLangevin",
    "Pushing",
    "alpha_blend",
    "alpha_order",
    "first_order",
    "smoothed_gradient_quadrature",
    "smoothed_value_quadrature",
    "zeroth_order",
]
