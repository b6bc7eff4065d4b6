"""Commands to the server service."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from aifactory.shared import subjects
from aifactory.shared.messages.base import ID_PATTERN, Message

#: ``category/name``; the loader checks the rest (no ``..``, stays under the recipes root).
RECIPE_REF_PATTERN = r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$"


class DeployRequested(Message):
    subject: ClassVar[str] = subjects.DEPLOY_REQUESTED

    #: Chosen by the requester so it can follow the service before the server answers;
    #: also the idempotency key: a second request with the same id never submits twice.
    service_id: str = Field(pattern=ID_PATTERN)
    recipe: str = Field(pattern=RECIPE_REF_PATTERN, max_length=200)
    overrides: dict[str, Any] = Field(default_factory=dict)


class DeployCancel(Message):
    subject: ClassVar[str] = subjects.DEPLOY_CANCEL

    service_id: str = Field(pattern=ID_PATTERN)
