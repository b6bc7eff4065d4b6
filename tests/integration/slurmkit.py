"""The local SLURM cluster for integration tests: is it up, and its queue."""

from __future__ import annotations

import shutil
import subprocess

from tests.conftest import need

__all__ = ["slurm_up", "squeue"]


def slurm_up() -> None:
    ok = shutil.which("sinfo") is not None
    if ok:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
        ok = out.returncode == 0 and any(
            s.startswith(("idle", "mix", "alloc")) for s in out.stdout.split()
        )
    need(ok, "a running SLURM cluster (sudo deploy/local-slurm/up.sh)")


def squeue(*args: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]
