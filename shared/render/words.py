"""Shell words whose ports are chosen when the job starts, not when the script is rendered.

A job picks its ports on its node (``_ports.sh.j2``), so ``{port}`` and ``{ports.<name>}``
in recipe arguments and environment values become references to the variables holding the
chosen ports, while every other placeholder (``{workdir}``, ``{model}``…) is filled in here.
The literal parts are single-quoted; the references are ``"${var}"`` with names made here
from validated port names, so user text still never reaches the shell unquoted.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from aifactory.shared.recipes.placeholders import TOKEN_RE
from aifactory.shared.render.shell import SHELL_NAME_RE, Raw, RenderError

_INDEXED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?$")


def port_var(name: str) -> str:
    """The shell variable holding the chosen port named ``name`` (``aif_port_http``)."""
    var = f"aif_port_{name}"
    if not SHELL_NAME_RE.fullmatch(var):
        raise RenderError(f"ports.{name}", "not usable as part of a shell variable name")
    return var


def replica_port_var(index: int) -> str:
    """The array element holding replica ``index``'s chosen port."""
    return f"aif_replica_port[{int(index)}]"


def shell_word(text: str, static: Mapping[str, str], runtime: Mapping[str, str]) -> Raw:
    """One shell word for ``text``: placeholders in ``static`` are replaced by their value,
    those in ``runtime`` by a reference to the named variable (``"${aif_port_http}"``)."""
    if "\x00" in text:
        raise RenderError("template", "a value contains a NUL byte, which no shell can hold")
    pieces: list[str] = []
    literal = ""
    position = 0
    for match in TOKEN_RE.finditer(text):
        literal += text[position : match.start()]
        position = match.end()
        escaped, name = match.group("escaped"), match.group("name")
        if escaped is not None:
            literal += "{" + escaped + "}"
        elif name in runtime:
            var = runtime[name]
            if not _INDEXED.fullmatch(var):
                raise RenderError("template", f"{var!r} is not a shell variable reference")
            if literal:
                pieces.append(shlex.quote(literal))
                literal = ""
            pieces.append('"${' + var + '}"')
        elif name in static:
            literal += static[name]
        else:
            raise KeyError(f"placeholder {{{name}}} has no value")
    literal += text[position:]
    if literal or not pieces:
        pieces.append(shlex.quote(literal))
    return Raw("".join(pieces))
