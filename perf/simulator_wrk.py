"""Streamed chat requests/s one core of the simulator serves, against a naive baseline.

Usage: ``.venv/bin/python perf/simulator_wrk.py [--duration 10] [--connections 64]``

The server under test is pinned to core 0 and wrk to core 1 (``taskset``), so the figure is
"what one core serves". Workload: chat completions with ``stream: true``, 16 output tokens,
TTFT 1 ms, ITL 0 (wrk counts a request when its chunked body ends, after ``[DONE]``). The
baseline, measured in the same run on the same core, is the obvious aiohttp implementation
(``web.StreamResponse``, ``json.dumps`` and one ``write`` per chunk); it is served by this same
script with ``--serve-baseline PORT``. Exit status 1 when the simulator misses ``--target``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "perf" / "wrk_stream.lua"
PATH = "/v1/chat/completions"
TOKENS = 16


def serve_baseline(port: int) -> None:
    """The naive implementation: what most mock servers look like."""
    from aiohttp import web

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await asyncio.sleep(0.001)  # TTFT 1 ms
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0}
        base["model"] = body.get("model", "simulator")
        role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        await resp.write(f"data: {json.dumps({**base, 'choices': [role]})}\n\n".encode())
        for i in range(TOKENS):
            choice = {"index": 0, "delta": {"content": f" w{i}"}, "finish_reason": None}
            await resp.write(f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode())
        usage = {"prompt_tokens": 5, "completion_tokens": TOKENS, "total_tokens": TOKENS + 5}
        await resp.write(
            f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
        )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def health(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_post(PATH, chat)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if (os.cpu_count() or 1) >= 2 else cmd


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early: {proc.communicate()[1].decode()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not become healthy in 20 s")


def check_stream(url: str) -> None:
    """One request before the load: the endpoint must stream 16 tokens and [DONE]."""
    body = json.dumps(
        {"model": "simulator", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    req = urllib.request.Request(f"{url}{PATH}", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as resp:
        text = resp.read().decode()
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    tokens = sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content"))
    if tokens != TOKENS or not text.endswith("data: [DONE]\n\n"):
        raise SystemExit(f"{url}: expected {TOKENS} tokens and [DONE], got:\n{text[:500]}")


def run_wrk(url: str, duration: int, connections: int) -> tuple[float, str]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(LUA), f"{url}{PATH}"]
    out = subprocess.run(
        pinned(1, cmd), capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise SystemExit(f"could not parse wrk output:\n{out}")
    for bad in ("Non-2xx", "Socket errors"):
        if bad in out:
            print(f"warning: wrk reported {bad}:\n{out}", file=sys.stderr)
    return float(match.group(1)), out


def measure(name: str, server_cmd: list[str], port: int, args: argparse.Namespace) -> float:
    proc = subprocess.Popen(
        pinned(0, server_cmd), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        check_stream(url)
        rps, out = run_wrk(url, args.duration, args.connections)
        found = re.search(r"Latency\s+(\S+)", out)
        latency = found.group(1) if found else "?"
        print(f"{name:<22} {rps:>10,.0f} req/s   (mean latency {latency})")
        return rps
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--target", type=float, default=2000.0, help="required simulator req/s")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install wrk util-linux")
    print(f"chat stream, {TOKENS} tokens, TTFT 1 ms, ITL 0; server on core 0, wrk -t1 "
          f"-c{args.connections} -d{args.duration}s on core 1")  # fmt: skip
    port = free_port()
    sim_cmd = [sys.executable, "-m", "aifactory.simulator", "--port", str(port),
               "--ttft-ms", "1", "--itl-ms", "0", "--output-tokens", str(TOKENS),
               "--log-level", "warning"]  # fmt: skip
    simulated = measure("simulator", sim_cmd, port, args)
    if not args.skip_baseline:
        port = free_port()
        base_cmd = [sys.executable, __file__, "--serve-baseline", str(port)]
        baseline = measure("naive aiohttp baseline", base_cmd, port, args)
        print(f"simulator / baseline:  {simulated / baseline:.1f}x")
    verdict = "meets" if simulated >= args.target else "MISSES"
    print(f"simulator {verdict} the {args.target:,.0f} req/s target")
    return 0 if simulated >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
