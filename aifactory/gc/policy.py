"""Which ended folders a retention policy removes, and why each folder stays or goes.

Pure decisions over measured folders: no file system, no bus, so every rule is easy to
read and to test. Only ``ended`` folders are ever removed; a live, unknown or skipped one is
kept whatever the limits say, and an unknown one the limits would have removed says so (a
person can then look at it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from aifactory.gc.evidence import Evidence, FolderState
from aifactory.gc.scan import Usage
from aifactory.shared.settings import RetentionPolicy

DAY = 86400.0


class Action(StrEnum):
    REMOVE = "remove"
    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class Folder:
    """One entry of a root, what is known of it, and what the policy does with it."""

    name: str
    path: Path
    evidence: Evidence
    usage: Usage | None = None
    action: Action = Action.KEEP
    why: str = ""

    @property
    def bytes(self) -> int:
        return self.usage.bytes if self.usage else 0

    @property
    def last_activity(self) -> float:
        """The later of the last change on disk and the recorded end."""
        changed = self.usage.last_change if self.usage else 0.0
        return max(changed, self.evidence.ended_at or 0.0)


def age_text(seconds: float) -> str:
    if seconds >= 2 * DAY:
        return f"{seconds / DAY:.0f} d"
    if seconds >= 7200:
        return f"{seconds / 3600:.0f} h"
    return f"{max(seconds, 0) / 60:.0f} min"


def over_limits(folders: list[Folder], policy: RetentionPolicy, now: float) -> dict[str, str]:
    """Names of the folders the limits would remove (ended or not), with the limit that
    says so. Newest first for the count, oldest first while over the size."""
    chosen: dict[str, str] = {}
    newest_first = sorted(folders, key=lambda f: f.last_activity, reverse=True)
    if policy.max_age_days is not None:
        limit = policy.max_age_days * DAY
        for f in newest_first:
            if now - f.last_activity > limit:
                chosen[f.name] = (
                    f"untouched for {age_text(now - f.last_activity)} "
                    f"(limit {policy.max_age_days:g} d)"
                )
    remaining = [f for f in newest_first if f.name not in chosen]
    if policy.max_count is not None:
        for f in remaining[policy.max_count :]:
            chosen[f.name] = f"beyond the newest {policy.max_count} ended folders"
    return chosen


def decide(folders: list[Folder], policy: RetentionPolicy, now: float) -> list[Folder]:
    """Every folder with its action and the reason, in the order given."""
    ended = [f for f in folders if f.evidence.state is FolderState.ENDED]
    removing = over_limits(ended, policy, now)
    if policy.max_bytes is not None:
        total = sum(f.bytes for f in folders) - sum(f.bytes for f in ended if f.name in removing)
        oldest_first = sorted(ended, key=lambda f: f.last_activity)
        for f in oldest_first:
            if total <= policy.max_bytes:
                break
            if f.name not in removing:
                removing[f.name] = f"the folder holds more than {policy.max_bytes.human_readable()}"
                total -= f.bytes
    # What the limits would do to folders that are not known to have ended: said, not done.
    unknown = [f for f in folders if f.evidence.state is FolderState.UNKNOWN]
    would = over_limits(unknown, policy, now)
    out = []
    for f in folders:
        state = f.evidence.state
        if f.name in removing:
            out.append(replace(f, action=Action.REMOVE, why=removing[f.name]))
        elif state is FolderState.ENDED:
            out.append(replace(f, why="within the policy"))
        elif state is FolderState.UNKNOWN and f.name in would:
            out.append(replace(f, why=f"state unknown, would otherwise go: {would[f.name]}"))
        elif state is FolderState.UNKNOWN:
            out.append(replace(f, why="state unknown: kept"))
        elif state is FolderState.LIVE:
            out.append(replace(f, why="live: never removed"))
        else:
            out.append(f)  # skipped: its evidence says why
    return out
