"""Neural operators (Li et al., ICLR 2021).

- :mod:`~mlmol.operators.fno`: the Fourier neural operator in 1D and 2D, and the relative L2 loss.
- :mod:`~mlmol.operators.burgers`: Burgers' equation data (random initial conditions, ETDRK4 solver).
- :mod:`~mlmol.operators.darcy`: Darcy flow data (thresholded random coefficient, finite differences).
- :mod:`~mlmol.operators.smoluchowski`: the 1D Smoluchowski equation, its finite-volume propagator, random
  double-well potentials and densities.
- :mod:`~mlmol.operators.problems`: the data sets (made, stored, split, subsampled) and reference predictors.
- :mod:`~mlmol.operators.report`: the report of an operator run.
- :mod:`~mlmol.operators.run`: a run (``mlmol operator``): training through
  :func:`mlmol.train.fit`, evaluation at several resolutions, figures.
"""

from .fno import FNO, SpectralConv, relative_l2

__all__ = ["FNO", "SpectralConv", "relative_l2"]
