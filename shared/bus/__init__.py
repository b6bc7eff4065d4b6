"""Bus helpers shared by every service."""

from aifactory.shared.bus.broker import bus_connected, make_broker
from aifactory.shared.bus.deadletter import decode_or_deadletter, describe_validation_error
from aifactory.shared.bus.publish import PublishRefused, publish
from aifactory.shared.bus.topology import Topology, ensure_topology

__all__ = [
    "PublishRefused",
    "Topology",
    "bus_connected",
    "decode_or_deadletter",
    "describe_validation_error",
    "ensure_topology",
    "make_broker",
    "publish",
]
