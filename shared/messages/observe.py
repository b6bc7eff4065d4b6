"""Dead letters (log messages: :mod:`.logs`; the monitor's: :mod:`.monitor`)."""

from __future__ import annotations

from pydantic import Field

from aifactory.shared.messages.base import Message


class DeadLetter(Message):
    """A message a consumer could not accept, with why."""

    original_subject: str = Field(description="Where it was published.")
    reason: str = Field(description="Field path and cause, as validation reported them.")
    payload: str = Field(description="The original body, decoded leniently, truncated to 4 KiB.")
    consumer: str = Field(description="The component that refused it.")
