"""The recipe schema: what a ``recipes/<category>/<name>.yaml`` file may say.

Every model forbids unknown keys (a typo such as ``gpus:`` must not be silently ignored) and
is frozen, because a recipe is validated once and then rendered: mutating it afterwards
would bypass the checks. Rules that involve several fields live in
:mod:`aifactory.shared.recipes.checks` and report the exact field path they are about.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from aifactory.shared.messages.jobs import Endpoint
from aifactory.shared.messages.monitor import RESERVED_LABELS
from aifactory.shared.recipes.checks import cross_field_problems
from aifactory.shared.recipes.errors import (
    FIELDS_ERROR_TYPE,
    RecipeError,
    from_validation_error,
)
from aifactory.shared.recipes.fields import (
    ApptainerMode,
    BindSource,
    Category,
    ContainerDef,
    ContainerPath,
    EnvName,
    HealthPath,
    Identifier,
    Image,
    LabelName,
    LabelValue,
    Memory,
    ModelName,
    Name,
    Port,
    PortName,
    Runtime,
    SetupCommand,
    TemplateName,
    Text,
    TimeLimit,
    Version,
)
from aifactory.shared.recipes.templates import ScriptTemplate, template_named
from aifactory.shared.strict import StrictModel


class Resources(StrictModel):
    """What the batch job asks SLURM for. ``gpu`` and ``cpus_per_task`` are per node."""

    nodes: int = Field(default=1, ge=1, le=1024)
    cpus_per_task: int = Field(default=1, ge=1, le=4096)
    memory: Memory = "4G"
    time_limit: TimeLimit = "1:00:00"
    gpu: int = Field(default=0, ge=0, le=64)
    gpu_type: Identifier | None = None
    partition: Identifier | None = None
    account: Identifier | None = None
    qos: Identifier | None = None
    #: Tasks (processes) per node; more than one only for template ``loadgen`` (workers).
    tasks_per_node: int = Field(default=1, ge=1, le=1024)

    @property
    def gres(self) -> str | None:
        """``gpu:4`` or ``gpu:a100:4`` for ``#SBATCH --gres``; ``None`` without GPUs."""
        if self.gpu == 0:
            return None
        return f"gpu:{self.gpu_type}:{self.gpu}" if self.gpu_type else f"gpu:{self.gpu}"


class Distributed(StrictModel):
    """Model parallelism; ``ray`` starts a Ray cluster over all nodes of the job."""

    tensor_parallel: int = Field(default=1, ge=1, le=1024)
    pipeline_parallel: int = Field(default=1, ge=1, le=1024)
    ray: bool = False
    ray_port: Port = 6379


class Replicas(StrictModel):
    """Independent servers in one job: ``resources.gpu // gpu_per_replica`` of them."""

    gpu_per_replica: int = Field(default=1, ge=1, le=64)
    base_port: Port


class Health(StrictModel):
    """How the server decides the service is up (``timeout`` counts from job start)."""

    path: HealthPath = "/health"
    timeout: float = Field(default=600.0, gt=0)
    interval: float = Field(default=5.0, gt=0)


class Bind(StrictModel):
    """One ``--bind source:target[:ro]``; ``create`` makes the script ``mkdir -p`` source."""

    source: BindSource
    target: ContainerPath
    read_only: bool = False
    create: bool = False


class ApptainerOptions(StrictModel):
    """How ``apptainer`` is invoked; ``--nv`` is added by itself when the job has GPUs."""

    mode: ApptainerMode = ApptainerMode.EXEC
    binds: list[Bind] = Field(default_factory=list)
    pwd: ContainerPath | None = None
    writable_tmpfs: bool = False


#: dcgm-exporter's image, for GPU jobs on nodes where ``dcgm-exporter`` is not installed
#: (pull it once into a ``.sif`` where compute nodes have no registry access).
DEFAULT_DCGM_IMAGE = "docker://nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless"


class Monitoring(StrictModel):
    """Metrics for the monitor service and a site Prometheus; on unless ``enabled: false``.

    The job starts ``prometheus-node-exporter`` on each of its nodes and, when it has GPUs,
    ``dcgm-exporter`` (from the PATH, else ``dcgm_image`` through Apptainer), each on a free
    port recorded in ``exporters-<node index>.json``; a site's exporters already running on
    fixed ports are recorded instead (``*_port``). ``metrics_path`` is the server's own
    Prometheus path, scraped on every endpoint; leave it unset for servers without one.
    """

    enabled: bool = True
    metrics_path: HealthPath | None = None
    node_exporter: bool = True
    node_exporter_port: Port | None = None
    dcgm_exporter: bool = True
    dcgm_exporter_port: Port | None = None
    dcgm_image: Image | None = DEFAULT_DCGM_IMAGE
    #: Extra labels on every target of the service (Prometheus and the bus).
    labels: dict[LabelName, LabelValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _own_labels(self) -> Monitoring:
        taken = sorted(set(self.labels) & RESERVED_LABELS)
        if taken:
            raise ValueError(f"labels {taken} are set by aifactory itself; choose other names")
        return self


class Recipe(StrictModel):
    """A deployable service: container or native command, resources, ports, health check.

    The server command is ``command`` (argv; for ``runtime: apptainer`` the arguments after
    the image) followed by ``extra_args``. vLLM templates build ``vllm serve <model> ...``
    themselves and take no ``command``. ``{port}``-style placeholders are described in
    :mod:`aifactory.shared.recipes.placeholders`.
    """

    name: Name
    category: Category
    description: str = ""
    version: Version = "1"
    #: Script template; defaults to ``inference`` for inference recipes, else ``service``.
    template: TemplateName | None = None
    runtime: Runtime = Runtime.APPTAINER
    image: Image | None = None
    container_def: ContainerDef | None = None
    model: Text | None = None
    #: Models the server pulls before it counts as ready (template ``ollama``).
    models: list[ModelName] = Field(default_factory=list)
    command: list[Text] | None = None
    extra_args: list[Text] = Field(default_factory=list)
    #: At least one, except for ``client`` recipes (load generators listen on nothing).
    ports: dict[PortName, Port] = Field(default_factory=dict)
    environment: dict[EnvName, Text] = Field(default_factory=dict)
    #: Commands run before the payload (after the site's own), e.g. ``module load X``.
    setup: list[SetupCommand] = Field(default_factory=list)
    #: Names of secret variables the job inherits from the submit environment.
    secrets_env: list[EnvName] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    distributed: Distributed = Field(default_factory=Distributed)
    replicas: Replicas | None = None
    health: Health = Field(default_factory=Health)
    apptainer: ApptainerOptions = Field(default_factory=ApptainerOptions)
    monitoring: Monitoring = Field(default_factory=Monitoring)

    @model_validator(mode="after")
    def _cross_field(self) -> Recipe:
        problems = cross_field_problems(self)
        if problems:
            raise PydanticCustomError(
                FIELDS_ERROR_TYPE,
                "{summary}",
                {"fields": problems, "summary": "; ".join(f"{p}: {r}" for p, r in problems)},
            )
        return self

    @property
    def ref(self) -> str:
        return f"{self.category.value}/{self.name}"

    @property
    def template_name(self) -> str:
        if self.template is not None:
            return self.template
        if self.category is Category.INFERENCE:
            return "inference"
        return "service"

    @property
    def script_template(self) -> ScriptTemplate:
        """The registered template; the validator has checked that it exists."""
        return template_named(self.template_name)

    @property
    def main_port_name(self) -> str:
        """``http`` when declared, else the first port's name (the one health checks use)."""
        return "http" if "http" in self.ports else next(iter(self.ports), "")

    @property
    def main_port(self) -> int:
        """The port named ``http``, else the first one declared; 0 for a port-less client.

        (0 never reaches a script: a recipe without ports may not use ``{port}``.)
        """
        if not self.ports:
            return 0
        return self.ports.get("http", next(iter(self.ports.values())))

    @property
    def replicas_per_node(self) -> int:
        if self.replicas is None:
            return 1
        return self.resources.gpu // self.replicas.gpu_per_replica

    @property
    def replica_count(self) -> int:
        """Servers in the job: one, or ``replicas_per_node`` on each of its nodes."""
        if self.replicas is None:
            return 1
        return self.replicas_per_node * self.resources.nodes

    def replica_ports(self) -> list[int]:
        """The port each server wants (each node has its own ports: the same on every node);
        none for a recipe without ports (a client)."""
        if not self.ports:
            return []
        if self.replicas is None:
            return [self.main_port]
        per = self.replicas_per_node
        return [self.replicas.base_port + i % per for i in range(self.replica_count)]

    def health_url(self, endpoint: Endpoint) -> str:
        return endpoint.url + self.health.path


def validate_recipe(data: Any, *, source: str | None = None) -> Recipe:
    """``Recipe.model_validate`` with errors turned into :class:`RecipeError`."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(from_validation_error(exc, Recipe), source=source) from None
