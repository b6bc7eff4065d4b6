"""Sub-millisecond absolute-deadline timers for the event loop (Linux ``timerfd``).

libuv (uvloop) timers count whole milliseconds, so ``call_later`` lands anywhere in a ~1 ms
window: a 5 ms inter-token latency would come out as 4-6 ms per token. A faithful simulator
needs per-token errors far below that, without busy-waiting (a spinning simulator would steal
the CPU its benchmark client needs). One ``timerfd`` armed at the earliest deadline with
nanosecond resolution and watched by the loop like any socket gives both: wake-ups tens of
microseconds after the deadline, and no CPU use while nothing is due.

Where ``timerfd`` is unavailable (not Linux), :class:`Clock` falls back to the loop's own
timers with a half-millisecond centring correction for libuv.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import heapq
import itertools
import math
import os
import sys
import time
from collections.abc import Callable

_CLOCK_MONOTONIC = 1  # the clock behind time.monotonic() on Linux
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TFD_TIMER_ABSTIME = 1
_SLACK = 5e-6  # deadlines this close count as due (float <-> ns rounding)

monotonic = time.monotonic


class TimerError(OSError):
    """The kernel refused a timerfd operation (the message says which and why)."""


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class Timer:
    """Handle of one scheduled callback; ``cancel()`` drops it (lazily, at its due time)."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None


class Cancelable:
    """Adapter so loop fallback handles and :class:`Timer` share one interface."""

    __slots__ = ("_handle",)

    def __init__(self, handle: asyncio.Handle) -> None:
        self._handle = handle

    def cancel(self) -> None:
        self._handle.cancel()


class TimerFd:
    """A heap of absolute deadlines served by one timerfd registered with the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = (
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        )
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise TimerError(err, f"timerfd_create failed: {os.strerror(err)}")
        self._fd = fd
        self._spec = _Itimerspec()
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._armed = math.inf
        self._loop = loop
        loop.add_reader(fd, self._on_ready)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(callback)
        heapq.heappush(self._heap, (deadline, next(self._seq), timer))
        if deadline < self._armed:
            self._arm(deadline)
        return timer

    def _arm(self, deadline: float) -> None:
        sec = int(deadline)
        value = self._spec.it_value
        value.tv_sec = sec
        value.tv_nsec = max(1, int((deadline - sec) * 1e9))  # (0, 0) would disarm
        if self._settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            err = ctypes.get_errno()
            raise TimerError(err, f"timerfd_settime({deadline:.6f}) failed: {os.strerror(err)}")
        self._armed = deadline

    def _on_ready(self) -> None:
        # A spurious wake-up finds the fd already drained; the heap below decides what is due.
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 8)
        heap = self._heap
        # While callbacks run, new deadlines must not re-arm one by one: re-arm once at the end.
        self._armed = -math.inf
        try:
            while heap and heap[0][0] <= monotonic() + _SLACK:
                callback = heapq.heappop(heap)[2].callback
                if callback is not None:
                    callback()
        finally:
            self._armed = math.inf
            if heap:
                self._arm(heap[0][0])

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._heap.clear()


class Clock:
    """Schedules callbacks at absolute ``time.monotonic()`` instants."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._uv = type(loop).__module__.startswith("uvloop")
        self._fd: TimerFd | None = TimerFd(loop) if sys.platform == "linux" else None

    @property
    def precise(self) -> bool:
        return self._fd is not None

    def call_at(self, target: float, callback: Callable[[], None]) -> Timer | Cancelable:
        if self._fd is not None:
            return self._fd.call_at(target, callback)
        if self._uv:
            # libuv fires on average half a millisecond after its due millisecond: aim early.
            ms = round((target - self._loop.time()) * 1000.0 - 0.5)
            return Cancelable(self._loop.call_later(ms / 1000.0, callback))
        return Cancelable(self._loop.call_at(target, callback))  # asyncio: loop.time() is monotonic

    def close(self) -> None:
        if self._fd is not None:
            self._fd.close()
            self._fd = None
