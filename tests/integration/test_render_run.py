"""Rendered scripts run for real: replicas, multi-node Ray, containers, the simulator."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aifactory.shared.connection import (
    JobConnection,
    connection_path,
    endpoints,
    parse_connection,
)
from aifactory.shared.recipes import (
    list_recipes,
    load_recipe,
)
from aifactory.shared.recipes.schema import Recipe
from tests.conftest import need, need_tool
from tests.shellkit import (
    NATIVE,
    REPO,
    ROOT,
    render,
    run_bash,
    write,
)

pytestmark = pytest.mark.tools


# -- several processes: replicas and the Ray cluster -------------------------------------

FAKE_VLLM = """#!/bin/bash
port=""; prev=""
for arg in "$@"; do [[ $prev == --port ]] && port=$arg; prev=$arg; done
out=$AIF_CAPTURE/vllm-$port
printf '%s\\n' "${CUDA_VISIBLE_DEVICES-}" "$$" "${RAY_ADDRESS-}" "$*" > "$out.tmp"
mv "$out.tmp" "$out"
if [[ $port == "${AIF_FAIL_PORT-}" ]]; then
  # Fail only once every replica has started, so the test can check they were all stopped.
  for _ in {1..200}; do
    started=0
    for f in "$AIF_CAPTURE"/vllm-*; do [[ $f == *.tmp ]] || started=$((started + 1)); done
    (( started >= ${AIF_REPLICAS:-1} )) && break
    sleep 0.05
  done
  exit 3
fi
for _ in {1..200}; do [[ -e ${AIF_WAIT_FOR-/} ]] && break; sleep 0.05; done
[[ -n ${AIF_VLLM_EXIT-} ]] && exit "$AIF_VLLM_EXIT"
exec sleep 30
"""


def start_fakes(tmp: Path, **extra: str) -> tuple[Path, dict[str, str]]:
    capture = tmp / "capture"
    capture.mkdir()
    write(tmp / "bin" / "vllm", FAKE_VLLM, 0o755)
    for name, body in extra.items():
        write(tmp / "bin" / name, body, 0o755)
    env = {"PATH": f"{tmp / 'bin'}:{os.environ['PATH']}", "AIF_CAPTURE": str(capture)}
    return capture, env


def wait_for(paths: list[Path], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"not created in time: {paths}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_replicas_get_their_gpus_and_sigterm_stops_them_all(tmp_path: Path) -> None:
    capture, env = start_fakes(tmp_path)
    recipe = load_recipe("inference/vllm-replicas", ROOT, NATIVE)
    script = write(tmp_path / "job.sh", render(recipe, tmp_path / "work"))
    env |= {"HOME": str(tmp_path), "CUDA_VISIBLE_DEVICES": "3,5,6,7"}
    proc = subprocess.Popen(
        [need_tool("bash"), str(script)],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        files = [capture / f"vllm-{8000 + i}" for i in range(4)]
        wait_for(files)
        records = [f.read_text().splitlines() for f in files]
        assert [r[0] for r in records] == ["3", "5", "6", "7"]
        pids = [int(r[1]) for r in records]
        assert all(alive(p) for p in pids)
        proc.send_signal(signal.SIGTERM)  # only the batch shell, as scancel's first signal
        assert proc.wait(timeout=10) == 143
        assert b"stopping child processes" in proc.stderr.read()  # type: ignore[union-attr]
        assert not any(alive(p) for p in pids)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_failing_replica_ends_the_job(tmp_path: Path) -> None:
    capture, env = start_fakes(tmp_path)
    recipe = load_recipe("inference/vllm-replicas", ROOT, NATIVE)
    script = write(tmp_path / "job.sh", render(recipe, tmp_path / "work"))
    done = run_bash(
        script,
        tmp_path,
        env | {"CUDA_VISIBLE_DEVICES": "0,1,2,3", "AIF_FAIL_PORT": "8001", "AIF_REPLICAS": "4"},
    )
    assert done.returncode == 3
    assert b"a child process exited with status 3" in done.stderr
    pids = [int((capture / f"vllm-{p}").read_text().splitlines()[1]) for p in (8000, 8002)]
    assert not any(alive(p) for p in pids)


def test_replicas_refuse_too_few_gpus(tmp_path: Path) -> None:
    _, env = start_fakes(tmp_path)
    recipe = load_recipe("inference/vllm-replicas", ROOT, NATIVE)
    script = write(tmp_path / "job.sh", render(recipe, tmp_path / "work"))
    done = run_bash(script, tmp_path, env | {"CUDA_VISIBLE_DEVICES": "0,1"})
    assert done.returncode == 1 and b"4 GPUs needed" in done.stderr


FAKE_SCONTROL = """#!/bin/bash
[[ $1 == show && $2 == hostnames ]] && printf 'nodeA\\nnodeB\\n'
"""
FAKE_SRUN = """#!/bin/bash
printf '%s\\n' "$@" > "$AIF_CAPTURE/srun"
while [[ $# -gt 0 && $1 == -* ]]; do shift; done
exec "$@"
"""
FAKE_RAY = """#!/bin/bash
case $1 in
  status) exit 0 ;;
  start)
    role=worker; [[ " $* " == *" --head "* ]] && role=head
    printf '%s\\n' "$$" "$@" > "$AIF_CAPTURE/ray-$role"
    exec sleep 30 ;;
esac
exit 2
"""


def test_multinode_starts_ray_head_workers_then_vllm(tmp_path: Path) -> None:
    capture, env = start_fakes(tmp_path, scontrol=FAKE_SCONTROL, srun=FAKE_SRUN, ray=FAKE_RAY)
    recipe = load_recipe("inference/vllm-multinode", ROOT, NATIVE)
    script = write(tmp_path / "job.sh", render(recipe, tmp_path / "work"))
    env |= {"SLURM_JOB_NODELIST": "node[A-B]", "AIF_VLLM_EXIT": "0"}
    env["AIF_WAIT_FOR"] = str(capture / "ray-worker")  # vllm ends once the worker is up
    done = run_bash(script, tmp_path, env)
    assert done.returncode == 0, done.stderr.decode()
    head = (capture / "ray-head").read_text().splitlines()
    worker = (capture / "ray-worker").read_text().splitlines()
    assert head[1:] == ["start", "--head", "--port=6379", "--block"]
    assert worker[1:] == ["start", "--address=nodeA:6379", "--block"]
    srun = (capture / "srun").read_text().splitlines()
    assert srun[:6] == [
        "--nodes=1",
        "--ntasks=1",
        "--ntasks-per-node=1",
        "--cpus-per-task=64",
        "--gres=gpu:4",
        "--exclude=nodeA",
    ]
    vllm = (capture / "vllm-8000").read_text().splitlines()
    assert vllm[2] == "nodeA:6379"
    assert (
        "--tensor-parallel-size 4 --pipeline-parallel-size 2 --distributed-executor-backend ray"
        in vllm[3]
    )
    # vllm ended, so the job ended, and took the Ray processes with it
    assert not alive(int(head[0])) and not alive(int(worker[0]))


def test_multinode_outside_slurm_says_so(tmp_path: Path) -> None:
    _, env = start_fakes(tmp_path)
    recipe = load_recipe("inference/vllm-multinode", ROOT, NATIVE)
    script = write(tmp_path / "job.sh", render(recipe, tmp_path / "work"))
    done = run_bash(script, tmp_path, env)
    assert done.returncode == 1 and b"SLURM_JOB_NODELIST is unset" in done.stderr


# -- container definitions ---------------------------------------------------------------


def def_sections(text: str) -> dict[str, str]:
    parts = re.split(r"^%(\w+)\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


@pytest.mark.parametrize("name", ["vllm", "ollama", "qdrant"])
def test_container_definitions(name: str, tmp_path: Path) -> None:
    text = (REPO / "containers" / f"{name}.def").read_text()
    header = dict(
        line.split(":", 1)
        for line in text.split("%", 1)[0].splitlines()
        if ":" in line and not line.startswith("#")
    )
    assert header["Bootstrap"].strip() == "docker"
    sections = def_sections(text)
    assert {"labels", "help", "runscript"} <= set(sections)
    users = [
        r
        for r in list_recipes(ROOT)
        if load_recipe(r.ref, ROOT).container_def == f"containers/{name}.def"
    ]
    assert users, f"no recipe references containers/{name}.def"
    for ref in users:
        assert load_recipe(ref.ref, ROOT).image == "docker://" + header["From"].strip()
    runscript = write(tmp_path / "runscript.sh", "#!/bin/sh\n" + sections["runscript"])
    for cmd in (["sh", "-n"], [need_tool("shellcheck"), "--shell=sh", "--severity=style"]):
        done = subprocess.run([*cmd, str(runscript)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


# -- the simulator recipe, end to end ----------------------------------------------------


def simulator_cli() -> str | None:
    """The ``aifactory`` console script if its ``simulate`` command works (built elsewhere)."""
    exe = Path(sys.executable).with_name("aifactory")
    if not exe.exists():
        return None
    probe = subprocess.run(
        [str(exe), "simulate", "--help"], capture_output=True, timeout=60, check=False
    )
    return str(exe) if probe.returncode == 0 else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_job(script: Path, cwd: Path, exe: str) -> subprocess.Popen[bytes]:
    env = {"PATH": f"{Path(exe).parent}:{os.environ['PATH']}", "HOME": str(cwd)}
    return subprocess.Popen(
        [need_tool("bash"), str(script)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_healthy(recipe: Recipe, workdir: Path, proc: subprocess.Popen[bytes]) -> JobConnection:
    """The job's connection file, once the server it names answers its health path."""
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, "the job exited early"
        assert time.monotonic() < deadline, "the job never became healthy"
        try:
            connection = parse_connection(connection_path(workdir).read_text())
            [endpoint] = endpoints(connection, lambda node: "127.0.0.1")
            if httpx.get(recipe.health_url(endpoint), timeout=1).status_code == 200:
                return connection
        except (FileNotFoundError, httpx.TransportError):
            pass
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_simulator_recipe_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    exe = simulator_cli()
    need(exe is not None, "the `aifactory simulate` command in this environment")
    assert exe is not None
    port = free_port()
    recipe = load_recipe("inference/simulator", ROOT, {"ports": {"http": port}})
    script = write(tmp_path / "job.sh", render(recipe, tmp_path / "work"))
    proc = _start_job(script, tmp_path, exe)
    try:
        connection = _wait_healthy(recipe, tmp_path / "work", proc)
        assert connection.ports == {"http": port}  # the wanted port, free, is the one used
        assert connection.pid == proc.pid and connection.job_id == "local"
        # `exec`: the job's own pid is now the server, so scancel's SIGTERM reaches it.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"simulate" in cmdline
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        _stop(proc)


def test_three_jobs_wanting_one_port_start_together_on_three(tmp_path: Path) -> None:
    exe = simulator_cli()
    need(exe is not None, "the `aifactory simulate` command in this environment")
    assert exe is not None
    port = free_port()
    recipe = load_recipe("inference/simulator", ROOT, {"ports": {"http": port}})
    procs = []
    try:
        for i in range(3):
            script = write(tmp_path / f"job{i}.sh", render(recipe, tmp_path / f"work{i}"))
            procs.append(_start_job(script, tmp_path, exe))
        chosen = [
            _wait_healthy(recipe, tmp_path / f"work{i}", proc).ports["http"]
            for i, proc in enumerate(procs)
        ]
        assert len(set(chosen)) == 3 and port in chosen, chosen
        assert all(port <= c < port + 1000 for c in chosen)
    finally:
        for proc in procs:
            _stop(proc)
