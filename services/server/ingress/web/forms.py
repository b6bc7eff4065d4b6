"""HTML forms generated from the pydantic models, and form posts turned back into data.

The deploy form is the recipe schema (:class:`~aifactory.shared.recipes.Recipe`) walked
field by field: numbers, text, choices and switches get their own input; lists, maps and
nested lists of models are one YAML value each, read exactly as ``--set key=value`` reads
it. The form is prefilled from the chosen recipe and only the fields a user *changed* are
sent as overrides, so the service record says what was asked, not the whole recipe.

Nothing here validates: the form's data goes through the same functions as an API body
(the recipe loader, the ``Workload`` model), and their errors, which name field paths, are
attached back to the input of that path.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from aifactory.shared.recipes.yamlio import RecipeYamlError, load_yaml


class Kind(StrEnum):
    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CHOICE = "choice"
    YAML = "yaml"


@dataclass(frozen=True)
class FormField:
    path: str
    kind: Kind
    optional: bool
    #: The value the form is prefilled with (JSON data; ``None``: unset).
    default: Any
    choices: tuple[str, ...] = ()
    hint: str = ""

    @property
    def id(self) -> str:
        return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.path)

    @property
    def label(self) -> str:
        """The path inside its fieldset, in words (``input tokens mean``)."""
        inside = self.path.split(".", 1)[1] if "." in self.path else self.path
        return inside.replace(".", " ").replace("_", " ")

    @property
    def group(self) -> str:
        """The fieldset: the first part of the path (``""``: top-level fields)."""
        return self.path.split(".", 1)[0] if "." in self.path else ""

    @property
    def text(self) -> str:
        """The prefilled text of the input."""
        value = self.default
        if value is None:
            return ""
        if self.kind is Kind.YAML:
            return dump_yaml_value(value)
        if self.kind is Kind.BOOL:
            return "true" if value else ""
        return str(value)


def dump_yaml_value(value: Any) -> str:
    """One-line YAML (``[a, b]``, ``{http: 8000}``), as ``--set`` takes it."""
    import yaml

    return str(yaml.safe_dump(value, default_flow_style=True, width=10_000)).strip()


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The type inside ``Annotated``/``X | None``, and whether ``None`` is allowed."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        if len(args) == 1:
            inner, _ = _unwrap(args[0])
            return inner, optional
        return annotation, optional
    return annotation, False


def _kind(annotation: Any) -> tuple[Kind, tuple[str, ...]]:
    if get_origin(annotation) is Literal:
        return Kind.CHOICE, tuple(str(a) for a in get_args(annotation))
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return Kind.CHOICE, tuple(str(m.value) for m in annotation)
        if issubclass(annotation, bool):
            return Kind.BOOL, ()
        if issubclass(annotation, int):
            return Kind.INT, ()
        if issubclass(annotation, float):
            return Kind.FLOAT, ()
        if issubclass(annotation, str | Path):
            return Kind.TEXT, ()
    return Kind.YAML, ()


def _hint(kind: Kind, annotation: Any, metadata: Iterable[Any], optional: bool) -> str:
    parts = []
    for item in metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            bound = getattr(item, attr, None)
            if isinstance(item, annotated_types.BaseMetadata) and bound is not None:
                parts.append(f"{sign} {bound}")
    if kind is Kind.YAML:
        origin = get_origin(annotation)
        parts.append(
            "YAML list: [a, b]"
            if origin is list
            else "YAML map: {key: value}"
            if origin is dict
            else "a YAML value"
        )
    if optional and kind is not Kind.BOOL:
        parts.append("empty: unset")
    return ", ".join(parts)


def model_form(
    model: type[BaseModel],
    values: Mapping[str, Any],
    *,
    skip: Sequence[str] = (),
    only: Sequence[str] | None = None,
    prefix: str = "",
    optional_group: bool = False,
) -> list[FormField]:
    """The fields of ``model`` (nested models flattened to dotted paths), prefilled from
    ``values`` (JSON data). ``only``: these paths, in this order."""
    out: list[FormField] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if path in skip:
            continue
        inner, optional = _unwrap(info.annotation)
        value = values.get(name) if isinstance(values, Mapping) else None
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            out += model_form(
                inner,
                value if isinstance(value, Mapping) else {},
                skip=skip,
                only=None,
                prefix=f"{path}.",
                optional_group=optional_group or optional,
            )
            continue
        kind, choices = _kind(inner)
        optional = optional or optional_group
        hint = _hint(kind, inner, info.metadata, optional)
        out.append(FormField(path, kind, optional, value, choices, hint))
    if only is not None:
        by_path = {f.path: f for f in out}
        return [by_path[p] for p in only if p in by_path]
    return out


def model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """A model's defaults as JSON data, without validating it as a whole (a workload with
    no stop condition is invalid, but its fields still have defaults to show)."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.is_required():
            continue
        value = info.get_default(call_default_factory=True, validated_data={})
        out[name] = to_jsonable_python(value)
    return out


class FormErrors(dict[str, list[str]]):
    """Messages by field path; ``""`` holds those that belong to no input."""

    def add(self, fields: Sequence[FormField], path: str, message: str) -> None:
        self.setdefault(match_field(fields, path), []).append(message)

    @property
    def general(self) -> list[str]:
        return self.get("", [])


def match_field(fields: Sequence[FormField], path: str) -> str:
    """The input a problem at ``path`` belongs to (``extra_args[2]`` → ``extra_args``)."""
    best = ""
    for f in fields:
        if path == f.path or path.startswith((f"{f.path}.", f"{f.path}[")):
            best = f.path if len(f.path) > len(best) else best
    return best


def parse_field(field: FormField, raw: str | None) -> Any:
    """The posted text of one input as data (raises ``ValueError`` for unreadable YAML).

    Numbers that do not parse are passed on as text: the model's validation then names
    the field, exactly as it would for an API body."""
    if field.kind is Kind.BOOL:
        return raw not in (None, "", "false", "off")
    text = raw or ""
    if field.kind in (Kind.INT, Kind.FLOAT):
        text = text.strip()
        if not text:
            return None
        try:
            return int(text) if field.kind is Kind.INT else float(text)
        except ValueError:
            return text
    if field.kind is Kind.YAML:
        if not text.strip():
            return None if field.optional or field.default is None else type(field.default)()
        try:
            return load_yaml(text)
        except RecipeYamlError as exc:
            raise ValueError(f"not a YAML value: {exc}") from None
    if text == "" and (field.optional or field.kind is Kind.CHOICE):
        return None
    return text


def _same(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return float(a) == float(b)
    return bool(a == b)


def _put(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def changed_values(
    fields: Sequence[FormField], form: Mapping[str, str]
) -> tuple[dict[str, Any], FormErrors]:
    """The fields whose posted value differs from the prefilled one, nested by path."""
    overrides: dict[str, Any] = {}
    errors = FormErrors()
    for field in fields:
        try:
            value = parse_field(field, form.get(field.path))
        except ValueError as exc:
            errors.add(fields, field.path, str(exc))
            continue
        if not _same(value, field.default):
            _put(overrides, field.path, value)
    return overrides, errors


def given_values(
    fields: Sequence[FormField], form: Mapping[str, str]
) -> tuple[dict[str, Any], FormErrors]:
    """Every field the form filled in (empty inputs leave the model's default)."""
    data: dict[str, Any] = {}
    errors = FormErrors()
    for field in fields:
        try:
            value = parse_field(field, form.get(field.path))
        except ValueError as exc:
            errors.add(fields, field.path, str(exc))
            continue
        if value is not None:
            _put(data, field.path, value)
    return data, errors


def attach_model_error(fields: Sequence[FormField], errors: FormErrors, message: str) -> None:
    """A whole-model rule (``profile 'poisson' needs 'rate'``) also shows at the inputs it
    names, so the user sees where to type."""
    named = [p for p in re.findall(r"'([a-z_.]+)'", message) if match_field(fields, p) == p]
    for path in named:
        errors.add(fields, path, message)
    if not named:
        errors.add(fields, "", message)


def groups(fields: Sequence[FormField]) -> list[tuple[str, list[FormField]]]:
    """Fields by fieldset, in schema order (top-level fields first)."""
    out: dict[str, list[FormField]] = {}
    for field in fields:
        out.setdefault(field.group, []).append(field)
    return list(out.items())
