"""``stack.json``: where this user's running stack listens, so the CLI finds its own.

A login node runs many users' stacks side by side; fixed ports would collide, or worse,
let one user's CLI drive another's stack. ``aifactory up`` picks ports per user (derived
from the uid, a free port when that one is taken) and writes them here, mode 0600, in the
user's state directory. The CLI, the tests and the web page read it; a stale file (its
process gone) is ignored.
"""

from __future__ import annotations

import contextlib
import os
import socket
from datetime import datetime
from pathlib import Path

from pydantic import Field, ValidationError

from aifactory.shared.credentials import check_private, write_private
from aifactory.shared.messages.base import utcnow
from aifactory.shared.strict import StrictModel

STACK_FILE = "stack.json"
#: Ports derived from the uid live in [BASE, BASE + SPAN * SLOTS): 16 per user.
BASE, SLOTS, SPAN = 20000, 16, 2000


class StackInfo(StrictModel):
    """What a running ``aifactory up`` publishes about itself."""

    pid: int = Field(description="The supervisor's process id.")
    uid: int = Field(description="Whose stack it is.")
    started: datetime = Field(default_factory=utcnow)
    executor: str
    nats_url: str
    ingress_url: str
    client_url: str
    monitor_url: str | None = None
    logs_url: str | None = None
    #: ``aifactory up --with-prometheus``: where Prometheus answers.
    prometheus_url: str | None = None
    #: The ingress answers without a token on loopback (``--insecure-loopback``, demos only).
    insecure_loopback: bool = False


def stack_path(state_dir: Path) -> Path:
    return state_dir / STACK_FILE


def write_stack(state_dir: Path, info: StackInfo) -> None:
    write_private(stack_path(state_dir), info.model_dump_json(indent=2))


def remove_stack(state_dir: Path, pid: int) -> None:
    """Remove the file if it is still ``pid``'s (a newer stack may have replaced it)."""
    found = read_stack(state_dir, alive_only=False)
    if found is not None and found.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            stack_path(state_dir).unlink()


def read_stack(state_dir: Path, *, alive_only: bool = True) -> StackInfo | None:
    path = stack_path(state_dir)
    try:
        check_private(path)
        info = StackInfo.model_validate_json(path.read_text())
    except (FileNotFoundError, ValidationError):
        return None
    if alive_only and not process_alive(info.pid):
        return None
    return info


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process of this user."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process reuses the pid: not our stack
        return False
    return True


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def user_ports(count: int, *, uid: int | None = None, host: str = "127.0.0.1") -> list[int]:
    """``count`` ports for this user: the uid's own block first, any free port after.

    Stable across restarts for one user (bookmarks and firewall rules keep working), distinct
    between users; a port someone else holds is replaced by a free one, never shared.
    """
    uid = os.getuid() if uid is None else uid
    first = BASE + (uid % SPAN) * SLOTS
    chosen: list[int] = []
    for port in range(first, first + SLOTS):
        if len(chosen) == count:
            break
        if port_free(port, host):
            chosen.append(port)
    while len(chosen) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in chosen:
            chosen.append(port)
    return chosen
