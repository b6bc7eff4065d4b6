"""``vllm``: ``vllm serve <model>`` on one node; the template builds the argv itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aifactory.shared.recipes.templates import Problem
from aifactory.shared.render.templates.inference import Inference

if TYPE_CHECKING:
    from aifactory.shared.recipes.schema import Recipe


class Vllm(Inference, name="vllm"):
    runs_command = False

    def problems(self, r: Recipe) -> list[Problem]:
        out = super().problems(r)
        if not r.model:
            out.append(("model", f"required by template {self.name} (passed to vllm serve)"))
        if r.command is not None:
            out.append(
                (
                    "command",
                    f"not used by template {self.name}, which runs 'vllm serve' with model "
                    "and extra_args; remove it or choose template inference",
                )
            )
        return out
