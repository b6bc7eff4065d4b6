"""Log lines and dead letters (the monitor's messages are in ``monitor.py``)."""

from __future__ import annotations

from pydantic import Field

from aifactory.shared.messages.base import ID_PATTERN, Message


class LogLines(Message):
    """A batch of lines of one job output stream."""

    service_id: str = Field(pattern=ID_PATTERN, description="The service (or job) it is from.")
    stream: str = Field(description="``out`` or ``err``.")
    lines: list[str] = Field(description="Complete lines, in order.")
    offset: int = Field(ge=0, description="Byte offset of the first line in the file.")


class DeadLetter(Message):
    """A message a consumer could not accept, with why."""

    original_subject: str = Field(description="Where it was published.")
    reason: str = Field(description="Field path and cause, as validation reported them.")
    payload: str = Field(description="The original body, decoded leniently, truncated to 4 KiB.")
    consumer: str = Field(description="The component that refused it.")
