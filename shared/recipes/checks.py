"""Rules that span several recipe fields, each reported at the field the user must change.

Kept apart from the schema so the schema stays a readable list of fields. The function
returns ``(path, reason)`` pairs instead of raising so that a user sees every problem of a
recipe at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aifactory.shared.plugins import ExtensionError
from aifactory.shared.recipes.fields import SECRET_NAME_RE, ApptainerMode, Category, Runtime
from aifactory.shared.recipes.placeholders import allowed_names, unknown_placeholders
from aifactory.shared.recipes.templates import Problem, template_named

if TYPE_CHECKING:
    from aifactory.shared.recipes.schema import Recipe


def cross_field_problems(recipe: Recipe) -> list[Problem]:
    return [
        *_runtime(recipe),
        *_template(recipe),
        *_parallelism(recipe),
        *_ports(recipe),
        *_environment(recipe),
        *_placeholders(recipe),
    ]


def _runs_command(r: Recipe) -> bool:
    try:
        return template_named(r.template_name).runs_command
    except ExtensionError:
        return True  # reported by _template


def _runtime(r: Recipe) -> list[Problem]:
    out: list[Problem] = []
    if r.runtime is Runtime.APPTAINER:
        if r.image is None:
            out.append(("image", "required when runtime is apptainer (e.g. docker://repo:tag)"))
        runs_command = _runs_command(r)
        needs_command = r.apptainer.mode is ApptainerMode.EXEC and runs_command
        if needs_command and not r.command:
            out.append(("command", "required with apptainer.mode exec: the program to run"))
    else:
        if r.image is not None:
            out.append(("image", "only used with runtime apptainer; remove it for native"))
        if r.apptainer != type(r.apptainer)():
            out.append(("apptainer", "only used with runtime apptainer; remove it for native"))
        if not r.command and _runs_command(r):
            out.append(("command", "required with runtime native: the program and its args"))
    return out


def _template(r: Recipe) -> list[Problem]:
    """The selected template exists, and its own rules hold (see its module)."""
    try:
        template = template_named(r.template_name)
    except ExtensionError as exc:
        return [("template", str(exc))]
    return template.problems(r)


def _parallelism(r: Recipe) -> list[Problem]:
    world = r.distributed.tensor_parallel * r.distributed.pipeline_parallel
    if world == 1:
        return []
    if r.replicas is not None:
        available, what = r.replicas.gpu_per_replica, "replicas.gpu_per_replica"
    else:
        available, what = r.resources.gpu * r.resources.nodes, "resources.gpu * resources.nodes"
    if world > available:
        return [
            (
                "distributed",
                f"tensor_parallel * pipeline_parallel = {world} needs more GPUs than "
                f"{what} = {available}",
            )
        ]
    return []


def _ports(r: Recipe) -> list[Problem]:
    seen: dict[int, str] = {}
    out: list[Problem] = []
    if not r.ports and r.category is not Category.CLIENT:
        out.append(("ports", "needs at least 1 port (only client recipes may declare none)"))
    for name, port in r.ports.items():
        if port in seen:
            out.append((f"ports.{name}", f"port {port} is already used by ports.{seen[port]}"))
        seen.setdefault(port, name)
    return out


def _environment(r: Recipe) -> list[Problem]:
    out: list[Problem] = []
    for key in r.environment:
        if SECRET_NAME_RE.search(key):
            out.append(
                (
                    f"environment.{key}",
                    "looks like a secret: never put its value in a recipe; list the name in "
                    "secrets_env and export it where the job is submitted",
                )
            )
        if key in r.secrets_env:
            out.append((f"environment.{key}", "also listed in secrets_env; keep one"))
    return out


def _placeholders(r: Recipe) -> list[Problem]:
    allowed = allowed_names(r.ports, has_model=r.model is not None)
    if not r.ports:  # nothing listens: there is no {port} to fill in
        allowed = [n for n in allowed if n != "port"]
    shown = ", ".join("{" + n + "}" for n in allowed)
    texts: list[tuple[str, str]] = [(f"command[{i}]", a) for i, a in enumerate(r.command or [])]
    texts += [(f"extra_args[{i}]", a) for i, a in enumerate(r.extra_args)]
    texts += [(f"environment.{k}", v) for k, v in r.environment.items()]
    out: list[Problem] = []
    for path, text in texts:
        for name in unknown_placeholders(text, allowed):
            out.append((path, f"unknown placeholder {{{name}}}; valid placeholders: {shown}"))
    # Ports are chosen when the job starts, after the container's binds are fixed.
    static = [n for n in allowed if n != "port" and not n.startswith("ports.")]
    shown_static = ", ".join("{" + n + "}" for n in static)
    for i, bind in enumerate(r.apptainer.binds):
        for name in unknown_placeholders(bind.source, static):
            out.append(
                (
                    f"apptainer.binds[{i}].source",
                    f"unknown placeholder {{{name}}} (ports are not known yet where binds "
                    f"are set); valid placeholders: {shown_static}",
                )
            )
    return out
