"""``ollama``: an Ollama server that pulls the recipe's ``models`` before it counts as up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aifactory.shared.recipes.templates import Problem
from aifactory.shared.render.templates.inference import Inference

if TYPE_CHECKING:
    from aifactory.shared.recipes.schema import Recipe


class Ollama(Inference, name="ollama"):
    """The connection file (hence readiness) comes only after every pull succeeded."""

    def problems(self, r: Recipe) -> list[Problem]:
        out = super().problems(r)
        if not r.ports:
            out.append(("ports", "template ollama needs the API port"))
        return out
