"""``vllm-multinode``: one model over several nodes, a Ray cluster under ``vllm serve``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aifactory.shared.recipes.templates import Problem
from aifactory.shared.render.templates.vllm import Vllm

if TYPE_CHECKING:
    from aifactory.shared.recipes.schema import Recipe


class VllmMultinode(Vllm, name="vllm-multinode"):
    def problems(self, r: Recipe) -> list[Problem]:
        relaxed = ("resources.nodes", "distributed.ray")
        out = [p for p in super().problems(r) if p[0] not in relaxed]
        if r.resources.nodes < 2:
            out.append(("resources.nodes", f"template {self.name} needs at least 2 nodes"))
        if not r.distributed.ray:
            out.append(("distributed.ray", f"template {self.name} needs ray: true"))
        return out
