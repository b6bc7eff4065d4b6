"""Recipe errors that say *where* the problem is.

A recipe is edited by hand and overridden from the command line, so every error names the
field path (``resources.gpu``) the user has to fix; unknown keys list the keys that would
have been accepted. pydantic's ``ValidationError`` is translated here once, so the CLI, the
HTTP ingress and the server all show the same messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

#: Custom pydantic error type used by cross-field checks; its ``ctx["fields"]`` carries
#: ``(path, reason)`` pairs relative to the model that raised it.
FIELDS_ERROR_TYPE = "recipe_fields"


class FieldError(BaseModel):
    """One problem at one place in a recipe (``path`` is empty for the whole document)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class RecipeError(ValueError):
    """A recipe (or an override of it) cannot be used; ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[FieldError], *, source: str | None = None) -> None:
        self.errors: list[FieldError] = list(errors)
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [str(e) for e in self.errors] or ["invalid recipe"]
        if self.source is None and len(lines) == 1:
            return lines[0]
        head = f"recipe {self.source} is invalid:" if self.source else "invalid recipe:"
        return "\n".join([head, *(f"  {line}" for line in lines)])

    def __str__(self) -> str:
        return self._message()


def join_path(parts: Iterable[str | int]) -> str:
    """``("command", 2)`` → ``command[2]``; ``("resources", "gpu")`` → ``resources.gpu``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else part
    return out


def _unwrap(annotation: Any) -> Any:
    """The model class inside ``X | None``, ``list[X]``, ``dict[str, X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _unwrap(arg)
        if found is not None:
            return found
    return None


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """Follow a pydantic error location down the model tree to the model it ends in."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _unwrap(field.annotation)
    return model


def _valid_keys(model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    return "; valid keys: " + ", ".join(f.alias or n for n, f in model.model_fields.items())


def from_validation_error(
    exc: ValidationError, root: type[BaseModel], *, prefix: Sequence[str | int] = ()
) -> list[FieldError]:
    """Translate pydantic's errors into :class:`FieldError` with readable paths."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if p != "[key]"]
        is_key = "[key]" in err["loc"]
        if err["type"] == FIELDS_ERROR_TYPE:
            for path, reason in err.get("ctx", {}).get("fields", ()):
                out.append(FieldError(path=join_path([*prefix, *loc, path]), reason=reason))
            continue
        if err["type"] == "extra_forbidden":
            reason = "unknown key" + _valid_keys(_model_at(root, loc[:-1]))
        else:
            reason = str(err["msg"]).removeprefix("Value error, ")
            if is_key:
                reason = f"invalid key: {reason}"
        out.append(FieldError(path=join_path([*prefix, *loc]), reason=reason))
    return out
