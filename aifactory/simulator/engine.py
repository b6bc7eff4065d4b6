"""Running slots with a FIFO waiting queue: the simulator's stand-in for continuous batching.

A real engine decodes at most ``max_num_seqs`` sequences at once and queues the rest; queueing
is what makes TTFT grow under load, so the simulator must reproduce it. Callbacks instead of
futures keep the uncontended path to two integer operations.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol


class SlotUser(Protocol):
    """Anything that can be granted a running slot."""

    def on_slot(self) -> None: ...


class SlotScheduler:
    """At most ``max_running`` users hold a slot; the others wait in arrival order."""

    __slots__ = ("_waiting", "max_running", "running")

    def __init__(self, max_running: int) -> None:
        self.max_running = max_running
        self.running = 0
        self._waiting: deque[SlotUser] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, user: SlotUser) -> bool:
        """Grant a slot now (calls ``user.on_slot()``, returns True) or queue the user."""
        if self.running < self.max_running:
            self.running += 1
            user.on_slot()
            return True
        self._waiting.append(user)
        return False

    def release(self) -> None:
        """Free one slot; the oldest waiter (if any) inherits it immediately."""
        if self._waiting:
            self._waiting.popleft().on_slot()
        else:
            self.running -= 1

    def withdraw(self, user: SlotUser) -> bool:
        """Remove a waiting user (its client went away); False if it was not waiting."""
        try:
            self._waiting.remove(user)
        except ValueError:
            return False
        return True
