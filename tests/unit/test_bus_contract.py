"""The code and the channel declarations agree, both ways.

Every channel is declared once (``aifactory.shared.subjects``, the load workers' protocol)
with its producers and consumers. This test reads each component's code and fails when:

- a component publishes on, or subscribes to, a channel the declaration does not give it
  (or any code outside the mapped components touches a channel);
- the declaration names a producer or consumer whose code never touches the channel;
- code publishes or subscribes with something the test cannot see as a declared channel.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Annotated, get_args, get_origin

import pytest

from aifactory.contract import CHANNELS
from aifactory.loadgen.remote import protocol
from aifactory.shared import subjects
from aifactory.shared.channel import Channel, Component

REPO = Path(__file__).resolve().parents[2]

#: Where each component's code lives (a folder, or single files of a library).
COMPONENT_CODE: dict[Component, tuple[str, ...]] = {
    Component.SERVER: ("services/server",),
    Component.INGRESS: ("services/server/ingress",),
    Component.CLIENT: (
        "services/client",
        "aifactory/loadgen/remote/coordinator.py",
        "aifactory/loadgen/remote/board.py",
        "aifactory/loadgen/remote/stages.py",
    ),
    Component.WORKER: ("aifactory/loadgen/remote/worker.py", "aifactory/loadgen/remote/sink.py"),
    Component.MONITOR: ("services/monitor",),
    Component.CLI: ("aifactory/cli", "aifactory/experiment"),
    Component.LOGS: ("services/logs", "aifactory/logs/bus.py"),
}
#: Where channels are declared or generically handled (not a component's use).
DECLARING = {
    "shared/subjects.py",
    "shared/channel.py",
    "shared/asyncapi.py",
    "shared/bus/deadletter.py",
    "aifactory/loadgen/remote/protocol.py",
    "aifactory/contract.py",
}
MODULE_ALIASES = {"subjects": subjects, "protocol": protocol}
PRODUCING_CALLS = {"publish"}
CONSUMING_CALLS = {"command_consumer", "durable_consumer", "watch", "LogReader"}


def _channel_names() -> dict[tuple[str, str], Channel]:
    out = {}
    for alias, module in MODULE_ALIASES.items():
        for name, value in vars(module).items():
            if isinstance(value, Channel):
                out[(alias, name)] = value
    return out


NAMES = _channel_names()


def _owner(path: str) -> Component | None:
    best: tuple[int, Component] | None = None
    for component, roots in COMPONENT_CODE.items():
        for root in roots:
            if (path == root or path.startswith(root + "/")) and (
                best is None or len(root) > best[0]
            ):
                best = (len(root), component)
    return best[1] if best else None


def _python_files() -> list[Path]:
    files = []
    for top in ("aifactory", "services", "shared"):
        for path in (REPO / top).rglob("*.py"):
            relative = path.relative_to(REPO)
            if relative.parts[:2] in {("aifactory", "shared"), ("aifactory", "services")}:
                continue  # the symlinks into shared/ and services/
            files.append(path)
    return files


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _uses() -> tuple[dict[Channel, dict[Component, set[str]]], list[str]]:
    """Per channel, per component, the roles seen ('ref', 'produce', 'consume')."""
    uses: dict[Channel, dict[Component, set[str]]] = defaultdict(lambda: defaultdict(set))
    problems: list[str] = []
    for path in _python_files():
        relative = str(path.relative_to(REPO))
        tree = ast.parse(path.read_text())
        owner = _owner(relative)
        parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in {
                "aifactory.shared.subjects",
                "aifactory.loadgen.remote.protocol",
            }:
                imported = {a.name for a in node.names}
                channels = {name for (_, name) in NAMES} & imported
                if channels and relative not in DECLARING:
                    problems.append(f"{relative}: import the module, not channels {channels}")
            if isinstance(node, ast.Call) and _call_name(node) in PRODUCING_CALLS | CONSUMING_CALLS:
                channel_args = [a for a in node.args if _resolve(a) is not None]
                if not channel_args and relative not in DECLARING and _looks_like_bus(node):
                    where = f"{relative}:{node.lineno}"
                    problems.append(f"{where}: {_call_name(node)} without a channel")
            channel = _resolve(node)
            if channel is None or relative in DECLARING:
                continue
            if owner is None:
                problems.append(f"{relative}:{node.lineno}: channel used outside any component")
                continue
            role = "ref"
            parent = parents.get(node)
            if isinstance(parent, ast.Call) and node in parent.args:
                name = _call_name(parent)
                role = "produce" if name in PRODUCING_CALLS else role
                role = "consume" if name in CONSUMING_CALLS else role
            uses[channel][owner].add(role)
    return uses, problems


def _looks_like_bus(node: ast.Call) -> bool:
    """``publish(broker, …)`` / ``command_consumer(router, …)`` of ours, not ``js.publish``."""
    return isinstance(node.func, ast.Name)


def _resolve(node: ast.AST) -> Channel | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return NAMES.get((node.value.id, node.attr))
    return None


USES, PROBLEMS = _uses()


def test_code_only_uses_channels_through_visible_declared_names() -> None:
    assert PROBLEMS == []


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.address)
def test_every_use_is_declared_and_every_declaration_is_used(channel: Channel) -> None:
    seen = USES.get(channel, {})
    for component, roles in seen.items():
        on_a_side = component in channel.producers or component in channel.consumers
        assert on_a_side, f"{component} uses {channel.address} but is neither side of it"
        if "produce" in roles:
            assert component in channel.producers, f"{component} publishes {channel.address}"
        if "consume" in roles:
            assert component in channel.consumers, f"{component} subscribes {channel.address}"
    declared = set(channel.producers) | set(channel.consumers)
    declared.discard(Component.OPERATOR)  # a person, not code
    if channel is subjects.DEADLETTER:
        # Published by shared/bus/deadletter.py on behalf of every command consumer.
        consumers = {c for ch in CHANNELS for c in ch.consumers if ch.kind.value == "command"}
        assert channel.producers == consumers
        return
    missing = declared - set(seen)
    assert not missing, f"{channel.address}: declared for {missing}, whose code never uses it"


def test_streams_store_exactly_the_declared_channels() -> None:
    from aifactory.shared.bus.topology import stream_configs

    stored = {c.stream for c in subjects.CHANNELS if c.stream}
    configs = {config.name: sorted(config.subjects or []) for config in stream_configs()}
    assert set(configs) == stored
    for name, stream_subjects in configs.items():
        assert stream_subjects == sorted(subjects.stream_subjects(name))


def _models(channel: Channel) -> list[type]:
    root = channel.model.model_fields.get("root")
    if root is None:
        return [channel.model]
    union = get_args(root.annotation)[0] if get_origin(root.annotation) is Annotated else root
    return list(get_args(union))


def test_every_message_field_is_described() -> None:
    undocumented = [
        f"{model.__name__}.{name}"
        for channel in CHANNELS
        for model in _models(channel)
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert undocumented == []
