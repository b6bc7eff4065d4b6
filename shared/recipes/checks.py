"""Rules that span several recipe fields, each reported at the field the user must change.

Kept apart from the schema so the schema stays a readable list of fields. The function
returns ``(path, reason)`` pairs instead of raising so that a user sees every problem of a
recipe at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aifactory.shared.recipes.fields import (
    SECRET_NAME_RE,
    ApptainerMode,
    Category,
    Runtime,
    TemplateName,
)
from aifactory.shared.recipes.placeholders import allowed_names, unknown_placeholders

if TYPE_CHECKING:
    from aifactory.shared.recipes.schema import Recipe

Problem = tuple[str, str]


def cross_field_problems(recipe: Recipe) -> list[Problem]:
    return [
        *_runtime(recipe),
        *_template(recipe),
        *_parallelism(recipe),
        *_ports(recipe),
        *_environment(recipe),
        *_placeholders(recipe),
    ]


def _runtime(r: Recipe) -> list[Problem]:
    out: list[Problem] = []
    if r.runtime is Runtime.APPTAINER:
        if r.image is None:
            out.append(("image", "required when runtime is apptainer (e.g. docker://repo:tag)"))
        needs_command = r.apptainer.mode is ApptainerMode.EXEC and not r.template_name.is_vllm
        if needs_command and not r.command:
            out.append(("command", "required with apptainer.mode exec: the program to run"))
    else:
        if r.image is not None:
            out.append(("image", "only used with runtime apptainer; remove it for native"))
        if r.apptainer != type(r.apptainer)():
            out.append(("apptainer", "only used with runtime apptainer; remove it for native"))
        if not r.command and not r.template_name.is_vllm:
            out.append(("command", "required with runtime native: the program and its args"))
    return out


def _template(r: Recipe) -> list[Problem]:
    out: list[Problem] = []
    name = r.template_name
    if name.is_vllm:
        if not r.model:
            out.append(("model", f"required by template {name.value} (passed to vllm serve)"))
        if r.command is not None:
            out.append(
                (
                    "command",
                    f"not used by template {name.value}, which runs 'vllm serve' with model "
                    "and extra_args; remove it or choose template inference",
                )
            )
    if name is TemplateName.VLLM_REPLICAS:
        if r.replicas is None:
            out.append(("replicas", "required by template vllm-replicas"))
        else:
            per = r.replicas.gpu_per_replica
            if r.resources.gpu < per or r.resources.gpu % per:
                out.append(
                    (
                        "resources.gpu",
                        f"must be a positive multiple of replicas.gpu_per_replica ({per}), "
                        f"got {r.resources.gpu}",
                    )
                )
            elif r.replicas.base_port + r.replica_count - 1 > 65535:
                out.append(("replicas.base_port", "replica ports would pass 65535"))
    elif r.replicas is not None:
        out.append(("replicas", "only used by template vllm-replicas"))
    if r.resources.tasks_per_node != 1 and name is not TemplateName.LOADGEN:
        out.append(
            (
                "resources.tasks_per_node",
                f"template {name.value} runs one task per node; only loadgen runs several",
            )
        )
    if name is TemplateName.VLLM_MULTINODE:
        if r.resources.nodes < 2:
            out.append(("resources.nodes", "template vllm-multinode needs at least 2 nodes"))
        if not r.distributed.ray:
            out.append(("distributed.ray", "template vllm-multinode needs ray: true"))
    else:
        if r.resources.nodes != 1 and name is not TemplateName.LOADGEN:
            out.append(
                (
                    "resources.nodes",
                    f"template {name.value} runs on one node; use vllm-multinode for more",
                )
            )
        if r.distributed.ray:
            out.append(("distributed.ray", "only supported by template vllm-multinode"))
    return out


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
    texts += [(f"apptainer.binds[{i}].source", b.source) for i, b in enumerate(r.apptainer.binds)]
    out: list[Problem] = []
    for path, text in texts:
        for name in unknown_placeholders(text, allowed):
            out.append((path, f"unknown placeholder {{{name}}}; valid placeholders: {shown}"))
    return out
