"""Chaos: a mixed workload on a real stack (``aifactory up`` on the local SLURM) while every
part is ``kill -9``-ed at random points; then the invariants of chaoskit.py must hold.

The schedule comes from a seed, printed for replay: ``AIFACTORY_CHAOS_SEED=<n> pytest
tests/integration/test_chaos.py -s``. Bounded: about 30 s of actions, then settling.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import nats
import pytest

from aifactory.shared import subjects
from aifactory.shared.credentials import load_credentials
from aifactory.shared.messages import DeployRequested, new_id
from aifactory.shared.parts import read_parts
from aifactory.shared.strict import WIRE
from aifactory.simulator.harness import SimulatorProcess
from tests.integration.chaoskit import (
    HEALTHY_WITHIN_S,
    HealthWatch,
    Ledger,
    kill_part,
    leftovers,
    report,
    settle,
    violations,
)
from tests.integration.server_stack import UpStack, aifactory_up
from tests.integration.slurmkit import slurm_up

pytestmark = [pytest.mark.slurm, pytest.mark.nats]

SEED = int(os.environ.get("AIFACTORY_CHAOS_SEED", "20261123"))
HORIZON_S = 30.0  # seconds of scheduled actions; kills fall in [3, HORIZON_S - 5]
BENCH = {"profile": "constant", "rate": 10, "duration_s": 4, "window_s": 1}


class Chaos:
    def __init__(self, stack: UpStack, ledger: Ledger, rng: random.Random, sim_url: str) -> None:
        self.stack = stack
        self.ledger = ledger
        self.rng = rng
        self.sim_url = sim_url
        self.api = httpx.Client(base_url=stack.ingress, headers=stack.headers, timeout=5)
        self.readers: list[threading.Thread] = []

    def _post(self, path: str, body: dict[str, object]) -> dict[str, str] | None:
        try:
            answer = self.api.post(path, json=body)
        except httpx.ConnectError:
            self.ledger.refused += 1  # nothing reached the ingress
            return None
        except httpx.HTTPError:
            self.ledger.unknown += 1  # it died while answering: done or not, we cannot tell
            return None
        if answer.status_code != 202:
            self.ledger.refused += 1
            return None
        return dict(answer.json())

    def deploy(self) -> None:
        accepted = self._post("/api/v1/services", {"recipe": "inference/httpserver"})
        if accepted is not None:
            self.ledger.deploys[accepted["service_id"]] = "ingress"
            self.ledger.attempted.add(accepted["service_id"])
            self.ledger.note(f"deploy {accepted['service_id']} acked")

    def resend(self) -> None:
        """One deploy sent three times straight onto the bus: twice with the same message
        id, once as a fresh message with the same service id. One job, whatever happens."""
        service_id = new_id()[:12]
        self.ledger.attempted.add(service_id)
        first = DeployRequested(service_id=service_id, recipe="inference/httpserver")
        fresh = DeployRequested(service_id=service_id, recipe="inference/httpserver")
        try:
            acked = asyncio.run(asyncio.wait_for(self._publish([first, first, fresh]), 15))
        except TimeoutError:
            self.ledger.unknown += 1
            acked = 0
        if acked:
            self.ledger.deploys[service_id] = "bus x3"
        self.ledger.note(f"resend {service_id}: {acked} of 3 acked")

    async def _publish(self, messages: list[DeployRequested]) -> int:
        creds = load_credentials(Path(self.stack.env["AIFACTORY_STATE_DIR"]))
        assert creds is not None
        acked = 0
        try:
            nc = await nats.connect(
                self.stack.env["AIFACTORY_NATS_URL"],
                user=creds.nats_user,
                password=creds.nats_password.get_secret_value(),
                connect_timeout=2,
                allow_reconnect=False,
            )
        except (OSError, TimeoutError, nats.errors.Error):
            self.ledger.refused += 1
            return 0
        try:
            for message in messages:
                try:
                    await nc.jetstream().publish(
                        subjects.DEPLOY_REQUESTED.subject(),
                        message.model_dump_json(context=WIRE).encode(),
                        headers={"Nats-Msg-Id": message.id},
                        timeout=3,
                    )
                    acked += 1
                except (TimeoutError, nats.errors.Error):
                    self.ledger.unknown += 1
        finally:
            await nc.close()
        return acked

    def cancel(self) -> None:
        open_ = sorted(set(self.ledger.deploys) - self.ledger.cancels)
        if not open_:
            return
        service_id = self.rng.choice(open_)
        try:
            answer = self.api.delete(f"/api/v1/services/{service_id}")
        except httpx.HTTPError:
            self.ledger.refused += 1
            return
        if answer.status_code == 202:
            self.ledger.cancels.add(service_id)
            self.ledger.note(f"cancel {service_id} acked")

    def bench(self) -> None:
        body = {"target": {"url": self.sim_url}, "workload": BENCH}
        accepted = self._post("/api/v1/benchmarks", body)
        if accepted is not None:
            self.ledger.benchmarks.add(accepted["benchmark_id"])
            self.ledger.note(f"benchmark {accepted['benchmark_id']} acked")

    def logs(self) -> None:
        """In a thread of its own: a CLI run takes seconds, the schedule must not wait."""
        if not self.ledger.deploys:
            return
        service_id = self.rng.choice(sorted(self.ledger.deploys))
        reader = threading.Thread(target=self._read_logs, args=(service_id,))
        reader.start()
        self.readers.append(reader)

    def _read_logs(self, service_id: str) -> None:
        try:
            out = self.stack.cli("services", "logs", service_id, "-n", "5", timeout=30)
        except subprocess.TimeoutExpired:
            self.ledger.note(f"logs {service_id}: no answer in 30 s")
            return
        if out.returncode == 0:
            self.ledger.logs_read += 1

    def kill(self, part: str) -> Callable[[], None]:
        def action() -> None:
            kill_part(self.stack, self.ledger, part)

        return action


def schedule(chaos: Chaos, parts: list[str]) -> list[tuple[float, str, Callable[[], None]]]:
    rng = chaos.rng
    steps: list[tuple[float, str, Callable[[], None]]] = []
    for count, name, action, (start, end) in (
        (6, "deploy", chaos.deploy, (0, 0.8)),
        (2, "resend", chaos.resend, (0, 0.8)),
        (3, "cancel", chaos.cancel, (0.4, 1)),  # once there is something to cancel
        (2, "bench", chaos.bench, (0, 0.8)),
        (3, "logs", chaos.logs, (0.2, 1)),
    ):
        window = (start * HORIZON_S, end * HORIZON_S)
        steps += [(rng.uniform(*window), name, action) for _ in range(count)]
    kills = parts + [rng.choice(parts) for _ in range(3)]  # each part at least once
    steps += [(rng.uniform(3, HORIZON_S - 5), f"kill {p}", chaos.kill(p)) for p in kills]
    return sorted(steps, key=lambda step: step[0])


def exercise(
    stack: UpStack, ledger: Ledger, sim_url: str, jobs_dir: Path
) -> dict[str, dict[str, object]]:
    """The schedule, then the checks; returns the settled registry."""
    found = read_parts(Path(stack.env["AIFACTORY_STATE_DIR"]))
    assert found is not None
    parts = [p.name for p in found.parts]
    chaos = Chaos(stack, ledger, random.Random(SEED), sim_url)
    started = time.monotonic()
    with HealthWatch(stack) as health:
        for at, name, action in schedule(chaos, parts):
            time.sleep(max(0.0, started + at - time.monotonic()))
            ledger.note(f"t={at:.1f}s {name}")
            action()
        healthy_after = health.healthy_after(ledger)
    for reader in chaos.readers:
        reader.join()
    records = settle(chaos.api, ledger)
    problems = violations(chaos.api, ledger, records, jobs_dir)
    if healthy_after > HEALTHY_WITHIN_S:
        problems.append(f"healthy {healthy_after:.1f}s after the last kill (> 10 s)")
    print(report(ledger, healthy_after, problems))
    assert not problems, report(ledger, healthy_after, problems)
    assert len(ledger.kills) >= len(parts) and ledger.deploys and ledger.benchmarks
    for service_id, record in records.items():  # clean up: the cluster's jobs outlive us
        if record["state"] in ("pending", "starting", "running"):
            chaos.api.delete(f"/api/v1/services/{service_id}")
    settle(chaos.api, ledger)
    return records


@pytest.mark.timeout(300)
def test_chaos_keeps_every_invariant(tmp_path: Path, jobs_dir: Path) -> None:
    slurm_up()
    print(f"chaos seed {SEED} (replay: AIFACTORY_CHAOS_SEED={SEED})")
    ledger = Ledger(seed=SEED)
    env = {
        "AIFACTORY_JOBS_DIR": str(jobs_dir),
        "AIFACTORY_RESTART_BACKOFF": "0.2",
        "AIFACTORY_RESTART_BACKOFF_MAX": "2",
        "AIFACTORY_SUBMIT_GRACE": "5",
        "AIFACTORY_COMMAND_ACK_WAIT": "3",
        "AIFACTORY_HEALTH_INTERVAL": "0.2",
    }
    up = aifactory_up(tmp_path, "--executor", "slurm", env_extra=env)
    stacks: list[UpStack] = []
    try:
        with SimulatorProcess("--ttft-ms", "2", "--itl-ms", "1") as sim, up as stack:
            stacks.append(stack)
            records = exercise(stack, ledger, sim.url, jobs_dir)
    except BaseException:
        for failed in stacks:  # what `aifactory up` printed: restarts, exit codes, log tails
            print(failed.output[-8000:])
        raise
    assert stack.returncode == 0, stack.output
    left = leftovers(tmp_path / "state", set(records) | ledger.attempted)
    assert not left, left
