"""Fixtures of the integration tests."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def jobs_dir() -> Iterator[Path]:
    """A job folder outside pytest's 0700 tmp tree: SLURM jobs run as root on the local
    cluster, and the shared-node tests' second user must be able to reach what it may."""
    path = Path(f"/tmp/aifactory-test-jobs-{os.getpid()}-{time.monotonic_ns()}")
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)
