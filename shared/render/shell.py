"""Shell quoting for templates: every interpolated value is quoted unless proven safe.

The Jinja environment's ``finalize`` hook runs on every ``{{ ... }}`` result, so a value is
shell-quoted even when a template author forgets a filter. The only way to emit text
unquoted is a :class:`Raw` value, and ``Raw`` is only produced here: by ``q``/``words``
(which quote) and by ``plain``/``name`` (which refuse anything outside a strict character
set). A forgotten wrapper therefore yields an over-quoted, broken script (caught by the
tests), never an injectable one.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from typing import Any

from aifactory.shared.recipes.errors import FieldError, RecipeError

#: Values allowed verbatim in ``#SBATCH`` lines, comments and inside double quotes: no
#: whitespace, quotes, ``$``, backticks, backslashes or glob characters.
PLAIN_RE = re.compile(r"^[A-Za-z0-9_.:,=@+/%-]+$")
SHELL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RenderError(RecipeError):
    """A value cannot be placed safely into a batch script, or a template failed."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__([FieldError(path=path, reason=reason)])


class Raw(str):
    """Text already made safe for the shell; emitted as is."""

    __slots__ = ()


def quote(value: Any) -> Raw:
    """One shell word for ``value``. ``None`` and booleans are template bugs, not words."""
    if isinstance(value, Raw):
        return value
    if value is None or isinstance(value, bool):
        raise RenderError("template", f"refusing to render {value!r} as a shell word")
    text = str(value)
    if "\x00" in text:
        raise RenderError("template", "a value contains a NUL byte, which no shell can hold")
    return Raw(shlex.quote(text))


def finalize(value: Any) -> str:
    """Jinja ``finalize``: quote everything that is not :class:`Raw`."""
    return quote(value)


def words(values: Iterable[Any]) -> Raw:
    """An argv list as space-separated, individually quoted shell words."""
    if isinstance(values, str):
        raise RenderError("template", "words expects a list of arguments, got a string")
    return Raw(" ".join(quote(v) for v in values))


def plain(value: Any) -> Raw:
    """A strictly validated token for places quoting cannot reach (``#SBATCH``, comments)."""
    text = str(value)
    if isinstance(value, bool) or value is None or not PLAIN_RE.fullmatch(text):
        raise RenderError(
            "template", f"{text!r} cannot be emitted unquoted: only [A-Za-z0-9_.:,=@+/%-]"
        )
    return Raw(text)


def shell_name(value: Any) -> Raw:
    """A variable name for ``export NAME=...``."""
    text = str(value)
    if not SHELL_NAME_RE.fullmatch(text):
        raise RenderError("template", f"{text!r} is not a shell variable name")
    return Raw(text)
