"""Helpers for tests that run rendered batch scripts in a real bash."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from aifactory.shared.recipes.schema import Recipe
from aifactory.shared.render import ENV_END, render_script
from tests.conftest import need_tool

REPO = Path(__file__).resolve().parents[1]
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


def render(recipe: Recipe, workdir: Path, *, job_name: str = "svc-test", **kwargs: Any) -> str:
    return render_script(
        recipe, job_name=job_name, workdir=workdir, service_id="svc-test", **kwargs
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
