"""``kill -9`` of the client service mid-benchmark: on restart the run is closed
``interrupted`` with the records received so far kept, summarised and reported; never left
``running``, never re-run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nats
import pytest

from aifactory.loadgen.results import read_records, read_summary
from aifactory.shared import subjects
from aifactory.shared.bus import ensure_topology
from aifactory.shared.messages import BenchRequested, BenchTarget
from aifactory.shared.natsd import EmbeddedNats, free_port
from aifactory.shared.registry import BenchmarkRecord, KVRegistry
from aifactory.shared.states import BenchState
from aifactory.shared.strict import WIRE
from aifactory.shared.workload import Workload
from tests.integration.test_loadgen_simfixture import running

pytestmark = pytest.mark.nats


def _client(nats_url: str, state: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AIFACTORY_NATS_URL": nats_url,
        "AIFACTORY_STATE_DIR": str(state),
        "AIFACTORY_CLIENT_PORT": str(port),
        "AIFACTORY_COMMAND_ACK_WAIT": "5",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aifactory.services.client"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).is_success:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"client service not healthy: {log.read_text()[-2000:]}")


async def _state(kv: KVRegistry[BenchmarkRecord], bid: str) -> BenchmarkRecord | None:
    found = await kv.get(bid)
    return found[0] if found else None


async def test_killed_client_closes_the_run_interrupted_with_its_records(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    kv = KVRegistry((await ensure_topology(js)).benchmarks, BenchmarkRecord)
    completed = await nc.subscribe(subjects.BENCH_COMPLETED.subject())
    port, state, log = free_port(), tmp_path / "state", tmp_path / "client.log"
    proc = _client(nats_server.url, state, port, log)
    try:
        with running("--ttft-ms", "2", "--itl-ms", "1", "--output-tokens", "4", core=None) as sim:
            workload = Workload.model_validate(
                {"profile": "constant", "rate": 40, "duration_s": 120, "window_s": 1}
            )
            cmd = BenchRequested(
                benchmark_id="longrun", target=BenchTarget(url=sim.url), workload=workload
            )
            await js.publish(
                subjects.BENCH_REQUESTED.subject(),
                cmd.model_dump_json(context=WIRE).encode(),
                headers={"Nats-Msg-Id": cmd.id},
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                record = await _state(kv, "longrun")
                if record is not None and record.state is BenchState.RUNNING:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"never running: {log.read_text()[-2000:]}")
            segments = state / "benchmarks" / "longrun"
            deadline = time.monotonic() + 40
            while len(list(segments.glob("stage-0.seg-*"))) < 2:  # two flushes (5 s apart)
                assert time.monotonic() < deadline, "no records reached the disk"
                await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = _client(nats_server.url, state, port, log)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                record = await _state(kv, "longrun")
                if record is not None and record.state.is_terminal:
                    break
                await asyncio.sleep(0.1)
        assert record is not None and record.state is BenchState.INTERRUPTED, record
        assert record.reason and "records received until then are kept" in record.reason
        assert record.summary is not None and record.results_dir is not None
        out = Path(record.results_dir)
        summary = read_summary(out / "summary.json")
        run = summary.runs[0]
        assert summary.state is BenchState.INTERRUPTED and run.state is BenchState.INTERRUPTED
        assert run.requests_sent >= 40, run.requests_sent  # what reached the disk
        table = read_records(out / "records.parquet")
        assert table.num_rows >= run.requests_sent
        assert not list(out.glob("stage-*"))  # the stage files were folded in
        assert "interrupted" in (out / "report.html").read_text()
        event = json.loads((await completed.next_msg(timeout=10)).data)
        assert (event["benchmark_id"], event["state"]) == ("longrun", "interrupted")
        # Not re-run: once closed it stays closed, and a repeated command is ignored.
        await asyncio.sleep(2)
        again = await _state(kv, "longrun")
        assert again is not None and again.state is BenchState.INTERRUPTED
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        await nc.close()
