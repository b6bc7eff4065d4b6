"""User overrides: ``--set a.b.c=value`` parsing and the deep merge onto a recipe.

Overrides are plain data merged onto the recipe's YAML *before* validation, so an override
is checked exactly like the recipe itself and its errors name the same field paths.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aifactory.shared.recipes.errors import FieldError, RecipeError
from aifactory.shared.recipes.yamlio import RecipeYamlError, load_yaml

_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: mappings merge recursively; lists and scalars in ``override`` replace.

    Neither input is modified and the result shares no mutable parts with them.
    """
    out: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = out.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            out[key] = deep_merge(current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _option_error(item: str, reason: str) -> RecipeError:
    return RecipeError([FieldError(path=f"--set {item!r}", reason=reason)])


def parse_set_options(items: Iterable[str]) -> dict[str, Any]:
    """``["resources.gpu=4", "extra_args=[--max-model-len, 4096]"]`` → nested dict.

    The value is one YAML value (``4`` → int, ``true`` → bool, ``[a, b]`` → list, empty →
    null which resets an optional field); it is data, never evaluated further.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise _option_error(item, "expected KEY=VALUE, e.g. resources.gpu=4")
        segments = key.strip().split(".")
        bad = [s for s in segments if not _KEY_SEGMENT.fullmatch(s)]
        if bad:
            raise _option_error(
                item, f"invalid key segment {bad[0]!r}: use letters, digits, '_' and '-'"
            )
        try:
            value = load_yaml(raw)
        except RecipeYamlError as exc:
            raise _option_error(
                item, f"{exc}; to pass text as is, wrap it in YAML quotes: key='text'"
            ) from None
        node = out
        for depth, segment in enumerate(segments[:-1]):
            child = node.setdefault(segment, {})
            if not isinstance(child, dict):
                where = ".".join(segments[: depth + 1])
                raise _option_error(item, f"{where} was already set to a value")
            node = child
        leaf = segments[-1]
        if isinstance(node.get(leaf), dict):
            raise _option_error(item, f"{key} already has sub-keys set")
        node[leaf] = value
    return out
