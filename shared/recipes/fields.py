"""Constrained field types for recipes.

Several of these values end up in ``#SBATCH`` lines or file names, where shell quoting does
not apply, so they are validated strictly here and the renderer may emit them verbatim.
Free-text values (command arguments, environment values) are only checked for NUL bytes,
which no shell string can hold; everything else about them is handled by quoting.
"""

from __future__ import annotations

import re
import shlex
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from aifactory.shared.messages.monitor import LABEL_NAME_PATTERN, LABEL_VALUE_PATTERN

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PORT_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"

#: Environment variable names that look like credentials: they must be inherited from the
#: submit environment (``secrets_env``), never written into a script.
SECRET_NAME_RE = re.compile(
    r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|SECRET_KEY|PRIVATE_KEY)$",
    re.IGNORECASE,
)


class Category(StrEnum):
    INFERENCE = "inference"
    VECTOR_DB = "vector-db"
    STORAGE = "storage"
    CLIENT = "client"


class Runtime(StrEnum):
    """How the server process is started: inside an Apptainer image, or from the host PATH."""

    APPTAINER = "apptainer"
    NATIVE = "native"


class ApptainerMode(StrEnum):
    """``exec`` runs ``command`` in the image; ``run`` passes it to the image's runscript."""

    EXEC = "exec"
    RUN = "run"


#: A registered script template's name (see :mod:`aifactory.shared.recipes.templates`).
TemplateName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_+-]{0,31}$")]


def _no_dotdot(value: str) -> str:
    if ".." in value:
        raise ValueError("must not contain '..'")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    return value


_TIME_RE = re.compile(r"^(\d{1,4}-\d{1,2}(:\d{1,2}(:\d{1,2})?)?|\d{1,6}(:\d{1,2}(:\d{1,2})?)?)$")


def _time_limit(value: object) -> object:
    """Accept SLURM's time formats; a bare number means minutes, as for ``sbatch --time``."""
    if isinstance(value, bool):
        return value  # left for the str validator to reject
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        if not _TIME_RE.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a SLURM time: use minutes, MM:SS, HH:MM:SS, D-HH, "
                "D-HH:MM or D-HH:MM:SS"
            )
        if not any(c not in "0-:" for c in value):
            raise ValueError("must be longer than zero (0 would mean 'no limit' to SLURM)")
    return value


_IMAGE_RE = re.compile(
    r"^((docker|docker-archive|oras|library|shub)://[A-Za-z0-9][A-Za-z0-9._/:@+-]*"
    r"|/?[A-Za-z0-9_][A-Za-z0-9._/+-]*\.sif)$"
)


def _image(value: str) -> str:
    if not _IMAGE_RE.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not an image URI: use docker://repo/name:tag (or oras://, "
            "library://, shub://) or a path to a .sif file"
        )
    return value


def _absolute_container_path(value: str) -> str:
    if not value.startswith("/") or any(c in value for c in ":,\n\x00") or ".." in value:
        raise ValueError("must be an absolute path without ':', ',', '..' or newlines")
    return value


def _bind_source(value: str) -> str:
    if not (value.startswith("/") or value.startswith("{workdir}")):
        raise ValueError("must be an absolute path or start with {workdir}")
    if any(c in value for c in ":,\n\x00"):
        raise ValueError("must not contain ':', ',' or newlines (apptainer bind syntax)")
    return value


def _matching(pattern: str, hint: str) -> AfterValidator:
    """A regex check whose error says what *is* allowed, not just which regex failed."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not allowed: {hint}")
        return value

    return AfterValidator(check)


Name = Annotated[
    str,
    _matching(NAME_PATTERN, "use 1-64 of a-z, 0-9, '.', '_', '-', starting with a-z or 0-9"),
    AfterValidator(_no_dotdot),
]
EnvName = Annotated[
    str, _matching(ENV_NAME_PATTERN, "use letters, digits and '_', not starting with a digit")
]
Identifier = Annotated[
    str,
    _matching(IDENTIFIER_PATTERN, "use 1-64 letters, digits, '_', '.', '-', starting alphanumeric"),
]
PortName = Annotated[
    str, _matching(PORT_NAME_PATTERN, "use a-z, 0-9 and '_', starting with a letter")
]
Port = Annotated[int, Field(ge=1, le=65535)]
#: Free text that becomes one shell word or value (numbers from YAML become strings).
Text = Annotated[str, Field(coerce_numbers_to_str=True), AfterValidator(_no_nul)]
Version = Annotated[
    str,
    Field(coerce_numbers_to_str=True),
    _matching(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$", "use letters, digits, '.', '_', '+', '-'"),
]
Memory = Annotated[
    str,
    Field(coerce_numbers_to_str=True),
    _matching(r"^(0|[1-9][0-9]{0,8}[KMGT]?)$", "use a number with an optional K, M, G or T unit"),
]
TimeLimit = Annotated[str, BeforeValidator(_time_limit)]
Image = Annotated[str, AfterValidator(_image)]
ContainerDef = Annotated[
    str,
    _matching(r"^containers/[a-z0-9][a-z0-9._-]*\.def$", "use containers/<name>.def"),
    AfterValidator(_no_dotdot),
]
HealthPath = Annotated[
    str, _matching(r"^/[A-Za-z0-9._~/?=&%+-]*$", "use a URL path starting with '/'")
]
ContainerPath = Annotated[str, AfterValidator(_absolute_container_path)]
BindSource = Annotated[str, AfterValidator(_bind_source)]


def _split_command(value: object) -> object:
    """``"module load Apptainer"`` → ``["module", "load", "Apptainer"]`` (shell-like split,
    once, here: the words are then quoted one by one, so nothing is ever evaluated)."""
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split into words: {exc}") from exc
        if not words:
            raise ValueError("an empty command")
        return words
    return value


def _command_name(words: list[str]) -> list[str]:
    if not words:
        raise ValueError("an empty command")
    if not re.fullmatch(r"[A-Za-z0-9_./][A-Za-z0-9_./+-]*", words[0]):
        raise ValueError(f"{words[0]!r} is not a command name")
    return words


#: A command run before the payload (``module load Apptainer``), as words or one string. It
#: runs as data: each word is quoted, so no value can add a command, a pipe or a variable.
SetupCommand = Annotated[list[Text], BeforeValidator(_split_command), AfterValidator(_command_name)]


#: A model a server pulls at start (Ollama's ``name:tag``, ``namespace/name:tag``): no
#: quotes, spaces or backslashes, so it can sit inside the JSON of a pull request.
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")]
#: Prometheus target labels a recipe adds: they reach Prometheus configs and dashboards.
LabelName = Annotated[
    str,
    _matching(LABEL_NAME_PATTERN, "use a letter, then up to 62 letters, digits or '_'"),
]
LabelValue = Annotated[
    str,
    Field(coerce_numbers_to_str=True),
    _matching(LABEL_VALUE_PATTERN, "use up to 128 of A-Z a-z 0-9 _ . : / @ + , = -"),
]
