"""Turn a validated recipe into a SLURM batch script (design.md §4).

Templates live in ``shared/render/templates`` and inherit from each other::

    base.sh.j2 ─ apptainer.sh.j2 | native.sh.j2 ─ service.sh.j2 ─ inference.sh.j2 ─ vllm.sh.j2
                                                                       ├ vllm-replicas.sh.j2
                                                                       └ vllm-multinode.sh.j2

Everything a template needs is computed here from validated values and handed over as
plain data; ``{port}``-style placeholders in user data are substituted here, one argument
at a time, so templates never evaluate user text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel, ConfigDict

from aifactory.shared.executors.base import InvalidJobName, check_job_name
from aifactory.shared.plugins import ExtensionError
from aifactory.shared.recipes.fields import SECRET_NAME_RE
from aifactory.shared.recipes.fields import Runtime as RecipeRuntime
from aifactory.shared.recipes.placeholders import substitute
from aifactory.shared.recipes.schema import Recipe
from aifactory.shared.recipes.templates import TEMPLATES
from aifactory.shared.render.shell import (
    SHELL_NAME_RE,
    Raw,
    RenderError,
    plain,
    quote,
    shell_name,
    words,
)
from aifactory.shared.render.words import port_var, replica_port_var, shell_word

#: Marker comments around the ``export`` lines, so tools (and tests) can find them.
ENV_BEGIN = "# >>> aifactory environment >>>"
ENV_END = "# <<< aifactory environment <<<"

_SERVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ReplicaSlot(BaseModel):
    """One server process of the job: its wanted port and its slice of the node's GPUs."""

    model_config = ConfigDict(frozen=True)

    index: int
    #: Which node of the job (0: the one running the batch script) it runs on.
    node: int
    port: int
    gpu_offset: int
    gpu_count: int


class PortSlot(BaseModel):
    """A named port of the recipe: the one wanted, and the variable holding the one chosen."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    wanted: int
    var: str
    #: ``"${var}"``: the port as a shell word; ``inline``: ``${var}`` inside double quotes.
    ref: Raw
    inline: Raw


@functools.cache
def environment() -> jinja2.Environment:
    """The one Jinja environment: strict undefined, quote-by-default, no HTML escaping.

    Template comments are ``{## ... ##}`` because bash's ``${#array[@]}`` would otherwise
    open a Jinja comment.
    """
    env = jinja2.Environment(
        # Registered templates (built-in or a plugin's, wherever their file lives), then the
        # partials they extend and include.
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FunctionLoader(_registered_source),
                jinja2.PackageLoader("aifactory.shared.render", "templates"),
            ]
        ),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - shell, not HTML: finalize quotes every value
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=quote,
        comment_start_string="{##",
        comment_end_string="##}",
    )
    env.filters.update(q=quote, words=words, plain=plain, name=shell_name)
    return env


def _check_inputs(
    job_name: str, workdir: Path, service_id: str, extra_env: Mapping[str, str]
) -> None:
    try:
        check_job_name(job_name)
    except InvalidJobName as exc:
        raise RenderError("job_name", str(exc)) from None
    if not _SERVICE_ID_RE.fullmatch(service_id) or ".." in service_id:
        raise RenderError(
            "service_id", f"{service_id!r}: use letters, digits, '_', '.', '-' (no '..')"
        )
    if not workdir.is_absolute() or "\x00" in str(workdir) or "\n" in str(workdir):
        raise RenderError("workdir", f"{workdir!s:.200}: must be an absolute path (no newlines)")
    for key, value in extra_env.items():
        if not SHELL_NAME_RE.fullmatch(key):
            raise RenderError(f"extra_env.{key!r}", "not a valid environment variable name")
        if SECRET_NAME_RE.search(key):
            raise RenderError(
                f"extra_env.{key}",
                "looks like a secret; secrets are inherited from the submit environment, "
                "never written into scripts (declare the name in the recipe's secrets_env)",
            )
        if not isinstance(value, str) or "\x00" in value:
            raise RenderError(f"extra_env.{key}", "value must be a string without NUL bytes")


def _replicas(recipe: Recipe) -> list[ReplicaSlot]:
    per = recipe.replicas.gpu_per_replica if recipe.replicas else recipe.resources.gpu
    on_node = recipe.replicas_per_node
    return [
        ReplicaSlot(
            index=i,
            node=i // on_node,
            port=port,
            gpu_offset=(i % on_node) * per,
            gpu_count=per,
        )
        for i, port in enumerate(recipe.replica_ports())
    ]


def _ports(recipe: Recipe) -> list[PortSlot]:
    return [
        PortSlot(
            name=n,
            wanted=p,
            var=port_var(n),
            ref=Raw('"${' + port_var(n) + '}"'),
            inline=Raw("${" + port_var(n) + "}"),
        )
        for n, p in recipe.ports.items()
    ]


def _exporters(recipe: Recipe) -> dict[str, Any] | None:
    """What ``_exporters.sh.j2`` starts on each node, or ``None`` for nothing at all."""
    m = recipe.monitoring
    dcgm = m.dcgm_exporter and recipe.resources.gpu > 0
    if not m.enabled or not (m.node_exporter or dcgm):
        return None
    return {
        "node": m.node_exporter,
        "node_port": m.node_exporter_port,
        "dcgm": dcgm,
        "dcgm_port": m.dcgm_exporter_port,
        "dcgm_image": m.dcgm_image,
    }


def _context(
    recipe: Recipe, job_name: str, workdir: Path, service_id: str, extra_env: Mapping[str, str]
) -> dict[str, Any]:
    static = {"workdir": str(workdir), "service_id": service_id}
    if recipe.model is not None:
        static["model"] = recipe.model
    # Ports are chosen when the job starts: placeholders for them become variable references.
    named = {f"ports.{name}": port_var(name) for name in recipe.ports}
    main = {"port": port_var(recipe.main_port_name)} if recipe.ports else {}

    def runtime_ports(replica: ReplicaSlot | None) -> dict[str, str]:
        if replica is None:  # a port-less job (load workers): no {port} passed validation
            return named
        return {**named, "port": replica_port_var(replica.index)}

    def argv(replica: ReplicaSlot | None = None) -> list[Raw]:
        args = [*(recipe.command or []), *recipe.extra_args]
        return [shell_word(a, static, runtime_ports(replica)) for a in args]

    def extra_args(replica: ReplicaSlot | None = None) -> list[Raw]:
        return [shell_word(a, static, runtime_ports(replica)) for a in recipe.extra_args]

    env: dict[str, str] = {
        "AIFACTORY_SERVICE_ID": service_id,
        "AIFACTORY_RECIPE": recipe.ref,
        "AIFACTORY_JOB_NAME": job_name,
    }
    env |= {k: shell_word(v, static, {**named, **main}) for k, v in recipe.environment.items()}
    env |= dict(extra_env)

    binds: list[str] = []
    bind_dirs: list[str] = []
    for i, bind in enumerate(recipe.apptainer.binds):
        source = substitute(bind.source, static)
        if ":" in source or "," in source:
            raise RenderError(
                f"apptainer.binds[{i}].source",
                f"{source!r}: apptainer bind paths cannot hold ':' or ',' (check workdir)",
            )
        binds.append(f"{source}:{bind.target}" + (":ro" if bind.read_only else ""))
        if bind.create:
            bind_dirs.append(source)

    res = recipe.resources
    runtime = "apptainer" if recipe.runtime is RecipeRuntime.APPTAINER else "native"
    return {
        "recipe": recipe,
        "r": res,
        "d": recipe.distributed,
        "template": recipe.template_name,
        "runtime_template": f"{runtime}.sh.j2",
        "job_name": job_name,
        "service_id": service_id,
        "workdir": str(workdir),
        "env": list(env.items()),
        "secrets": list(recipe.secrets_env),
        "gres": res.gres,
        "replicas": _replicas(recipe),
        # Nodes that run replicas (several: each claims its own ports and reports them).
        "replica_nodes": max((s.node for s in _replicas(recipe)), default=0) + 1,
        # Other nodes run this same script (saved here by the executor) for their replicas.
        "script_path": str(workdir / f"{job_name}.sh"),
        "ports": _ports(recipe),
        "main_port_name": recipe.main_port_name if recipe.ports else "",
        "default_gpus": ",".join(str(i) for i in range(res.gpu)) or "0",
        "container": {
            "mode": recipe.apptainer.mode.value,
            "nv": res.gpu > 0,
            "binds": binds,
            "bind_dirs": bind_dirs,
            "pwd": recipe.apptainer.pwd,
            "writable_tmpfs": recipe.apptainer.writable_tmpfs,
            "image": recipe.image,
        },
        "argv": argv,
        "extra_args": extra_args,
        "exporters": _exporters(recipe),
    }


def render_script(
    recipe: Recipe,
    *,
    job_name: str,
    workdir: Path,
    service_id: str,
    extra_env: Mapping[str, str] | None = None,
) -> str:
    """The batch script that runs ``recipe`` as one SLURM job.

    ``workdir`` is where the job runs and keeps its files (absolute, visible from the
    compute nodes); ``extra_env`` adds non-secret variables (they are written into the
    script). Raises :class:`RenderError` (a ``RecipeError``) naming the offending input.
    """
    extra = dict(extra_env or {})
    _check_inputs(job_name, workdir, service_id, extra)
    template = template_for(recipe.template_name)
    context = _context(recipe, job_name, workdir, service_id, extra)
    try:
        return template.render(context)
    except jinja2.TemplateError as exc:
        raise RenderError("template", f"{recipe.template_name}.sh.j2: {exc}") from exc


def _registered_source(file_name: str) -> str | None:
    for name in TEMPLATES.names():
        template = TEMPLATES.get(name)
        if template.file_name == file_name:
            return template.jinja_source()
    return None


def template_for(name: str) -> jinja2.Template:
    try:
        return environment().get_template(TEMPLATES.get(name).file_name)
    except (ExtensionError, jinja2.TemplateNotFound) as exc:
        raise RenderError("template", str(exc)) from exc
