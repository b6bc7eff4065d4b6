"""Rendered scripts against the real shell: bash -n, shellcheck, and actually running them.

Hostile values are proven inert by executing the rendered code in bash and checking that
the variable or argument arrives byte for byte and that no side effect happened. Programs
that cannot run here (apptainer, vllm, ray, srun, scontrol: no GPUs, no images, no
multi-node SLURM) are replaced on PATH by small scripts that record how they were called;
the batch script itself always runs for real.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from aifactory.shared.recipes import (
    RecipeError,
    deep_merge,
    list_recipes,
    load_recipe,
    parse_set_options,
)
from aifactory.shared.recipes.schema import Recipe
from aifactory.shared.render import ENV_BEGIN, ENV_END, render_script
from tests.conftest import need_tool

pytestmark = pytest.mark.tools

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "recipes"
NATIVE = {"runtime": "native", "image": None}

#: Each one would run `touch TMP/pwnedN` if it ever reached the shell unquoted.
HOSTILE = [
    "it's",
    'say "hi"',
    "$(touch TMP/pwned1)",
    "`touch TMP/pwned2`",
    "a; touch TMP/pwned3",
    "a && touch TMP/pwned4",
    "'; touch TMP/pwned5; '",
    '"; touch TMP/pwned6; "',
    "line1\ntouch TMP/pwned7\n",
    "trailing backslash \\",
    "$HOME ${PATH} $((1+1)) !! * ~",
    "| touch TMP/pwned8 > x",
    f"\n{ENV_END}\ntouch TMP/pwned9\n",
    "ünïcödé ☃\ttab",
    '{"json": {"nested": 1}}',
    "-n",
    "",
]


def hostile(tmp: Path) -> list[str]:
    return [h.replace("TMP", str(tmp)) for h in HOSTILE]


def assert_no_side_effects(tmp: Path) -> None:
    assert not list(tmp.rglob("pwned*")), "a hostile value was executed"


def render(recipe: Recipe, workdir: Path, **kwargs: Any) -> str:
    return render_script(
        recipe, job_name="svc-test", workdir=workdir, service_id="svc-test", **kwargs
    )


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def run_bash(
    script: Path, tmp: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp), "LANG": "C.UTF-8"}
    return subprocess.run(
        [need_tool("bash"), str(script)],
        cwd=tmp,
        env=base | (env or {}),
        capture_output=True,
        timeout=30,
        check=False,
    )


# -- static checks over every shipped recipe and some overrides --------------------------

VARIANTS: list[tuple[str, dict[str, Any]]] = [(r.ref, {}) for r in list_recipes(ROOT)] + [
    ("inference/vllm-single-node", {"resources": {"gpu": 4}}),
    ("inference/vllm-single-node", {"resources": {"gpu": 0}, **NATIVE}),
    ("inference/vllm-replicas", {"resources": {"gpu": 8}, "replicas": {"gpu_per_replica": 2}}),
    ("inference/vllm-replicas", NATIVE),
    ("inference/vllm-multinode", {"resources": {"nodes": 4, "gpu_type": "a100"}}),
    ("inference/vllm-multinode", NATIVE),
    ("inference/ollama", {"resources": {"gpu": 0}, "secrets_env": ["OLLAMA_KEY"]}),
    ("vector-db/qdrant", {"resources": {"account": "p200", "qos": "short", "gpu": 2}}),
    ("vector-db/chroma", {"resources": {"time_limit": "2-00:00:00", "memory": "0"}}),
]


@pytest.mark.parametrize(("ref", "overrides"), VARIANTS, ids=lambda v: str(v)[:60])
def test_rendered_script_passes_bash_n_and_shellcheck(
    ref: str, overrides: dict[str, Any], tmp_path: Path
) -> None:
    bash, shellcheck = need_tool("bash"), need_tool("shellcheck")
    script = write(
        tmp_path / "job.sh", render(load_recipe(ref, ROOT, overrides), tmp_path / "work")
    )
    syntax = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run(
        [shellcheck, "--severity=style", "--shell=bash", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout


# -- hostile environment values ----------------------------------------------------------


def env_section(script: str) -> str:
    """The export lines between the markers. The real end marker is the last one: a value
    may contain the marker text, but always before the real one."""
    start = script.index(ENV_BEGIN)
    end = script.rindex(ENV_END)
    return script[start:end]


def printenv_after(section: str, tmp: Path) -> dict[str, str]:
    runner = write(tmp / "env.sh", section + "\nenv -0\n")
    done = run_bash(runner, tmp)
    assert done.returncode == 0, done.stderr.decode()
    pairs = [item.split("=", 1) for item in done.stdout.decode().split("\0") if item]
    return dict(pairs)


def test_hostile_env_values_from_a_recipe_file_are_inert(tmp_path: Path) -> None:
    values = hostile(tmp_path)
    data = yaml.safe_load((ROOT / "inference" / "simulator.yaml").read_text())
    data["environment"] = {f"H{i}": v for i, v in enumerate(values)}
    root = tmp_path / "recipes"
    write(root / "inference" / "simulator.yaml", yaml.safe_dump(data, allow_unicode=True))
    recipe = load_recipe("inference/simulator", root)
    env = printenv_after(env_section(render(recipe, tmp_path / "w")), tmp_path)
    for i, value in enumerate(values):
        assert env[f"H{i}"] == value
    assert env["AIFACTORY_SERVICE_ID"] == "svc-test"
    assert_no_side_effects(tmp_path)


def test_hostile_env_values_from_overrides_and_extra_env_are_inert(tmp_path: Path) -> None:
    values = hostile(tmp_path)
    set_options = [
        f"environment.S1=$(touch {tmp_path}/pwned10)",
        f"environment.S2='`touch {tmp_path}/pwned11`'",
        f"environment.S3=a;touch {tmp_path}/pwned12&&b",
    ]
    overrides = deep_merge(
        parse_set_options(set_options),
        {"environment": {f"O{i}": v for i, v in enumerate(values)}},
    )
    with pytest.raises(RecipeError, match="cannot start any token"):
        parse_set_options([f"environment.S2=`touch {tmp_path}/pwned11`"])
    recipe = load_recipe("inference/simulator", ROOT, overrides)
    extra = {f"E{i}": v for i, v in enumerate(values)}
    env = printenv_after(env_section(render(recipe, tmp_path / "w", extra_env=extra)), tmp_path)
    assert env["S1"] == f"$(touch {tmp_path}/pwned10)"
    assert env["S2"] == f"`touch {tmp_path}/pwned11`"
    assert env["S3"] == f"a;touch {tmp_path}/pwned12&&b"
    for i, value in enumerate(values):
        assert env[f"O{i}"] == value and env[f"E{i}"] == value
    assert_no_side_effects(tmp_path)


# -- whole scripts, run for real ---------------------------------------------------------


def test_hostile_command_args_survive_the_whole_native_script(tmp_path: Path) -> None:
    values = hostile(tmp_path)
    overrides = {
        "command": ["printf", "%s\\0"],
        "extra_args": values,
        "environment": {"X": values[2]},
    }
    recipe = load_recipe("inference/simulator", ROOT, overrides)
    workdir = tmp_path / "work"
    script = write(tmp_path / "job.sh", render(recipe, workdir))
    done = run_bash(script, tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    marker = b"aifactory: starting simulator replica 0 on port 8000\n"
    assert done.stdout.startswith(b"aifactory: job local of service svc-test")
    argv = done.stdout.split(marker, 1)[1].decode().split("\0")
    assert argv == [*values, ""]
    assert workdir.is_dir()
    assert_no_side_effects(tmp_path)


FAKE_APPTAINER = """#!/bin/bash
printf '%s\\0' "$@" > "$AIF_CAPTURE/apptainer.argv"
printf '%s' "${HF_TOKEN-<unset>}" > "$AIF_CAPTURE/apptainer.hf_token"
"""


def test_apptainer_invocation_with_gpus_and_inherited_secret(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    capture.mkdir()
    write(tmp_path / "bin" / "apptainer", FAKE_APPTAINER, 0o755)
    values = hostile(tmp_path)
    overrides = deep_merge(parse_set_options(["resources.gpu=4"]), {"extra_args": values})
    recipe = load_recipe("inference/vllm-single-node", ROOT, overrides)
    text = render(recipe, tmp_path / "work")
    assert "#SBATCH --gres=gpu:4" in text
    script = write(tmp_path / "job.sh", text)
    path = f"{tmp_path / 'bin'}:{os.environ['PATH']}"
    env = {"PATH": path, "AIF_CAPTURE": str(capture), "HF_TOKEN": "hf_secret_value"}
    done = run_bash(script, tmp_path, env)
    assert done.returncode == 0, done.stderr.decode()
    argv = (capture / "apptainer.argv").read_bytes().decode().split("\0")[:-1]
    assert argv == [
        "exec",
        "--nv",
        "docker://vllm/vllm-openai:v0.6.3",
        "vllm",
        "serve",
        "facebook/opt-125m",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--tensor-parallel-size",
        "1",
        "--pipeline-parallel-size",
        "1",
        *values,
    ]
    assert (capture / "apptainer.hf_token").read_text() == "hf_secret_value"
    assert "hf_secret_value" not in text and b"not set" not in done.stderr
    assert_no_side_effects(tmp_path)

    env.pop("HF_TOKEN")
    done = run_bash(script, tmp_path, env)
    assert b"secret HF_TOKEN is not set in the submit environment" in done.stderr


def test_missing_apptainer_is_reported(tmp_path: Path) -> None:
    script = write(tmp_path / "job.sh", render(load_recipe("vector-db/qdrant", ROOT), tmp_path))
    done = run_bash(script, tmp_path, {"PATH": "/usr/bin:/bin"})
    if b"apptainer not found" not in done.stderr:
        pytest.skip("apptainer is installed here")
    assert done.returncode == 127


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


def test_simulator_recipe_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    exe = simulator_cli()
    if exe is None:
        pytest.skip("the `aifactory simulate` command is not available in this checkout yet")
    port = free_port()
    recipe = load_recipe("inference/simulator", ROOT, {"ports": {"http": port}})
    script = write(tmp_path / "job.sh", render(recipe, tmp_path / "work"))
    env = {"PATH": f"{Path(exe).parent}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [need_tool("bash"), str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        [endpoint] = recipe.endpoints(["127.0.0.1"])
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "the simulator job exited early"
            try:
                if httpx.get(recipe.health_url(endpoint), timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the simulator never became healthy"
            time.sleep(0.2)
        # `exec`: the job's own pid is now the server, so scancel's SIGTERM reaches it.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"simulate" in cmdline
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
