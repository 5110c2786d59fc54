"""An energy that no built-in system defines: a tilted double well with a curved valley.

u(x) = 5 (x0² − 1)² + 0.8 x0 + (x1 − 0.6 x0²)²   (reduced units, kT = 1)

    mlmol train --energy examples/tilted_well.py:tilted --dim 2 --out runs/tilted
"""

import torch


def tilted(x: torch.Tensor) -> torch.Tensor:
    """Reduced energy of a [batch, 2] tensor, shape [batch]."""
    return 5.0 * (x[:, 0] ** 2 - 1.0) ** 2 + 0.8 * x[:, 0] + (x[:, 1] - 0.6 * x[:, 0] ** 2) ** 2
