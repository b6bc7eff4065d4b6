"""``service``: any server, one process, on one node (Qdrant, Chroma, …)."""

from aifactory.shared.recipes.templates import ScriptTemplate


class Service(ScriptTemplate, name="service"):
    """The default for every category but ``inference``; the base rules apply as they are."""
