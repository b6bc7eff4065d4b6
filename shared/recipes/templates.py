"""Script templates as extensions: the Jinja file a recipe selects, and the rules it adds.

A template is one module in ``aifactory/shared/render/templates/`` (or any module, through
an ``aifactory.templates`` entry point) holding a :class:`ScriptTemplate` subclass:

    class Mine(Service, name="mine"):
        '''What the job does and why.'''

        def problems(self, recipe):  # the cross-field rules only this template needs
            return [*super().problems(recipe), *...]

Its Jinja text is ``source``, or else the file ``<name>.sh.j2`` beside the module. The
recipe schema, the renderer and the CLI find it by name; there is no list to extend.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from aifactory.shared.plugins import Registry

if TYPE_CHECKING:
    from aifactory.shared.recipes.schema import Recipe

#: ``(field path, reason)``: a problem reported at the field the user must change.
Problem = tuple[str, str]


class ScriptTemplate:
    """A batch-script template. The base rules fit a plain one-node, one-task service."""

    name: ClassVar[str]
    #: Jinja source; ``None`` reads ``<name>.sh.j2`` beside the defining module.
    source: ClassVar[str | None] = None
    #: The server argv is the recipe's ``command`` (False: the template builds its own).
    runs_command: ClassVar[bool] = True

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            TEMPLATES.register(name, cls(), origin=cls.__module__)

    @property
    def file_name(self) -> str:
        return f"{self.name}.sh.j2"

    def jinja_source(self) -> str:
        if self.source is not None:
            return self.source
        module_file = sys.modules[type(self).__module__].__file__
        assert module_file is not None
        return (Path(module_file).parent / self.file_name).read_text()

    def problems(self, r: Recipe) -> list[Problem]:
        """The rules of a one-node, one-task service; subclasses add or relax their own."""
        out: list[Problem] = []
        if r.replicas is not None:
            out.append(("replicas", f"only used by template vllm-replicas, not {self.name}"))
        if r.resources.tasks_per_node != 1:
            out.append(
                (
                    "resources.tasks_per_node",
                    f"template {self.name} runs one task per node; only loadgen runs several",
                )
            )
        if r.resources.nodes != 1:
            out.append(
                (
                    "resources.nodes",
                    f"template {self.name} runs on one node; use vllm-multinode for more",
                )
            )
        if r.distributed.ray:
            out.append(("distributed.ray", "only supported by template vllm-multinode"))
        if r.models and self.name != "ollama":
            out.append(("models", f"only pulled by template ollama, not {self.name}"))
        return out


#: Every template by name: the built-ins, then ``aifactory.templates`` entry points.
TEMPLATES: Registry[ScriptTemplate] = Registry("templates", "aifactory.shared.render.templates")


def template_named(name: str) -> ScriptTemplate:
    """The registered template ``name``; ``ExtensionError`` lists the known ones."""
    return TEMPLATES.get(name)
