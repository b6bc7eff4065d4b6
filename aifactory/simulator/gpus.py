"""Emulated GPUs: dcgm-exporter's series for ``--emulate-gpus N``, derived from the load.

This machine (and CI) has no GPU, yet the monitor, the report's "Server and GPU" section
and the Grafana GPU panels must run end to end against something that looks exactly like
dcgm-exporter. So the simulator serves, next to its vLLM metrics, the series a real
dcgm-exporter 4.x writes with its default counters, in its text format: the same names,
HELP texts, types, label names and order (``gpu``, ``UUID``, ``pci_bus_id``, ``device``,
``modelName``, ``Hostname``, then the ``DCGM_FI_DRIVER_VERSION`` label field), integers
printed as integers and doubles with six decimals (``%f``), as its renderer does.

The values are a model, stated here so nobody mistakes them for measurements
(``modelName`` says "emulated"): a 10 Hz sampler records the scheduler's running
requests; over the last second,

- ``busy`` = fraction of samples with a request running, ``load`` = mean running /
  max running;
- GPU_UTIL = 100 x busy (a decoding engine keeps kernels running whenever it has work);
- GR_ENGINE_ACTIVE = busy x (0.3 + 0.7 x load) (small batches leave the engine idle more);
- FB_USED = 35 % of memory (weights, context) + 55 % x load (KV blocks in use); FB_FREE is
  the rest after a fixed 0.6 % reserved (real vLLM preallocates its KV pool; the emulation
  shows the pool's use instead, so memory moves with the load);
- POWER_USAGE = 70 W + 630 W x engine activity; GPU_TEMP follows power with a 10 s lag
  from 32 to 75 C. GPU ``i`` runs 1 % warmer in power and 1 C in temperature than GPU 0,
  so per-GPU panels show distinct lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

SAMPLE_EVERY_S = 0.1
WINDOW_SAMPLES = 10
IDLE_W, MAX_W = 70.0, 700.0
COOL_C, HOT_C, TEMP_LAG_S = 32.0, 75.0, 10.0
RESERVED_FRACTION, BASE_FRACTION, KV_FRACTION = 0.006, 0.35, 0.55
MODEL_NAME = "aifactory emulated GPU"
DRIVER_VERSION = "emulated"

#: (field, Prometheus type, HELP as in dcgm-exporter's default-counters.csv, integer?)
FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", True),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", False),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", True),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", True),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", True),
    (
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "gauge",
        "Ratio of time the graphics engine is active.",
        False,
    ),
)


@dataclass(frozen=True)
class GpuReading:
    """One emulated GPU at one moment, in dcgm-exporter's units."""

    util: int
    engine_active: float
    fb_used: int
    fb_free: int
    power_w: float
    temp_c: int

    def value(self, field: str) -> float:
        return {
            "DCGM_FI_DEV_GPU_TEMP": self.temp_c,
            "DCGM_FI_DEV_POWER_USAGE": self.power_w,
            "DCGM_FI_DEV_GPU_UTIL": self.util,
            "DCGM_FI_DEV_FB_FREE": self.fb_free,
            "DCGM_FI_DEV_FB_USED": self.fb_used,
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE": self.engine_active,
        }[field]


class GpuEmulator:
    """``count`` GPUs that follow ``running()`` (the scheduler's running requests)."""

    def __init__(
        self,
        count: int,
        running: Callable[[], int],
        capacity: int,
        *,
        memory_mib: int = 81559,
        hostname: str | None = None,
    ) -> None:
        self.count = count
        self._running = running
        self._capacity = max(1, capacity)
        self.memory_mib = memory_mib
        self.hostname = hostname or socket.gethostname().split(".")[0] or "localhost"
        self._window: deque[int] = deque(maxlen=WINDOW_SAMPLES)
        self._temp_fraction = 0.0
        self._labels: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def start(self, port: int) -> None:
        """Begin sampling; ``port`` makes the GPUs' UUIDs differ between simulators."""
        self._labels = [self._label_text(i, port) for i in range(self.count)]
        self._task = asyncio.get_running_loop().create_task(self._sample_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _label_text(self, index: int, port: int) -> str:
        gpu_uuid = uuid.uuid5(uuid.NAMESPACE_DNS, f"aifactory-sim.{self.hostname}.{port}.{index}")
        return (
            f'gpu="{index}",UUID="GPU-{gpu_uuid}",pci_bus_id="00000000:{index + 1:02X}:00.0",'
            f'device="nvidia{index}",modelName="{MODEL_NAME}",Hostname="{self.hostname}",'
            f'DCGM_FI_DRIVER_VERSION="{DRIVER_VERSION}"'
        )

    async def _sample_forever(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_EVERY_S)

    def sample(self) -> None:
        """Record the load now and move the temperature towards where the power points."""
        self._window.append(self._running())
        target = self._engine_active()
        step = min(1.0, SAMPLE_EVERY_S / TEMP_LAG_S)
        self._temp_fraction += (target - self._temp_fraction) * step

    def _busy_and_load(self) -> tuple[float, float]:
        if not self._window:
            return 0.0, 0.0
        busy = sum(1 for r in self._window if r > 0) / len(self._window)
        load = min(1.0, sum(self._window) / len(self._window) / self._capacity)
        return busy, load

    def _engine_active(self) -> float:
        busy, load = self._busy_and_load()
        return busy * (0.3 + 0.7 * load)

    def reading(self, index: int) -> GpuReading:
        busy, load = self._busy_and_load()
        active = self._engine_active()
        total = self.memory_mib
        reserved = round(total * RESERVED_FRACTION)
        used = round(total * (BASE_FRACTION + KV_FRACTION * load))
        power = (IDLE_W + (MAX_W - IDLE_W) * active) * (1 + 0.01 * index)
        temp = COOL_C + (HOT_C - COOL_C) * self._temp_fraction + index
        return GpuReading(
            util=round(100 * busy),
            engine_active=active,
            fb_used=used,
            fb_free=total - reserved - used,
            power_w=power,
            temp_c=round(temp),
        )

    def render(self) -> bytes:
        """dcgm-exporter's exposition text for every emulated GPU."""
        readings = [self.reading(i) for i in range(self.count)]
        out: list[str] = []
        for field, kind, help_text, integer in FIELDS:
            out.append(f"# HELP {field} {help_text}\n# TYPE {field} {kind}\n")
            for labels, reading in zip(self._labels, readings, strict=True):
                value = reading.value(field)
                shown = f"{round(value):d}" if integer else f"{value:f}"
                out.append(f"{field}{{{labels}}} {shown}\n")
        return "".join(out).encode()
