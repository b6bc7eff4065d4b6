"""Finding and loading recipe files safely.

Recipe references arrive from the CLI and over the bus, so a reference is checked for shape
*before* any path is built from it, and the resolved file must still lie under the recipes
root (a symlink cannot lead elsewhere).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from aifactory.shared.recipes.errors import FieldError, RecipeError
from aifactory.shared.recipes.fields import Category
from aifactory.shared.recipes.overrides import deep_merge
from aifactory.shared.recipes.schema import Recipe, validate_recipe
from aifactory.shared.recipes.yamlio import RecipeYamlError, load_yaml

_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SUFFIX = ".yaml"


class RecipeRef(BaseModel):
    """One recipe file: ``category/name`` and where it is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: Category
    name: str
    path: Path

    @property
    def ref(self) -> str:
        return f"{self.category.value}/{self.name}"

    def __str__(self) -> str:
        return self.ref


def _ref_error(ref_name: str, reason: str) -> RecipeError:
    return RecipeError([FieldError(path="recipe", reason=f"{ref_name!r}: {reason}")])


def parse_ref(ref_name: str) -> tuple[Category, str]:
    """Split and check ``category/name`` without touching the file system."""
    if "\\" in ref_name or ref_name.startswith("/") or "\x00" in ref_name:
        raise _ref_error(ref_name, "use category/name, not a file path")
    parts = ref_name.split("/")
    if len(parts) != 2:
        raise _ref_error(ref_name, "use category/name, e.g. inference/vllm-single-node")
    category, name = parts
    for segment in parts:
        if ".." in segment or not _SEGMENT.fullmatch(segment):
            raise _ref_error(
                ref_name,
                "each part must be a-z, 0-9, '.', '_', '-', start with a letter or digit, "
                "and contain no '..'",
            )
    valid = [c.value for c in Category]
    if category not in valid:
        raise _ref_error(ref_name, f"unknown category {category!r}; valid: {', '.join(valid)}")
    return Category(category), name


def list_recipes(root: Path) -> list[RecipeRef]:
    """Every ``<category>/<name>.yaml`` under ``root``, sorted; other files are ignored."""
    refs: list[RecipeRef] = []
    for category in Category:
        folder = root / category.value
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            name = path.name.removesuffix(SUFFIX)
            if path.is_file() and _SEGMENT.fullmatch(name) and ".." not in name:
                refs.append(RecipeRef(category=category, name=name, path=path))
    return refs


def _path_for(ref_name: str, root: Path) -> Path:
    category, name = parse_ref(ref_name)
    base = root.resolve()
    path = (root / category.value / f"{name}{SUFFIX}").resolve()
    if not path.is_relative_to(base):
        raise _ref_error(ref_name, f"resolves outside the recipes directory {base}")
    if not path.is_file():
        available = [r.ref for r in list_recipes(root) if r.category is category]
        listing = ", ".join(available) if available else "none"
        raise _ref_error(
            ref_name, f"no such recipe under {root}; available {category.value} recipes: {listing}"
        )
    return path


def load_recipe(ref_name: str, root: Path, overrides: Mapping[str, Any] | None = None) -> Recipe:
    """Load ``root/<category>/<name>.yaml``, merge ``overrides`` onto it, validate the result."""
    path = _path_for(ref_name, root)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except RecipeYamlError as exc:
        raise RecipeError([FieldError(path="", reason=str(exc))], source=ref_name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _ref_error(ref_name, f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(
            [FieldError(path="", reason="the file must be a YAML mapping of recipe fields")],
            source=ref_name,
        )
    if overrides:
        bad_keys = [k for k in _all_keys(overrides) if not isinstance(k, str)]
        if bad_keys:
            raise RecipeError(
                [FieldError(path="overrides", reason=f"keys must be strings, got {bad_keys[0]!r}")]
            )
        data = deep_merge(data, overrides)
    recipe = validate_recipe(data, source=ref_name)
    category, name = parse_ref(ref_name)
    pairs = (("name", recipe.name, name), ("category", recipe.category.value, category.value))
    mismatched = [
        FieldError(path=field, reason=f"{got!r} does not match the file {ref_name}{SUFFIX}")
        for field, got, want in pairs
        if got != want
    ]
    if mismatched:
        raise RecipeError(mismatched, source=ref_name)
    return recipe


def _all_keys(data: Mapping[Any, Any]) -> list[Any]:
    keys: list[Any] = []
    for key, value in data.items():
        keys.append(key)
        if isinstance(value, Mapping):
            keys.extend(_all_keys(value))
    return keys


def load_service_recipe(
    ref_name: str, root: Path, overrides: Mapping[str, Any] | None = None
) -> Recipe:
    """``load_recipe`` for ``deploy``: the recipe must describe a service with an endpoint.

    ``client`` recipes such as ``client/loadgen`` have no port to serve or health-check; they
    are launched by benchmarks (``worker_nodes``), not deployed as services.
    """
    recipe = load_recipe(ref_name, root, overrides)
    if not recipe.ports:
        raise RecipeError(
            [
                FieldError(
                    path="ports",
                    reason=f"recipe {ref_name} serves no port, so it cannot be deployed as a "
                    "service (client recipes are launched by benchmarks with worker_nodes)",
                )
            ]
        )
    return recipe
