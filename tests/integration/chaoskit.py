"""The chaos suite's bookkeeping: what was acknowledged, what was killed, and the checks.

Kept apart from the schedule (test_chaos.py) so the invariants read as a list:

1. every acknowledged command has exactly one effect (one record, at most one job ever
   submitted for it, cancels honoured);
2. the registry matches ``squeue``;
3. every benchmark is in a terminal state;
4. the stack is healthy again within 10 s of the last kill;
5. (after the stack stops) no job and no process of it is left.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from aifactory.shared.parts import read_parts
from tests.integration.server_stack import UpStack
from tests.integration.slurmkit import squeue

#: A service in one of these states should have a job in the queue.
LIVE = {"pending", "starting", "running"}
HEALTHY_WITHIN_S = 10.0


@dataclass
class Ledger:
    seed: int
    deploys: dict[str, str] = field(default_factory=dict)  # acked service id → how
    cancels: set[str] = field(default_factory=set)  # acked cancels
    benchmarks: set[str] = field(default_factory=set)  # acked benchmark ids
    attempted: set[str] = field(default_factory=set)  # service ids sent, acked or not
    refused: int = 0  # requests the stack refused or could not take (down, 503)
    unknown: int = 0  # requests cut while being answered: may or may not have happened
    kills: list[tuple[float, str, int]] = field(default_factory=list)  # (t, part, pid)
    logs_read: int = 0
    events: list[str] = field(default_factory=list)

    def note(self, line: str) -> None:
        self.events.append(f"{time.monotonic():.2f} {line}")

    def figures(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "kills": len(self.kills),
            "killed": sorted({part for _, part, _ in self.kills}),
            "deploys_acked": len(self.deploys),
            "cancels_acked": len(self.cancels),
            "benchmarks_acked": len(self.benchmarks),
            "refused": self.refused,
            "unknown_outcome": self.unknown,
            "logs_read": self.logs_read,
        }


def kill_part(stack: UpStack, ledger: Ledger, name: str) -> bool:
    """``kill -9`` the part's current process (skipped if it is between restarts)."""
    found = read_parts(Path(stack.env["AIFACTORY_STATE_DIR"]))
    part = next((p for p in found.parts if p.name == name), None) if found else None
    already = {pid for _, _, pid in ledger.kills}
    if part is None or part.pid is None or part.state.value != "running" or part.pid in already:
        ledger.note(f"kill {name}: not running (yet), skipped")
        return False
    os.kill(part.pid, signal.SIGKILL)
    ledger.kills.append((time.monotonic(), name, part.pid))
    ledger.note(f"kill -9 {name} (pid {part.pid})")
    return True


class HealthWatch:
    """Polls ``/health`` every 0.1 s in a thread, so "healthy again" is timed from the kill
    itself, not from whenever the schedule got round to looking."""

    def __init__(self, stack: UpStack) -> None:
        self.url = f"{stack.ingress}/health"
        self.samples: list[tuple[float, dict[str, int | None]]] = []  # (t, pids) when ok
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        with httpx.Client(timeout=1) as client:
            while not self._stop.wait(0.1):
                try:
                    answer = client.get(self.url)
                    body = answer.json() if answer.status_code == 200 else {}
                except (httpx.HTTPError, ValueError):
                    continue
                parts = body.get("parts", [])
                if parts and all(p["state"] == "running" for p in parts):
                    self.samples.append((time.monotonic(), {p["name"]: p["pid"] for p in parts}))

    def healthy_after(self, ledger: Ledger, timeout: float = 30) -> float:
        """Seconds from the last kill until the stack was whole again (the killed part back
        under a new pid, every part running, the ingress on its bus)."""
        if not ledger.kills:
            return 0.0
        killed_at, part, pid = ledger.kills[-1]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, pids in list(self.samples):
                if t >= killed_at and pids.get(part) not in (None, pid):
                    return t - killed_at
            time.sleep(0.1)
        raise AssertionError(f"not healthy {timeout}s after the last kill ({part} {pid})")


def settle(api: httpx.Client, ledger: Ledger, timeout: float = 60) -> dict[str, dict[str, Any]]:
    """Wait until no acknowledged command is still on its way; the registry then."""
    deadline = time.monotonic() + timeout
    records: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        records = {r["service_id"]: r for r in api.get("/api/v1/services").json()}
        cancelling = [s for s in ledger.cancels if records.get(s, {}).get("state") in LIVE]
        unsubmitted = [s for s, r in records.items() if r["state"] in LIVE and not r.get("job_id")]
        missing = [s for s in ledger.deploys if s not in records]
        running_benchmarks = [
            b
            for b in ledger.benchmarks
            if api.get(f"/api/v1/benchmarks/{b}").json().get("state") in ("pending", "running")
        ]
        if not (cancelling or unsubmitted or missing or running_benchmarks):
            return records
        time.sleep(0.3)
    raise AssertionError(
        f"not settled in {timeout}s: cancelling {cancelling}, unsubmitted {unsubmitted}, "
        f"missing {missing}, benchmarks {running_benchmarks}"
    )


def violations(
    api: httpx.Client, ledger: Ledger, records: dict[str, dict[str, Any]], jobs_dir: Path
) -> list[str]:
    found: list[str] = []
    ours = set(records) | ledger.attempted
    queue: dict[str, list[str]] = {}
    for line in squeue("-o", "%i %j"):
        job_id, name = line.split(maxsplit=1)
        service_id = name.removeprefix("aif-")
        if service_id in ours:
            queue.setdefault(service_id, []).append(job_id)
    for service_id in ledger.deploys:  # 1. exactly one effect per acknowledged deploy
        record = records.get(service_id)
        if record is None:
            found.append(f"deploy {service_id} was acked but has no record (lost)")
            continue
        if len(queue.get(service_id, [])) > 1:
            found.append(f"deploy {service_id} has {queue[service_id]} jobs (doubled)")
        outputs = list((jobs_dir / service_id).glob("*.out"))
        if len(outputs) > 1:
            found.append(f"deploy {service_id} ran {len(outputs)} jobs: {outputs}")
        if service_id in ledger.cancels and record["state"] != "cancelled":
            found.append(f"cancel of {service_id} was acked but it is {record['state']}")
    unrequested = sorted(set(records) - ledger.attempted)
    if len(unrequested) > ledger.unknown:  # each cut request may have made one record
        found.append(f"records {unrequested} were never requested ({ledger.unknown} unknown)")
    for service_id, record in records.items():  # 2. the registry matches squeue
        queued = queue.get(service_id, [])
        if record["state"] in LIVE and queued != [record["job_id"]]:
            found.append(
                f"{service_id} is {record['state']} (job {record['job_id']}), queue {queued}"
            )
        if record["state"] not in LIVE and queued:
            found.append(f"{service_id} is {record['state']} but jobs {queued} are queued")
    for service_id in set(queue) - set(records):
        found.append(f"jobs {queue[service_id]} of {service_id} have no record (orphans)")
    for benchmark_id in ledger.benchmarks:  # 3. benchmarks end
        state = api.get(f"/api/v1/benchmarks/{benchmark_id}").json().get("state")
        if state not in ("completed", "failed", "cancelled", "interrupted"):
            found.append(f"benchmark {benchmark_id} is {state}")
    return found


def leftovers(state_dir: Path, service_ids: set[str]) -> list[str]:
    """5. After the stack stopped: processes of it, jobs of it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(state_dir) in cmdline or str(state_dir) in environ:
            found.append(f"process {entry.name}: {cmdline[:200]}")
    for line in squeue("-o", "%i %j"):
        job_id, name = line.split(maxsplit=1)
        if name.removeprefix("aif-") in service_ids:
            found.append(f"job {job_id} ({name}) still queued")
    return found


def report(ledger: Ledger, healthy_after_s: float, problems: list[str]) -> str:
    figures = {**ledger.figures(), "healthy_after_last_kill_s": round(healthy_after_s, 2)}
    lines = [f"chaos figures: {json.dumps(figures)}", *problems, "events:", *ledger.events]
    return "\n".join(lines)
