"""Commands to the server service."""

from __future__ import annotations

from pydantic import Field, JsonValue

from aifactory.shared.messages.base import ID_PATTERN, Message

#: ``category/name``; the loader checks the rest (no ``..``, stays under the recipes root).
RECIPE_REF_PATTERN = r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$"

#: Part of a recipe (any nesting), deep-merged onto it and then validated with it, so an
#: error names the recipe field (``resources.gpu``), not a position in this message.
RecipeOverrides = dict[str, JsonValue]


class DeployRequested(Message):
    """Deploy a recipe as a service; idempotent by ``service_id``."""

    service_id: str = Field(
        pattern=ID_PATTERN,
        description="Chosen by the requester so it can follow the service at once; a second "
        "request with the same id never submits a second job.",
    )
    recipe: str = Field(
        pattern=RECIPE_REF_PATTERN, max_length=200, description="``category/name``."
    )
    overrides: RecipeOverrides = Field(
        default_factory=dict,
        description="Recipe fields to change, nested as in the recipe (``{resources: {gpu: 2}}``).",
    )


class DeployCancel(Message):
    """Cancel a service's job."""

    service_id: str = Field(pattern=ID_PATTERN, description="The service to stop.")
