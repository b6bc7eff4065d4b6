"""The site's SIF cache: container images pulled once (on the login node), keyed by digest.

``aifactory recipes prepare`` pulls a recipe's ``docker://`` image into
``<cache>/apptainer/sif/sha256-<digest>.sif`` and records it in ``images.json``; from then on
jobs run the SIF file (compute nodes need no registry access, and every job of the recipe
runs the very same bytes), and an experiment's provenance names the digest it ran.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from pydantic import Field, ValidationError

from aifactory.shared.messages.base import utcnow
from aifactory.shared.strict import StrictModel

INDEX = "images.json"


class CachedImage(StrictModel):
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="sha256 of the SIF file.")
    path: Path = Field(description="The SIF file jobs run.")
    pulled: datetime = Field(default_factory=utcnow)


class ImageIndex(StrictModel):
    images: dict[str, CachedImage] = Field(default_factory=dict)


class ImageCacheError(RuntimeError):
    """The cache index cannot be read or written; the message names the file."""


def sif_dir(cache_dir: Path) -> Path:
    return cache_dir / "apptainer" / "sif"


def index_path(cache_dir: Path) -> Path:
    return cache_dir / "apptainer" / INDEX


def read_index(cache_dir: Path) -> ImageIndex:
    path = index_path(cache_dir)
    try:
        return ImageIndex.model_validate_json(path.read_text())
    except FileNotFoundError:
        return ImageIndex()
    except (OSError, ValidationError) as exc:
        raise ImageCacheError(f"{path}: {exc}") from exc


def cached(cache_dir: Path, image: str) -> CachedImage | None:
    """The cached SIF of ``image`` if it was prepared and the file is still there."""
    entry = read_index(cache_dir).images.get(image)
    return entry if entry is not None and entry.path.is_file() else None


@contextmanager
def locked_index(cache_dir: Path) -> Iterator[ImageIndex]:
    """The index under an exclusive lock (two prepares at once keep both entries)."""
    path = index_path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / ".images.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = read_index(cache_dir)
        yield index
        tmp = path.with_name(f".{INDEX}.{os.getpid()}.tmp")
        tmp.write_text(index.model_dump_json(indent=2))
        os.replace(tmp, path)


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return f"sha256:{sha.hexdigest()}"
