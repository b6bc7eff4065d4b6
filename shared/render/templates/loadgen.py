"""``loadgen``: load-generator workers, ``tasks_per_node`` processes on each of ``nodes``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aifactory.shared.recipes.templates import Problem, ScriptTemplate

if TYPE_CHECKING:
    from aifactory.shared.recipes.schema import Recipe


class Loadgen(ScriptTemplate, name="loadgen"):
    """Workers listen on nothing and may span nodes and tasks; no Ray, no replicas."""

    def problems(self, r: Recipe) -> list[Problem]:
        relaxed = ("resources.nodes", "resources.tasks_per_node")
        return [p for p in super().problems(r) if p[0] not in relaxed]
