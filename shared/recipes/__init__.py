"""Recipes: YAML descriptions of deployable services, validated, overridable, listable.

See design.md §4. ``load_recipe("inference/vllm-single-node", root, overrides)`` is the
entry point; everything it raises is a :class:`RecipeError` naming the field paths at fault.
"""

from __future__ import annotations

from aifactory.shared.recipes.errors import FieldError, RecipeError
from aifactory.shared.recipes.fields import ApptainerMode, Category, Runtime
from aifactory.shared.recipes.loader import (
    RecipeRef,
    list_recipes,
    load_recipe,
    load_service_recipe,
    parse_ref,
)
from aifactory.shared.recipes.overrides import deep_merge, parse_set_options
from aifactory.shared.recipes.schema import (
    ApptainerOptions,
    Bind,
    Distributed,
    Endpoint,
    Health,
    Recipe,
    Replicas,
    Resources,
    validate_recipe,
)

__all__ = [
    "ApptainerMode",
    "ApptainerOptions",
    "Bind",
    "Category",
    "Distributed",
    "Endpoint",
    "FieldError",
    "Health",
    "Recipe",
    "RecipeError",
    "RecipeRef",
    "Replicas",
    "Resources",
    "Runtime",
    "deep_merge",
    "list_recipes",
    "load_recipe",
    "load_service_recipe",
    "parse_ref",
    "parse_set_options",
    "validate_recipe",
]
