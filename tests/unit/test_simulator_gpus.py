"""Emulated GPUs look like dcgm-exporter 4.x and follow the simulator's load."""

from __future__ import annotations

import re

import pytest

from aifactory.monitor.exposition import parse_all
from aifactory.simulator.gpus import FIELDS, GpuEmulator

#: From dcgm-exporter's etc/default-counters.csv (4.5.3): field, type, HELP.
DEFAULT_COUNTERS = {
    "DCGM_FI_DEV_GPU_TEMP": ("gauge", "GPU temperature (in C)."),
    "DCGM_FI_DEV_POWER_USAGE": ("gauge", "Power draw (in W)."),
    "DCGM_FI_DEV_GPU_UTIL": ("gauge", "GPU utilization (in %)."),
    "DCGM_FI_DEV_FB_FREE": ("gauge", "Framebuffer memory free (in MiB)."),
    "DCGM_FI_DEV_FB_USED": ("gauge", "Framebuffer memory used (in MiB)."),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": ("gauge", "Ratio of time the graphics engine is active."),
}
#: dcgm-exporter's GPU line (rendermetrics/render_metrics.go): the fixed label order, then
#: the label-type fields (DCGM_FI_DRIVER_VERSION); integers as %d, doubles as %f.
LINE = re.compile(
    r'^(DCGM_FI_\w+)\{gpu="(\d+)",UUID="GPU-[0-9a-f-]{36}",pci_bus_id="[0-9A-F]{8}:[0-9A-F]{2}:'
    r'00\.0",device="nvidia\2",modelName="[^"]+",Hostname="[^"]+",'
    r'DCGM_FI_DRIVER_VERSION="[^"]+"\} (\d+|\d+\.\d{6})$'
)


def emulator(running: list[int], count: int = 2) -> GpuEmulator:
    gpus = GpuEmulator(count, running=lambda: running[0], capacity=8, hostname="node7")
    gpus._labels = [gpus._label_text(i, 8000) for i in range(count)]
    return gpus


def test_the_text_is_dcgm_exporters() -> None:
    text = emulator([0]).render().decode()
    assert {f: (k, h) for f, k, h, _ in FIELDS} == DEFAULT_COUNTERS
    for field, (kind, help_text) in DEFAULT_COUNTERS.items():
        assert f"# HELP {field} {help_text}\n# TYPE {field} {kind}\n" in text
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(samples) == 2 * len(DEFAULT_COUNTERS)
    for line in samples:
        match = LINE.match(line)
        assert match, line
        integer = dict((f, i) for f, _, _, i in FIELDS)[match.group(1)]
        assert ("." not in match.group(3)) is integer, line
    parsed = parse_all(text.encode(), ["DCGM_FI_.*"])
    assert len(parsed) == 2  # one group per GPU, every field in it
    assert {g["labels"]["Hostname"] for g in parsed} == {"node7"}
    assert all(set(g["values"]) == set(DEFAULT_COUNTERS) for g in parsed)


def test_values_follow_the_load() -> None:
    running = [0]
    gpus = emulator(running, count=1)
    for _ in range(10):
        gpus.sample()
    idle = gpus.reading(0)
    assert idle.util == 0 and idle.engine_active == 0 and idle.power_w == pytest.approx(70.0)
    running[0] = 8  # every slot busy
    for _ in range(10):
        gpus.sample()
    busy = gpus.reading(0)
    assert busy.util == 100 and busy.engine_active == pytest.approx(1.0)
    assert busy.power_w == pytest.approx(700.0)
    assert busy.fb_used > idle.fb_used and busy.fb_free < idle.fb_free
    assert busy.fb_used + busy.fb_free < gpus.memory_mib  # the reserved part
    assert 32 < busy.temp_c < 75  # lags behind the power
