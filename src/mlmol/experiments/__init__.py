"""Named training recipes (system + schedule), one file each."""

import inspect

from .klein2023 import klein2023
from .noe2019 import LOSSES, noe2019

RECIPES = {"noe2019": noe2019, "klein2023": klein2023}


def recipe_defaults(name: str) -> dict:
    """The keyword defaults of a recipe, for a fully resolved config."""
    signature = inspect.signature(RECIPES[name])
    return {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}


__all__ = ["noe2019", "klein2023", "RECIPES", "LOSSES", "recipe_defaults"]
