"""The recipe registry: name -> Recipe. Stages, the CLI and the trainer look recipes up here, never by branch.

The built-in recipes load on first use (their modules import no TensorFlow at import time); a new recipe is one
package plus one ``REGISTRY.register(...)`` call (see docs/ARCHITECTURE.md section 6).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from transforms.recipes.base import AnalysisPass, Recipe, resolve

__all__ = ["REGISTRY", "AnalysisPass", "Recipe", "get_recipe", "resolve"]

_BUILTIN = ("transforms.recipes.g2net.recipe", "transforms.recipes.tce.recipe")


class Registry(Mapping[str, Recipe]):
    """Recipes by name; the built-ins are imported lazily on first lookup."""

    def __init__(self, builtin: tuple[str, ...]):
        self._builtin = builtin
        self._recipes: dict[str, Recipe] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._builtin:
                self.register(importlib.import_module(module).RECIPE)

    def register(self, recipe: Recipe, replace: bool = False) -> Recipe:
        """Adds ``recipe`` under ``recipe.name`` (an identifier: it is also the config section's key)."""
        self._load()
        if not isinstance(recipe, Recipe):
            raise TypeError(f"{recipe!r} does not satisfy the Recipe protocol")
        if not recipe.name.isidentifier():
            raise ValueError(f"recipe name {recipe.name!r} must be an identifier (it is a config key)")
        if recipe.name in self._recipes and not replace and self._recipes[recipe.name] is not recipe:
            raise ValueError(f"recipe {recipe.name!r} is already registered")
        self._recipes[recipe.name] = recipe
        return recipe

    def unregister(self, name: str) -> None:
        self._load()
        self._recipes.pop(name, None)

    def __getitem__(self, name: str) -> Recipe:
        self._load()
        return self._recipes[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(sorted(self._recipes))

    def __len__(self) -> int:
        self._load()
        return len(self._recipes)


REGISTRY = Registry(_BUILTIN)


def get_recipe(name: str) -> Recipe:
    """The registered recipe ``name``; KeyError names the registered ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown recipe {name!r}; registered: {', '.join(REGISTRY)}") from None
