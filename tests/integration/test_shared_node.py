"""Two real Unix users on one host, each with their own ``aifactory up``: nothing crosses.

User A is the test process (root); user B is a throw-away account created here. Both stacks
start with the single-user quickstart (no ports, no credentials given); then B tries what a
curious neighbour on a login node would: A's bus without credentials, A's ingress without
the token, A's credentials file and job folder. A's secrets must appear on no command line,
in no rendered script and in no file others can read.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aifactory.shared.credentials import load_credentials
from aifactory.shared.natsd import free_port
from aifactory.shared.stackfile import StackInfo, read_stack
from tests.conftest import need, need_tool
from tests.integration.server_stack import write_test_recipes

pytestmark = pytest.mark.nats

USER_B = "aifactory-b"
CLI = [sys.executable, "-m", "aifactory.cli.main"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def user_b() -> Iterator[pwd.struct_passwd]:
    need(os.getuid() == 0, "root, to create a throw-away second Unix user")
    need_tool("runuser")
    useradd = need_tool("useradd")
    created = False
    try:
        pwd.getpwnam(USER_B)
    except KeyError:
        subprocess.run([useradd, "--create-home", "--shell", "/bin/sh", USER_B], check=True)
        created = True
    restore = _let_others_traverse_to(Path(sys.executable).resolve())
    try:
        yield pwd.getpwnam(USER_B)
    finally:
        for path, mode in restore:
            path.chmod(mode)
        if created:
            subprocess.run([need_tool("userdel"), "--remove", USER_B], check=False)


def _let_others_traverse_to(target: Path) -> list[tuple[Path, int]]:
    """On a login node the interpreter lives in a shared software tree; here it may sit
    under root's 0700 home (pyenv). Grant traverse (x, not list) on the folders on the way
    for the test's duration, and say what to restore."""
    changed = []
    for folder in reversed(target.parents):
        mode = folder.stat().st_mode & 0o7777
        if not mode & 0o001:
            folder.chmod(mode | 0o001)
            changed.append((folder, mode))
    return changed


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder both users can traverse, like /home on a login node (0755)."""
    root = Path(f"/tmp/aifactory-two-users-{os.getpid()}-{time.monotonic_ns()}")
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def as_b(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as user B (no inherited secrets: a fresh, minimal environment)."""
    base = {"PATH": os.environ["PATH"], "HOME": f"/home/{USER_B}", "LANG": "C.UTF-8"}
    base["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [
            need_tool("runuser"),
            "-u",
            USER_B,
            "--",
            "env",
            "-i",
            *_env_args(base | (env or {})),
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _env_args(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]


@contextlib.contextmanager
def stack(state: Path, recipes: Path, *, user: str | None) -> Iterator[StackInfo]:
    """``aifactory up`` as a user would start it: only where its state and recipes are."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(state.parent),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
        "AIFACTORY_STATE_DIR": str(state),
        "AIFACTORY_RECIPES_DIR": str(recipes),
        "AIFACTORY_POLL_INTERVAL": "0.3",
    }
    prefix = [need_tool("runuser"), "-u", user, "--"] if user else []
    up = subprocess.Popen(
        [*prefix, "env", "-i", *_env_args(env), *CLI, "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 40
        info = None
        while time.monotonic() < deadline and info is None:
            assert up.poll() is None, up.stdout.read().decode() if up.stdout else ""
            info = _read_stack_as_root(state)
            time.sleep(0.2)
        assert info is not None, "no stack.json appeared"
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{info.ingress_url}/health", timeout=0.5).is_success:
                    break
            time.sleep(0.2)
        yield info
    finally:
        os.killpg(up.pid, signal.SIGINT)
        up.communicate(timeout=40)


def _read_stack_as_root(state: Path) -> StackInfo | None:
    path = state / "stack.json"
    try:
        return StackInfo.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def cmdlines() -> str:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                out.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
    return "\n".join(out)


def test_two_users_each_run_a_stack_and_neither_can_drive_the_other(
    user_b: pwd.struct_passwd, shared_tmp: Path
) -> None:
    a_home, b_home = shared_tmp / "a", shared_tmp / "b"
    a_home.mkdir(mode=0o755)
    b_home.mkdir(mode=0o755)
    os.chown(b_home, user_b.pw_uid, user_b.pw_gid)
    a_recipes = write_test_recipes(a_home / "recipes", port=free_port())
    b_recipes = shared_tmp / "b-recipes"
    shutil.copytree(a_recipes, b_recipes)
    a_env = {**os.environ, "AIFACTORY_STATE_DIR": str(a_home / "state")}
    a_env["AIFACTORY_RECIPES_DIR"] = str(a_recipes)
    for key in ("AIFACTORY_NATS_URL", "AIFACTORY_INGRESS_PORT", "AIFACTORY_API_TOKEN"):
        a_env.pop(key, None)

    with (
        stack(a_home / "state", a_recipes, user=None) as a,
        stack(b_home / "state", b_recipes, user=USER_B) as b,
    ):
        # Separate stacks on separate ports, found through each user's own stack.json.
        assert a.uid == 0 and b.uid == user_b.pw_uid
        assert {a.nats_url, a.ingress_url}.isdisjoint({b.nats_url, b.ingress_url})
        assert read_stack(a_home / "state") == a
        a_status = subprocess.run([*CLI, "status"], env=a_env, capture_output=True, text=True)
        assert a.ingress_url in a_status.stdout and b.ingress_url not in a_status.stdout
        b_status = as_b(*CLI, "status", env={"AIFACTORY_STATE_DIR": str(b_home / "state")})
        assert b.ingress_url in b_status.stdout, b_status.stderr
        assert a.ingress_url not in b_status.stdout

        # A deploys through its CLI (no credentials typed: they come from A's state dir).
        deploy = subprocess.run(
            [*CLI, "deploy", "inference/httpserver", "--wait", "--timeout", "40"],
            env=a_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        a_listing = subprocess.run(
            [*CLI, "services", "ls"], env=a_env, capture_output=True, text=True
        )
        assert "running" in a_listing.stdout
        b_listing = as_b(*CLI, "services", "ls", env={"AIFACTORY_STATE_DIR": str(b_home / "state")})
        assert "running" not in b_listing.stdout  # B's CLI sees B's (empty) stack only

        # B on A's bus without credentials: refused by the server, with a raw client.
        probe = (
            "import asyncio, nats\n"
            "async def main():\n"
            f"    nc = await nats.connect({a.nats_url!r}, connect_timeout=3,"
            " max_reconnect_attempts=0, allow_reconnect=False)\n"
            "    await nc.publish('deploy.requested', b'{}')\n"
            "    await nc.flush()\n"
            "    print('CONNECTED')\n"
            "asyncio.run(main())\n"
        )
        raw = as_b(sys.executable, "-c", probe)
        assert "CONNECTED" not in raw.stdout
        assert "Authorization Violation" in raw.stderr, raw.stderr[-2000:]

        # B on A's ingress without A's token: 401, and nothing was created.
        ask = (
            "import httpx\n"
            f"print(httpx.get({a.ingress_url + '/api/v1/services'!r}).status_code)\n"
            f"print(httpx.post({a.ingress_url + '/api/v1/services'!r},"
            " json={'recipe': 'inference/httpserver'}).status_code)\n"
        )
        answers = as_b(sys.executable, "-c", ask)
        assert answers.stdout.split() == ["401", "401"], answers.stderr[-2000:]

        # B cannot read A's credentials, stack file, job folder or job output.
        credentials = load_credentials(a_home / "state")
        assert credentials is not None
        jobs = a_home / "state" / "jobs"
        (job_dir,) = [p for p in jobs.iterdir() if p.is_dir()]
        for target in (
            a_home / "state" / "credentials.json",
            a_home / "state" / "stack.json",
            a_home / "state" / "nats" / "nats.conf",
        ):
            assert (target.stat().st_mode & 0o077) == 0, target
            denied = as_b("cat", str(target))
            assert denied.returncode != 0 and "Permission denied" in denied.stderr
        assert (a_home / "state").stat().st_mode & 0o777 == 0o700
        listing = as_b("ls", str(job_dir))
        assert listing.returncode != 0 and "Permission denied" in listing.stderr
        outputs = list(job_dir.glob("*.out")) + list(job_dir.glob("*.sh"))
        assert outputs and all(p.stat().st_mode & 0o077 == 0 for p in outputs), outputs

        # A's secrets are on no command line, in no script and in no public file.
        secrets = {
            credentials.nats_password.get_secret_value(),
            credentials.api_token.get_secret_value(),
        }
        procs = cmdlines()
        assert not any(s in procs for s in secrets)
        for path in (a_home / "state").rglob("*"):
            if path.is_file() and path.name not in {"credentials.json", "nats.conf"}:
                data = path.read_bytes()
                assert not any(s.encode() in data for s in secrets), path
        assert json.loads((a_home / "state" / "stack.json").read_text())["pid"] == a.pid
