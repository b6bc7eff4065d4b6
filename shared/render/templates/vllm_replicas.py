"""``vllm-replicas``: one vLLM per group of GPUs, on every node of the job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aifactory.shared.recipes.templates import Problem
from aifactory.shared.render.templates.vllm import Vllm

if TYPE_CHECKING:
    from aifactory.shared.recipes.schema import Recipe


class VllmReplicas(Vllm, name="vllm-replicas"):
    """``gpu // gpu_per_replica`` servers on each of ``nodes`` nodes, one endpoint each."""

    def problems(self, r: Recipe) -> list[Problem]:
        relaxed = ("replicas", "resources.nodes")
        out = [p for p in super().problems(r) if p[0] not in relaxed]
        if r.replicas is None:
            out.append(("replicas", f"required by template {self.name}"))
            return out
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
        return out
