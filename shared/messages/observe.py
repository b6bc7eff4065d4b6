"""Monitoring samples and dead letters (log messages: :mod:`.logs`)."""

from __future__ import annotations

from pydantic import Field

from aifactory.shared.messages.base import ID_PATTERN, Message, Model


class Sample(Model):
    """One scraped value."""

    name: str = Field(description="Metric name as exposed (``vllm:num_requests_running``).")
    labels: dict[str, str] = Field(default_factory=dict, description="Its labels.")
    value: float = Field(description="The value.")
    timestamp: float = Field(description="Scrape time, seconds since the epoch.")


class MonitorSamples(Message):
    """Samples scraped from one service's targets."""

    service_id: str = Field(pattern=ID_PATTERN, description="The service scraped.")
    samples: list[Sample] = Field(description="Every sample of one scrape round.")


class DeadLetter(Message):
    """A message a consumer could not accept, with why."""

    original_subject: str = Field(description="Where it was published.")
    reason: str = Field(description="Field path and cause, as validation reported them.")
    payload: str = Field(description="The original body, decoded leniently, truncated to 4 KiB.")
    consumer: str = Field(description="The component that refused it.")
