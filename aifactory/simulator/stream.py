"""One generation: a timer-driven state machine that emits tokens on absolute deadlines.

No task or coroutine per request: a request is a few callbacks on the event loop (slot grant,
one timer per distinct due instant, completion). Tokens whose due times coincide (ITL 0) or
have already passed (an overloaded loop) go out in a single write; otherwise every token is
its own chunk, as from a real engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from aifactory.simulator.engine import SlotScheduler
from aifactory.simulator.http import Connection
from aifactory.simulator.latency import Fault, FaultInjector, LatencyModel, cut_point
from aifactory.simulator.metrics import SimulatorMetrics
from aifactory.simulator.render_openai import Timing, Usage
from aifactory.simulator.requests import GenRequest
from aifactory.simulator.timers import Cancelable, Clock, Timer

monotonic = time.monotonic


class Renderer(Protocol):
    content_type: bytes
    json_type: bytes

    def stream_start(self) -> bytes: ...
    def stream_tokens(self, start: int, end: int, n: int, finish: str) -> bytes: ...
    def stream_end(self, usage: Usage | None, timing: Timing, finish: str) -> bytes: ...
    def whole(self, n: int, finish: str, usage: Usage, timing: Timing) -> bytes: ...


class SimContext:
    """Everything a generation needs from the server, bundled to keep constructors short."""

    __slots__ = ("clock", "faults", "latency", "metrics", "scheduler")

    def __init__(
        self,
        clock: Clock,
        latency: LatencyModel,
        faults: FaultInjector,
        scheduler: SlotScheduler,
        metrics: SimulatorMetrics,
    ) -> None:
        self.clock = clock
        self.latency = latency
        self.faults = faults
        self.scheduler = scheduler
        self.metrics = metrics


_WAITING, _RUNNING, _DONE = 0, 1, 2


class Generation:
    """Serve one generation request on ``conn`` according to the latency model."""

    __slots__ = (
        "_arrival", "_conn", "_ctx", "_cut_at", "_due", "_finish", "_first", "_last", "_n",
        "_next", "_render", "_req", "_slot", "_state", "_timer",
    )  # fmt: skip

    def __init__(
        self,
        ctx: SimContext,
        conn: Connection,
        req: GenRequest,
        renderer: Renderer,
        on_error: Callable[[], None],
    ) -> None:
        self._ctx = ctx
        self._conn = conn
        self._req = req
        self._render = renderer
        self._arrival = monotonic()
        self._state = _WAITING
        self._timer: Timer | Cancelable | None = None
        self._due: list[float] = []
        self._next = 0
        self._first = 0.0
        self._last = 0.0
        self._slot = 0.0
        fault = ctx.faults.draw()
        if fault is Fault.ERROR:
            ctx.metrics.faults["http_500"] += 1
            self._state = _DONE
            on_error()
            return
        plan = ctx.latency.plan(req.max_tokens, req.ignore_eos)
        self._n = plan.tokens
        self._finish = plan.finish_reason
        self._cut_at = cut_point(plan.tokens) if fault is Fault.CUT else -1
        conn.job = self
        if req.stream:
            conn.start_stream(renderer.content_type)
        ctx.scheduler.submit(self)

    # -- scheduler callback --------------------------------------------------------------------
    def on_slot(self) -> None:
        if self._state != _WAITING:
            return
        self._state = _RUNNING
        now = monotonic()
        self._slot = now
        self._due = [
            now + off for off in self._ctx.latency.offsets(self._req.prompt_tokens, self._n)
        ]
        if self._req.stream:
            target = self._due[0]
        else:
            target = self._due[self._cut_at if self._cut_at >= 0 else -1]
        self._timer = self._ctx.clock.call_at(target, self._fire)

    # -- timers --------------------------------------------------------------------------------
    def _fire(self) -> None:
        self._timer = None
        if self._state != _RUNNING:
            return
        now = monotonic()
        if self._next == self._cut_at or (not self._req.stream and self._cut_at >= 0):
            self._do_cut()
        elif self._req.stream:
            self._emit(now)
        else:
            self._complete_whole(now)

    def _emit(self, now: float) -> None:
        due = self._due
        i = self._next
        stop = self._cut_at if self._cut_at >= 0 else self._n
        # Coalesce tokens due at the same instant as this one (or already overdue).
        threshold = now if now > due[i] else due[i]
        j = i + 1
        while j < stop and due[j] <= threshold:
            j += 1
        render = self._render
        payload = render.stream_tokens(i, j, self._n, self._finish)
        metrics = self._ctx.metrics
        metrics.lateness.observe(now - due[i] if now > due[i] else 0.0)
        itl = metrics.itl
        if i == 0:
            payload = render.stream_start() + payload
            self._first = now
            metrics.ttft.observe(now - self._arrival)
        else:
            itl.observe(now - self._last)
        itl.observe_many(0.0, j - i - 1)
        self._last = now
        self._next = j
        if j == self._n:
            timing = self._timing(now)
            usage = Usage(self._req.prompt_tokens, self._n) if self._req.include_usage else None
            payload += render.stream_end(usage, timing, self._finish)
            self._done(now)
            self._conn.send(payload, last=True)
            return
        self._conn.send(payload)
        self._timer = self._ctx.clock.call_at(due[j], self._fire)

    def _complete_whole(self, now: float) -> None:
        metrics = self._ctx.metrics
        due = self._due
        metrics.lateness.observe(now - due[-1] if now > due[-1] else 0.0)
        metrics.ttft.observe(due[0] - self._arrival)
        observe = metrics.itl.observe
        for k in range(1, self._n):
            observe(due[k] - due[k - 1])
        self._first = due[0]
        timing = self._timing(now)
        body = self._render.whole(
            self._n, self._finish, Usage(self._req.prompt_tokens, self._n), timing
        )
        self._done(now)
        self._conn.respond(200, self._render.json_type, body)

    def _timing(self, now: float) -> Timing:
        return Timing(
            total_ns=int((now - self._arrival) * 1e9),
            prompt_eval_ns=int((self._first - self._slot) * 1e9),
            eval_ns=int((now - self._first) * 1e9),
        )

    # -- endings -------------------------------------------------------------------------------
    def _done(self, now: float) -> None:
        metrics = self._ctx.metrics
        metrics.e2e.observe(now - self._arrival)
        metrics.queue.observe(self._slot - self._arrival)
        metrics.prompt_tokens += self._req.prompt_tokens
        metrics.generation_tokens += self._n
        metrics.success[self._finish] += 1
        self._state = _DONE
        self._ctx.scheduler.release()

    def _do_cut(self) -> None:
        metrics = self._ctx.metrics
        metrics.faults["cut"] += 1
        metrics.prompt_tokens += self._req.prompt_tokens
        metrics.generation_tokens += self._cut_at  # tokens generated before the cut
        self._state = _DONE
        self._ctx.scheduler.release()
        self._conn.cut()

    def abort(self) -> None:
        """The client went away: stop generating and give the slot back, like vLLM's abort."""
        state, self._state = self._state, _DONE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if state == _DONE:
            return
        self._ctx.metrics.success["abort"] += 1
        if state == _WAITING:
            self._ctx.scheduler.withdraw(self)
        else:
            self._ctx.scheduler.release()
