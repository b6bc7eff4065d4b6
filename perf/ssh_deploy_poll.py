"""SSH executor costs: deploy → job.submitted over SSH, and a poll of 200 jobs.

Usage::

    .venv/bin/python perf/ssh_deploy_poll.py [--n 20] [--jobs 200] [--rounds 10]

"The login node" is this machine through a throw-away sshd on loopback
(``deploy/local-sshd``); SLURM is the real local cluster. Each measured path is run
once per iteration, in turn, so a neighbour's load hits all of them alike:

- ``bare ssh … sbatch``: OpenSSH, a new login per submission (what a script would do);
- ``sbatch over the open connection``: ``asyncssh`` ``run()`` on an already open
  connection, the floor of any persistent-connection design (remote shell + sbatch);
- ``executor.submit()``: the ``slurm+ssh`` executor alone (SFTP upload of the script,
  then sbatch), no bus;
- ``deploy → job.submitted``: the real server (``executor=slurm+ssh``) from the published
  command to the event, as ``perf/server_deploy_latency.py`` measures it.

The poll: ``--jobs`` held jobs (``#SBATCH --hold``: they never run), then ``--rounds``
calls of ``executor.states(ids)``, counting remote execs per poll; baselines: the same
``squeue`` over the open connection and run locally. Everything started is stopped: jobs
are cancelled by id, the server, nats-server and sshd stop, the temporary folder goes.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ServerProcess, Summary, load_warning, slurm_available, table_header
from _jobs import cancel_all, registry_job_ids, wait_terminal
from _sshd import Sshd
from server_deploy_latency import (
    DRAIN_TIMEOUT,
    QUICK_RECIPE,
    TRIVIAL_SCRIPT,
    DeployBench,
    PhaseResult,
    Run,
)

from aifactory.shared.executors.slurm_ssh import SlurmSshExecutor
from aifactory.shared.executors.slurm_states import SQUEUE_FORMAT
from aifactory.shared.executors.ssh_connection import SshConnection
from aifactory.shared.natsd import EmbeddedNats

WIDTH = 44


def sbatch_args(name: str, folder: Path, script: Path) -> list[str]:
    return ["sbatch", "--parsable", f"--job-name={name}", f"--output={folder}/%x-%j.out",
            f"--chdir={folder}", str(script)]  # fmt: skip


def job_id(stdout: str) -> str:
    return stdout.strip().splitlines()[-1].split(";")[0]


async def deploy_phase(
    tmp: Path, sshd: Sshd, n: int
) -> tuple[dict[str, list[float]], list[PhaseResult]]:
    run = Run("slurm+ssh")
    (tmp / "recipes" / "inference").mkdir(parents=True)
    (tmp / "recipes" / "inference" / "quick.yaml").write_text(QUICK_RECIPE)
    nats = EmbeddedNats(tmp / "nats").start()
    env = {**sshd.env, "AIFACTORY_JOBS_DIR": str(tmp / "jobs")}
    server = ServerProcess(tmp, nats.url, executor="slurm+ssh", env=env)
    executor = SlurmSshExecutor(SshConnection(sshd.settings()))
    bench = DeployBench(run, tmp, server, executor)
    bare = tmp / "bare"
    bare.mkdir()
    script = bare / "bare.sh"
    script.write_text(TRIVIAL_SCRIPT)
    script.chmod(0o700)
    rows: dict[str, list[float]] = {k: [] for k in ("bare", "conn", "submit", "deploy")}
    try:
        server.start()
        await bench.connect()
        await bench.warm_up()
        for i in range(n):
            started = time.perf_counter()
            out = subprocess.run(
                [*sshd.ssh_argv(), *sbatch_args(f"aifb-bare{i}", bare, script)],
                capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            rows["bare"].append(time.perf_counter() - started)
            run.baseline_jobs.append(job_id(out.stdout))

            started = time.perf_counter()
            rc, stdout, stderr = await executor.ssh.run(sbatch_args(f"aifb-conn{i}", bare, script))
            rows["conn"].append(time.perf_counter() - started)
            assert rc == 0, stderr
            run.baseline_jobs.append(job_id(stdout))

            rows["submit"].append(await bench.submit("ex", i))
            rows["deploy"].append(await bench.deploy("srv", i))
        await bench.segments(run.service_ids)
        await bench.drain(run.service_ids)
        await wait_terminal(executor, list(run.baseline_jobs), DRAIN_TIMEOUT)
    finally:
        try:
            await bench.close()
            server.stop()
            await cancel_all(executor, run.baseline_jobs)
            await cancel_all(executor, await registry_job_ids(nats.url, run.service_ids))
        finally:
            await executor.close()
            server.stop()
            nats.stop()
    return rows, run.results


async def poll_phase(tmp: Path, sshd: Sshd, jobs: int, rounds: int) -> dict[str, list[float]]:
    folder = tmp / "held"
    folder.mkdir()
    script = folder / "held.sh"
    script.write_text("#!/bin/bash\n#SBATCH -c 1\n#SBATCH --hold\ntrue\n")
    ids: list[str] = []
    executor = SlurmSshExecutor(SshConnection(sshd.settings()))
    rows: dict[str, list[float]] = {k: [] for k in ("states", "conn", "local")}
    execs: list[int] = []
    try:
        for i in range(jobs):
            out = subprocess.run(
                sbatch_args(f"aifb-held{i}", folder, script),
                capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
            ids.append(job_id(out.stdout))
        await executor.states(ids[:1])  # the login is not part of a poll
        user = executor.ssh.username
        squeue = ["squeue", "--noheader", "--states=all", f"--user={user}", "-O", SQUEUE_FORMAT]
        for _ in range(rounds):
            before = executor.ssh.execs
            started = time.perf_counter()
            statuses = await executor.states(ids)
            rows["states"].append(time.perf_counter() - started)
            execs.append(executor.ssh.execs - before)
            assert len(statuses) == len(ids)

            started = time.perf_counter()
            await executor.ssh.run(squeue)
            rows["conn"].append(time.perf_counter() - started)

            started = time.perf_counter()
            subprocess.run(squeue, capture_output=True, timeout=30, check=True)
            rows["local"].append(time.perf_counter() - started)
    finally:
        for start in range(0, len(ids), 100):
            subprocess.run(["scancel", *ids[start : start + 100]], capture_output=True, timeout=60)
        await executor.close()
    print(f"remote execs per poll of {len(ids)} jobs: {sorted(set(execs))}")
    return rows


def report(
    deploy: dict[str, list[float]],
    segments: list[PhaseResult],
    poll: dict[str, list[float]],
    jobs: int,
) -> None:
    labels = {
        "bare": "bare `ssh host sbatch` (new login)",
        "conn": "sbatch over the open connection",
        "submit": "executor.submit() (SFTP + sbatch)",
        "deploy": "deploy.requested → job.submitted",
    }
    print("\n== submission over SSH (sequential) ==")
    print(table_header(WIDTH))
    p50 = {}
    for key, label in labels.items():
        summary = Summary.of(deploy[key])
        p50[key] = summary.p50
        print(summary.row(label, WIDTH))
    for label, ours, base in (
        ("deploy overhead p50 vs bare ssh sbatch", "deploy", "bare"),
        ("deploy overhead p50 vs sbatch on the open connection", "deploy", "conn"),
        ("  executor.submit() p50 vs sbatch on the open connection", "submit", "conn"),
    ):
        print(f"{label}: {(p50[ours] - p50[base]) * 1000:+.1f} ms")
    for result in segments:
        print(Summary.of(result.seconds).row(result.label, WIDTH))
    print(f"\n== a poll of {jobs} jobs ==")
    print(table_header(WIDTH))
    for key, label in (("states", "executor.states() over ssh"),
                       ("conn", "the same squeue over the open connection"),
                       ("local", "the same squeue run locally")):  # fmt: skip
        print(Summary.of(poll[key]).row(label, WIDTH))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if not (1 <= args.n <= 200 and 1 <= args.jobs <= 1000 and 1 <= args.rounds <= 100):
        parser.error("keep --n in 1..200, --jobs in 1..1000, --rounds in 1..100")
    if not slurm_available():
        sys.exit("sinfo does not answer: start SLURM with deploy/local-slurm/up.sh")
    warning = load_warning()
    if warning:
        print(f"warning: {warning}")
    tmp = Path(tempfile.mkdtemp(prefix="aif-bench-ssh-"))
    sshd = Sshd(tmp / "sshd").start()
    try:
        deploy, segments = asyncio.run(deploy_phase(tmp, sshd, args.n))
        poll = asyncio.run(poll_phase(tmp, sshd, args.jobs, args.rounds))
    finally:
        sshd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report(deploy, segments, poll, args.jobs)


if __name__ == "__main__":
    main()
