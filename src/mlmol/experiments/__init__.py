"""Named training recipes (system + schedule), one file each."""

import inspect

from .klein2023 import klein2023
from .midgley2023 import midgley2023
from .noe2019 import LOSSES, noe2019
from .schopmans2025 import schopmans2025

RECIPES = {"noe2019": noe2019, "klein2023": klein2023, "midgley2023": midgley2023, "schopmans2025": schopmans2025}
ENERGY_ONLY = ("midgley2023", "schopmans2025")  # recipes that train from the energy alone: no data are made


def recipe_defaults(name: str) -> dict:
    """The keyword defaults of a recipe, for a fully resolved config."""
    signature = inspect.signature(RECIPES[name])
    return {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}


__all__ = ["ENERGY_ONLY", "LOSSES", "RECIPES", "klein2023", "midgley2023", "noe2019", "recipe_defaults",
           "schopmans2025"]
