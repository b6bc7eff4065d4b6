"""Pick the executor the settings ask for, so services never branch on the executor kind."""

from __future__ import annotations

from aifactory.shared.executors.base import Executor
from aifactory.shared.executors.local import LocalExecutor
from aifactory.shared.executors.slurm import SlurmExecutor
from aifactory.shared.settings import ExecutorKind, Settings


def make_executor(settings: Settings) -> Executor:
    """``local`` keeps its job records under ``state_dir/local-executor``; ``slurm`` finds
    its commands in ``settings.slurm.bin_dir`` first, then on PATH."""
    if settings.executor is ExecutorKind.LOCAL:
        return LocalExecutor(settings.state_dir / "local-executor")
    if settings.executor is ExecutorKind.SLURM:
        return SlurmExecutor(settings.slurm.bin_dir)
    raise ValueError(  # pragma: no cover - exhaustive over ExecutorKind
        f"unknown executor {settings.executor!r}: use one of {[k.value for k in ExecutorKind]}"
    )
