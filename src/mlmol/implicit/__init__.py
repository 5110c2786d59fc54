"""Learning in implicit generative models (Mohamed & Lakshminarayanan 2016).

A simulator gives samples but no density. Learning it means estimating the ratio
r(x) = p_data(x) / q_model(x) from samples of both; :mod:`mlmol.implicit.principles` has the
paper's four ways to do that, as loss objects over (data samples, model samples).
"""

from .principles import ClassProbability, FDivergenceKL, MomentMatching, RatioMatching, mmd2

__all__ = ["ClassProbability", "FDivergenceKL", "MomentMatching", "RatioMatching", "mmd2"]
