"""What a bus subject is: its address, its message type, who sends it and who reads it.

A :class:`Channel` is declared once (``aifactory.shared.subjects`` for the services' bus,
``aifactory.loadgen.remote.protocol`` for the load workers) and everything else is derived
from it: the subject strings, the JetStream stream subjects, what ``publish`` and the
command consumers accept, and the AsyncAPI document. A test walks the code and fails when a
component publishes or subscribes on a channel the declaration does not give it, or the
declaration names a producer or consumer that never does.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel

#: A message model, or a ``RootModel`` union of several sharing one subject.
M = TypeVar("M", bound=BaseModel)

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class Component(StrEnum):
    """The processes (and process roles) that talk on the bus."""

    SERVER = "server"  # the server service: deploys, job lifecycle
    INGRESS = "ingress"  # the HTTP edge inside the server service process
    CLIENT = "client"  # the client service: benchmark runs (and their remote coordinator)
    MONITOR = "monitor"
    LOGS = "logs"
    CLI = "cli"  # the aifactory command and the experiment runner
    WORKER = "worker"  # remote load-generator workers on compute nodes
    OPERATOR = "operator"  # a person reading the bus (dead letters), not code


class Kind(StrEnum):
    COMMAND = "command"  # one consumer acts on it, durably, exactly once
    EVENT = "event"  # fan-out; anyone may listen


def subject_token(value: str) -> str:
    """Check that ``value`` can be one token of a subject (no dots, wildcards or spaces)."""
    if not _TOKEN_RE.fullmatch(value):
        raise ValueError(f"{value!r} cannot be a subject token: use letters, digits, '_' or '-'")
    return value


@dataclass(frozen=True, slots=True, eq=False)  # a declared singleton: compared by identity
class Channel(Generic[M]):
    """One subject (or a family, with ``{param}`` tokens) and its contract."""

    #: ``deploy.requested``, or ``logs.{service_id}.{stream}`` for a family.
    address: str
    model: type[M]
    kind: Kind
    producers: frozenset[Component]
    #: Components that act on it; empty for an event kept in its stream for any listener.
    consumers: frozenset[Component]
    description: str
    #: The JetStream stream that stores it; ``None`` for core NATS (not stored).
    stream: str | None
    #: Allowed values of parameters that have a closed set (``job.{event}``).
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: A parameter that may span several tokens (``deadletter.{subject}``).
    tail: str | None = None

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(
            name for _, name, _, _ in string.Formatter().parse(self.address) if name is not None
        )

    @property
    def filter(self) -> str:
        """The NATS filter matching every subject of this channel (stream subjects)."""
        out = self.address
        for name in self.params:
            out = out.replace("{" + name + "}", ">" if name == self.tail else "*")
        return out

    def subject(self, **params: str) -> str:
        """The concrete subject; every parameter is checked to be a safe token."""
        if set(params) != set(self.params):
            raise ValueError(f"{self.address} needs parameters {self.params}, got {sorted(params)}")
        values: dict[str, str] = {}
        for name, value in params.items():
            allowed = self.enums.get(name)
            if allowed is not None and value not in allowed:
                raise ValueError(f"{self.address}: {name}={value!r} is not one of {allowed}")
            if name == self.tail:
                values[name] = ".".join(subject_token(t) for t in value.split("."))
            else:
                values[name] = subject_token(value)
        return self.address.format(**values)


def channel(
    address: str,
    model: type[M],
    kind: Kind,
    *,
    by: set[Component],
    to: set[Component],
    stream: str | None,
    about: str,
    enums: dict[str, tuple[str, ...]] | None = None,
    tail: str | None = None,
) -> Channel[M]:
    """Declare a channel: ``by`` produce it, ``to`` consume it."""
    return Channel(
        address=address,
        model=model,
        kind=kind,
        producers=frozenset(by),
        consumers=frozenset(to),
        description=about,
        stream=stream,
        enums=enums or {},
        tail=tail,
    )
