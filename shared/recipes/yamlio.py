"""A safe YAML loader with YAML 1.2 scalars and no duplicate keys.

PyYAML's ``safe_load`` follows YAML 1.1, where ``time_limit: 1:30:00`` silently becomes the
integer 5400 (base 60) and ``no`` becomes ``False``. Recipes are full of times and short
words, so this loader keeps only the YAML 1.2 core resolvers (``true``/``false``, ``null``,
decimal/hex/octal ints, floats). A key given twice is an error instead of "last one wins".
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class RecipeYamlError(ValueError):
    """The text is not valid recipe YAML; the message has the line and column."""


class _Loader(yaml.SafeLoader):
    """SafeLoader (no object construction) with YAML 1.2 core-schema implicit types."""


_Loader.yaml_implicit_resolvers = {}
_RESOLVERS: list[tuple[str, str, list[str]]] = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", [*"~nN", ""]),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
]
for _tag, _pattern, _first in _RESOLVERS:
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.startswith("0x") else int(text, 10)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            mark = key_node.start_mark
            raise RecipeYamlError(
                f"key {key!r} appears twice (line {mark.line + 1}, column {mark.column + 1})"
            )
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raises :class:`RecipeYamlError` with a position."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        where = ""
        if exc.problem_mark is not None:
            where = f" at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
        raise RecipeYamlError(f"invalid YAML: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        raise RecipeYamlError(f"invalid YAML: {exc}".replace("\n", " ")) from None
