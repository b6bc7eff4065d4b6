"""Plan and apply retention: the one entry point of ``aifactory gc`` and the server.

``plan`` measures every folder of a root, asks the registries (already read) and the
scheduler (one ``states`` call for every job id found) and decides; it changes nothing.
``apply`` removes what a plan says, folder by folder, each one checked again on the way
(directly inside the root, a real directory, not a link).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from aifactory.gc import evidence
from aifactory.gc.evidence import Evidence, FolderState, Registries, Scheduler
from aifactory.gc.policy import Action, Folder, decide
from aifactory.gc.scan import checked_root, child, folders, job_ids, remove_folder, usage
from aifactory.shared.executors.base import Executor
from aifactory.shared.settings import RetentionPolicy, Settings

log = logging.getLogger(__name__)


class Kind(StrEnum):
    """The two roots gc looks after."""

    JOBS = "jobs"
    BENCHMARKS = "benchmarks"


@dataclass
class Plan:
    kind: Kind
    root: Path
    policy: RetentionPolicy
    folders: list[Folder] = field(default_factory=list)
    #: Why some evidence was missing (registry or scheduler unreachable), for the user.
    notes: list[str] = field(default_factory=list)

    @property
    def removals(self) -> list[Folder]:
        return [f for f in self.folders if f.action is Action.REMOVE]

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.folders)

    @property
    def bytes_to_free(self) -> int:
        return sum(f.bytes for f in self.removals)


@dataclass
class Outcome:
    removed: list[Folder] = field(default_factory=list)
    failed: list[tuple[Folder, str]] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(f.bytes for f in self.removed)


def root_of(kind: Kind, settings: Settings) -> Path:
    return settings.effective_jobs_dir if kind is Kind.JOBS else settings.effective_benchmarks_dir


def policy_of(kind: Kind, settings: Settings) -> RetentionPolicy:
    retention = settings.retention
    return retention.jobs if kind is Kind.JOBS else retention.benchmarks


def _measure(kind: Kind, root: Path) -> tuple[list[Folder], dict[str, list[str]]]:
    """Every entry of the root; a job folder's job ids beside (blocking: run in a thread)."""
    found: list[Folder] = []
    ids: dict[str, list[str]] = {}
    for entry in folders(root):
        path = child(root, entry.name)
        if entry.is_symlink():
            why = "a symbolic link: never followed, never removed"
            found.append(Folder(entry.name, path, Evidence(FolderState.SKIPPED, why)))
            continue
        if not entry.is_dir(follow_symlinks=False):
            why = "not a folder"
            found.append(Folder(entry.name, path, Evidence(FolderState.SKIPPED, why)))
            continue
        try:
            measured = usage(path)
            if kind is Kind.JOBS:
                ids[entry.name] = job_ids(path)[1]
        except OSError as exc:
            why = f"cannot be read entirely ({exc.strerror or exc}): left alone"
            found.append(Folder(entry.name, path, Evidence(FolderState.SKIPPED, why)))
            continue
        pending = Evidence(FolderState.UNKNOWN, "not judged yet")
        found.append(Folder(entry.name, path, pending, usage=measured))
    return found, ids


async def plan(
    kind: Kind,
    root: Path,
    policy: RetentionPolicy,
    *,
    registries: Registries,
    executor: Executor | None,
    now: float | None = None,
) -> Plan:
    """What the policy removes under ``root`` and why each folder stays or goes."""
    root = checked_root(root)
    result = Plan(kind=kind, root=root, policy=policy)
    if registries.error:
        result.notes.append(f"registry unavailable: {registries.error}")
    if not root.is_dir():
        result.notes.append(f"{root} does not exist yet: nothing to collect")
        return result
    found, ids = await asyncio.to_thread(_measure, kind, root)
    scheduler = Scheduler()
    if kind is Kind.JOBS:
        scheduler = await Scheduler.ask(executor, evidence.all_ids(ids, registries))
        if scheduler.error:
            result.notes.append(scheduler.error)
    judged = []
    for f in found:
        if f.evidence.state is FolderState.SKIPPED:
            judged.append(f)
        elif kind is Kind.JOBS:
            seen = evidence.job_folder(f.name, ids.get(f.name, []), registries, scheduler)
            judged.append(Folder(f.name, f.path, seen, usage=f.usage))
        else:
            seen = evidence.results_folder(f.name, f.path, registries)
            judged.append(Folder(f.name, f.path, seen, usage=f.usage))
    result.folders = decide(judged, policy, time.time() if now is None else now)
    return result


def _remove_all(plan: Plan) -> Outcome:
    outcome = Outcome()
    for folder in plan.removals:
        try:
            remove_folder(plan.root, folder.path)
        except (OSError, ValueError) as exc:
            log.warning("gc: could not remove %s: %s", folder.path, exc)
            outcome.failed.append((folder, str(exc)))
            continue
        log.info("gc: removed %s (%s; %s)", folder.path, folder.evidence.reason, folder.why)
        outcome.removed.append(folder)
    return outcome


async def apply(plan: Plan) -> Outcome:
    """Remove what ``plan`` says; a folder that cannot be removed is reported, not fatal."""
    return await asyncio.to_thread(_remove_all, plan)
