"""What the monitor scrapes and publishes: targets, and one message per scrape of a target.

A target is one metrics URL of one deployed service (its server's own metrics path, a
node exporter on one of its nodes, a DCGM exporter on one of its GPU nodes) with the labels
it is known by, here and in a site Prometheus (HTTP SD). Every label value is checked
against a conservative pattern: values come partly from recipes and the scheduler, and
they end up in Prometheus configurations, PromQL legends and file names, where a quote, a
newline or a ``$`` could change meaning.

A scrape that failed is still a message (``up`` false, ``error`` set, no groups): the
gap in the data then has a reason a reader can see.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field
from typing_extensions import TypedDict

from aifactory.shared.messages.base import ID_PATTERN, Message, Model
from aifactory.shared.messages.deploy import RECIPE_REF_PATTERN

#: A Prometheus label name a recipe may add (no ``__`` prefix: those are Prometheus's own).
LABEL_NAME_PATTERN = r"^[a-zA-Z][a-zA-Z0-9_]{0,62}$"
#: A label value: plain tokens only (no quotes, spaces, ``$``, braces, newlines).
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9_.:/@+,=-]{0,128}$"
#: A node as the scheduler names it (host name or address).
NODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$"
#: A scheduler job id (SLURM: ``1234``, ``1234_7`` for an array task, ``1234+1``).
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$"
#: What the monitor fetches: http(s), a host, a port, a plain path.
SCRAPE_URL_PATTERN = r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}/[A-Za-z0-9._~/-]*$"

LabelName = Annotated[str, Field(pattern=LABEL_NAME_PATTERN)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN)]

#: Labels every target carries; a recipe's own labels may not reuse these names.
RESERVED_LABELS = frozenset({"service_id", "recipe", "job_id", "node", "role", "instance", "job"})


class TargetRole(StrEnum):
    """What a target measures."""

    SERVICE = "service"  # the server's own metrics path (vLLM, the simulator, Qdrant)
    NODE = "node"  # a node exporter on one of the service's nodes
    GPU = "gpu"  # a DCGM exporter on one of the service's GPU nodes


class ScrapeTarget(Model):
    """One metrics URL of one service and the labels it is known by."""

    key: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,160}$",
        description="Stable id, unique in the monitor: ``<service_id>-<role>-<n>``.",
    )
    url: str = Field(pattern=SCRAPE_URL_PATTERN, description="The full scrape URL.")
    service_id: str = Field(pattern=ID_PATTERN, description="The service it belongs to.")
    recipe: str = Field(pattern=RECIPE_REF_PATTERN, description="``category/name``.")
    job_id: str = Field(pattern=JOB_ID_PATTERN, description="The scheduler's job id.")
    node: str = Field(pattern=NODE_PATTERN, description="The node it runs on.")
    role: TargetRole = Field(description="service, node or gpu.")
    labels: dict[LabelName, LabelValue] = Field(
        default_factory=dict,
        description="Extra labels from the recipe's monitoring block.",
    )

    @property
    def address(self) -> str:
        """``host:port``, as Prometheus wants it in a target list."""
        return self.url.split("://", 1)[1].split("/", 1)[0]

    @property
    def path(self) -> str:
        return "/" + self.url.split("://", 1)[1].split("/", 1)[1]

    def all_labels(self) -> dict[str, str]:
        """The recipe's labels, then the fixed ones (which always win)."""
        return {
            **self.labels,
            "service_id": self.service_id,
            "recipe": self.recipe,
            "job_id": self.job_id,
            "node": self.node,
            "role": self.role.value,
        }


class ServiceTargets(Model):
    """The monitor's targets of one service (the value of its ``aif_targets`` KV key)."""

    service_id: str = Field(pattern=ID_PATTERN, description="The service.")
    targets: list[ScrapeTarget] = Field(description="Every target, in a stable order.")


class SeriesGroup(TypedDict):
    """The samples of one scrape that share a label set: metric name → value.

    Grouped because exporters repeat long label sets on every series (dcgm-exporter's eight
    labels on each of a GPU's fields): one GPU's fields travel as one group, a fifth of the
    bytes of one sample each. A typed dict, not a model: the monitor builds them on its hot
    path (a dict costs a tenth of a model instance).
    """

    labels: Annotated[dict[str, str], Field(description="The labels every value shares.")]
    values: Annotated[
        dict[str, float],
        Field(description="Metric name as exposed (``vllm:num_requests_running``) → value."),
    ]


class MonitorSamples(Message):
    """One scrape of one target: the kept samples, or why there are none.

    ``time`` (the envelope's) is when the scrape started.
    """

    service_id: str = Field(pattern=ID_PATTERN, description="The service scraped.")
    target: ScrapeTarget = Field(description="What was scraped.")
    up: bool = Field(description="The scrape succeeded (Prometheus's ``up``).")
    error: str | None = Field(default=None, description="Why it failed, when it did.")
    duration_s: float = Field(ge=0, description="How long the scrape took.")
    size_bytes: int = Field(ge=0, description="Bytes of exposition text read.")
    groups: list[SeriesGroup] = Field(
        default_factory=list,
        description="The samples the monitor keeps (see MonitorSettings.keep), grouped by "
        "label set; per-CPU node series are summed over CPUs.",
    )
