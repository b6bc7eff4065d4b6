"""Realistic exporter payloads on many ports, for ``perf/monitor_scrape.py``.

``python perf/_monitor_payloads.py --targets 100 --ports-file PATH`` serves, from one
process (aiohttp, one listening socket per target), half node-exporter and half
dcgm-exporter expositions, and writes ``[{"port", "kind", "bytes"}]`` to PATH once all
listen:

- node exporter: this machine's real ``prometheus-node-exporter`` output (captured once),
  with its per-CPU series repeated for 32, 64, 96 or 128 CPUs (a compute node's size);
- dcgm-exporter: every field of its default counters CSV for 8 GPUs, in its exact text
  format (label order, ``%d``/``%f``), with the ``hpc_job`` label its SLURM job mapping adds.

The bodies are built once: a scraper's cost does not depend on the values changing, and the
payload server must not be what the benchmark measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import uvloop
from aiohttp import web

#: dcgm-exporter 4.5's default counters (etc/default-counters.csv), without the label field.
DCGM_FIELDS = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", "1980"),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", "2619"),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", "41"),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "48"),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "412.345000"),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "counter",
        "Total energy consumption since boot (in mJ).",
        "98712345678",
    ),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", "0"),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "97"),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", "41"),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", "0"),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", "0"),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", "0"),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", "7012"),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", "74047"),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).", "500"),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "counter",
        "Total number of NVLink bandwidth counters for all lanes.",
        "123456789",
    ),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge", "vGPU License status", "0"),
    (
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for uncorrectable errors",
        "0",
    ),
    (
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for correctable errors",
        "0",
    ),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed", "0"),
    (
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "gauge",
        "Ratio of time the graphics engine is active.",
        "0.912345",
    ),
    (
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "gauge",
        "Ratio of cycles the tensor (HMMA) pipe is active.",
        "0.412345",
    ),
    (
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "gauge",
        "Ratio of cycles the device memory interface is active sending or receiving data.",
        "0.612345",
    ),
    (
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "gauge",
        "The rate of data transmitted over the PCIe bus - including both protocol headers "
        "and data payloads - in bytes per second.",
        "123456789",
    ),
    (
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "gauge",
        "The rate of data received over the PCIe bus - including both protocol headers and "
        "data payloads - in bytes per second.",
        "987654321",
    ),
)


def dcgm_body(node: int, gpus: int = 8) -> bytes:
    out = []
    for field, kind, help_text, value in DCGM_FIELDS:
        out.append(f"# HELP {field} {help_text}\n# TYPE {field} {kind}\n")
        for g in range(gpus):
            uuid = f"GPU-{node:08x}-{g:04x}-4e1c-9a3f-{node * 8 + g:012x}"
            out.append(
                f'{field}{{gpu="{g}",UUID="{uuid}",pci_bus_id="00000000:{0x18 + 16 * g:02X}:00.0",'
                f'device="nvidia{g}",modelName="NVIDIA H100 80GB HBM3",Hostname="mel{node:04d}",'
                f'DCGM_FI_DRIVER_VERSION="550.54.15",hpc_job="{4_000_000 + node}"}} {value}\n'
            )
    return "".join(out).encode()


def capture_node_exporter() -> str:
    """One real exposition of this machine's node exporter (started for it, then stopped)."""
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        raise SystemExit("prometheus-node-exporter is needed for realistic node payloads")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
                    return str(r.read().decode())
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the node exporter did not answer")
    finally:
        proc.terminate()
        proc.wait()


def node_body(real: str, cpus: int) -> bytes:
    """``real`` with every per-CPU line (``cpu="0"``) repeated for ``cpus`` CPUs."""
    out = []
    for line in real.splitlines():
        if line.startswith("#") or not re.search(r'\bcpu="\d+"', line):
            out.append(line)
        elif re.search(r'\bcpu="0"', line):
            out.extend(re.sub(r'\bcpu="0"', f'cpu="{c}"', line) for c in range(cpus))
    return ("\n".join(out) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--ports-file", type=Path, required=True)
    args = parser.parse_args()
    real = capture_node_exporter()
    bodies: list[tuple[str, bytes]] = []
    for i in range(args.targets):
        if i % 2 == 0:
            bodies.append(("node", node_body(real, 32 * (1 + (i // 2) % 4))))
        else:
            bodies.append(("dcgm", dcgm_body(i // 2)))

    async def serve() -> None:
        runner_list = []
        listing = []
        for kind, body in bodies:

            async def metrics(request: web.Request, body: bytes = body) -> web.Response:
                return web.Response(body=body, content_type="text/plain")

            app = web.Application()
            app.router.add_get("/metrics", metrics)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runner_list.append(runner)
            listing.append({"port": runner.addresses[0][1], "kind": kind, "bytes": len(body)})
        tmp = args.ports_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(listing))
        tmp.rename(args.ports_file)
        while True:
            await asyncio.sleep(3600)

    uvloop.run(serve())


if __name__ == "__main__":
    main()
