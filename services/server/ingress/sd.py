"""``GET /api/v1/sd/prometheus``: the monitor's targets in Prometheus's HTTP SD format.

A site Prometheus then scrapes exactly what the monitor scrapes, labelled the same way
(``service_id``, ``recipe``, ``job_id``, ``node``, ``role``). The answer is built from the
``aif_targets`` KV bucket the monitor keeps (a live view here, no bus round trip per
request), and is ``[]`` when nothing runs. Same bearer token as the rest of ``/api/v1``;
Prometheus sends it with ``authorization: {type: Bearer, credentials_file: ...}`` in its
``http_sd_configs`` (see ``aifactory monitor prometheus``).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from pydantic import BaseModel, Field, ValidationError

from aifactory.monitor.targets import sd_groups
from aifactory.shared.messages.monitor import ServiceTargets
from aifactory.shared.registry_view import RegistryView

log = logging.getLogger(__name__)


class TargetGroup(BaseModel):
    """One HTTP SD target group."""

    targets: list[str] = Field(description="``host:port`` of each target.")
    labels: dict[str, str] = Field(
        description="service_id, recipe, job_id, node, role, the recipe's own labels, and "
        "the ``__metrics_path__``/``__scheme__`` meta labels."
    )


def sd_router(targets_view: RegistryView) -> APIRouter:
    router = APIRouter(tags=["monitoring"])

    @router.get("/sd/prometheus", response_model=list[TargetGroup])
    async def prometheus_sd() -> list[TargetGroup]:
        """Prometheus HTTP service discovery (``http_sd_configs``)."""
        groups: list[TargetGroup] = []
        for raw in targets_view.all_json():
            try:
                service = ServiceTargets.model_validate_json(raw)
            except ValidationError as exc:
                log.warning("skipping unreadable targets in the bucket: %s", exc)
                continue
            groups.extend(TargetGroup.model_validate(g) for g in sd_groups(service.targets))
        return sorted(groups, key=lambda g: (g.labels["service_id"], g.labels["role"], g.targets))

    return router
