"""``{port}``-style placeholders in recipe data, filled from validated values.

Recipes need values only known at render time (the port a replica listens on, the job's
work directory). They are written as ``{port}``, ``{ports.http}``, ``{workdir}``,
``{service_id}`` or ``{model}`` inside command arguments, environment values and bind paths.
User data is never evaluated as a template: substitution is a plain text replacement of
these exact names, done on one argument at a time *before* the argument is shell-quoted.

Only a lower-case ``{identifier}`` / ``{identifier.identifier}`` is a placeholder, so JSON
such as ``{"temperature": 0.5}`` and shell-looking text such as ``${HOME}`` pass through
untouched (and stay literal: values are never expanded by the shell either); ``{{port}}``
is the escape for a literal ``{port}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

TOKEN_RE = re.compile(
    r"\{\{(?P<escaped>[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)?)\}\}"
    r"|\{(?P<name>[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)?)\}"
)

#: Placeholders that do not depend on the recipe's own ports.
STATIC_NAMES = ("port", "workdir", "service_id", "model")


def placeholders(text: str) -> list[str]:
    """Names referenced by ``text`` (escaped ``{{name}}`` excluded), in order."""
    return [m.group("name") for m in TOKEN_RE.finditer(text) if m.group("name")]


def allowed_names(port_names: Iterable[str], *, has_model: bool) -> list[str]:
    names = [n for n in STATIC_NAMES if has_model or n != "model"]
    return names + [f"ports.{p}" for p in port_names]


def unknown_placeholders(text: str, allowed: Iterable[str]) -> list[str]:
    known = set(allowed)
    return [n for n in placeholders(text) if n not in known]


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace every placeholder; a name missing from ``values`` is a programming error."""

    def repl(match: re.Match[str]) -> str:
        escaped = match.group("escaped")
        if escaped is not None:
            return "{" + escaped + "}"
        name = match.group("name")
        if name not in values:
            raise KeyError(f"placeholder {{{name}}} has no value")
        return values[name]

    return TOKEN_RE.sub(repl, text)
