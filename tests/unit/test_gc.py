"""Retention decisions (pure) and the file side of gc, on real files in a temporary folder."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ByteSize, ValidationError

from aifactory.cli.gc import effective_policy, parse_days
from aifactory.gc.evidence import (
    Evidence,
    FolderState,
    Registries,
    Scheduler,
    job_folder,
    results_folder,
)
from aifactory.gc.policy import DAY, Action, Folder, decide
from aifactory.gc.scan import RefusedPath, Usage, checked_root, job_ids, remove_folder, usage
from aifactory.shared.executors.base import JobStatus
from aifactory.shared.registry import BenchmarkRecord, ServiceRecord
from aifactory.shared.settings import JobsRetention, RetentionPolicy, Settings
from aifactory.shared.states import BenchState, JobState, ServiceState
from aifactory.shared.workload import Workload

NOW = 1_800_000_000.0


def folder(
    name: str, age_days: float, size: int = 100, state: FolderState = FolderState.ENDED
) -> Folder:
    usage = Usage(bytes=size, files=1, last_change=NOW - age_days * DAY)
    return Folder(name, Path("/jobs") / name, Evidence(state, f"test: {state.value}"), usage)


def actions(folders: list[Folder]) -> dict[str, Action]:
    return {f.name: f.action for f in folders}


def test_age_limit_removes_only_ended_folders_past_it() -> None:
    policy = RetentionPolicy(max_age_days=30)
    out = decide(
        [
            folder("old", 40),
            folder("young", 3),
            folder("old-live", 90, state=FolderState.LIVE),
            folder("old-unknown", 90, state=FolderState.UNKNOWN),
        ],
        policy,
        NOW,
    )
    assert actions(out) == {
        "old": Action.REMOVE,
        "young": Action.KEEP,
        "old-live": Action.KEEP,
        "old-unknown": Action.KEEP,
    }
    why = {f.name: f.why for f in out}
    assert "untouched for 40 d (limit 30 d)" in why["old"]
    assert why["old-unknown"].startswith("state unknown, would otherwise go: untouched for 90 d")
    assert why["old-live"] == "live: never removed"


def test_count_limit_keeps_the_newest_ended_folders() -> None:
    out = decide(
        [folder(f"f{i}", i) for i in range(5)] + [folder("live", 0, state=FolderState.LIVE)],
        RetentionPolicy(max_count=2),
        NOW,
    )
    assert [f.name for f in out if f.action is Action.REMOVE] == ["f2", "f3", "f4"]
    assert {f.why for f in out if f.action is Action.REMOVE} == {
        "beyond the newest 2 ended folders"
    }


def test_size_limit_removes_oldest_first_and_counts_live_folders() -> None:
    # 1000 bytes live (never removed) + 4 x 300 ended; limit 1700: two oldest must go.
    folders = [folder("live", 50, size=1000, state=FolderState.LIVE)] + [
        folder(f"f{i}", i, size=300) for i in range(4)
    ]
    out = decide(folders, RetentionPolicy(max_bytes=ByteSize(1700)), NOW)
    assert [f.name for f in out if f.action is Action.REMOVE] == ["f2", "f3"]


def test_no_limits_keep_everything() -> None:
    policy = RetentionPolicy()
    assert not policy.limited
    out = decide([folder("ancient", 3650)], policy, NOW)
    assert actions(out) == {"ancient": Action.KEEP}


def test_recorded_end_counts_as_activity() -> None:
    recent_end = Evidence(FolderState.ENDED, "registry", ended_at=NOW - DAY)
    old_files = Folder("f", Path("/jobs/f"), recent_end, Usage(1, 1, NOW - 90 * DAY))
    assert decide([old_files], RetentionPolicy(max_age_days=30), NOW)[0].action is Action.KEEP


def test_job_defaults_bound_the_folder_and_one_override_keeps_the_others() -> None:
    jobs = Settings().retention.jobs
    assert (jobs.max_age_days, jobs.max_count, jobs.max_bytes) == (30, 1000, 20 * 1024**3)
    assert not Settings().retention.benchmarks.limited
    assert JobsRetention.model_validate({"max_bytes": "5GiB"}).max_age_days == 30
    with pytest.raises(ValidationError):
        RetentionPolicy(max_count=-1)
    policy = effective_policy(jobs, "12h", None, "1GiB")
    assert (policy.max_age_days, policy.max_count, policy.max_bytes) == (0.5, 1000, 1024**3)


def test_durations() -> None:
    assert parse_days("30") == 30 and parse_days("2w") == 14 and parse_days("36h") == 1.5
    assert parse_days("0") == 0
    with pytest.raises(ValueError, match="not a duration"):
        parse_days("-3d")


def _service(state: ServiceState, job_id: str | None = None) -> ServiceRecord:
    record = ServiceRecord(
        service_id="svc1",
        recipe="inference/simulator",
        request_id="r",
        job_name="aif-svc1",
        executor="slurm",
        workdir="/jobs/svc1",
        job_id=job_id,
    )
    record.set_state(state)
    return record


def test_any_sign_of_life_wins_and_vanished_is_not_an_end() -> None:
    running = {"7": JobStatus("7", JobState.RUNNING)}
    vanished = {"7": JobStatus("7", JobState.VANISHED, reason="not in squeue")}
    done = {"7": JobStatus("7", JobState.COMPLETED)}
    ended_record = Registries(services={"svc1": _service(ServiceState.COMPLETED, "7")})
    no_bus = Registries.unavailable("cannot reach NATS")

    # The registry says ended, the scheduler still runs the job: live.
    seen = job_folder("svc1", ["7"], ended_record, Scheduler(states=running))
    assert seen.state is FolderState.LIVE and "job 7 running" in seen.reason
    # The registry says running: live, whatever the scheduler forgot.
    live_record = Registries(services={"svc1": _service(ServiceState.RUNNING, "7")})
    assert job_folder("svc1", ["7"], live_record, Scheduler(states=vanished)).state is (
        FolderState.LIVE
    )
    # No registry: a definite end state is evidence, "vanished" is not.
    assert job_folder("svc1", ["7"], no_bus, Scheduler(states=done)).state is FolderState.ENDED
    unknown = job_folder("svc1", ["7"], no_bus, Scheduler(states=vanished))
    assert unknown.state is FolderState.UNKNOWN
    assert unknown.reason == "service registry not read; job 7 vanished (not in squeue)"
    # A scheduler that did not answer and no registry: unknown.
    silent = Scheduler(error="the scheduler did not answer: squeue timed out")
    assert job_folder("svc1", ["7"], no_bus, silent).state is FolderState.UNKNOWN
    # The registry's end, scheduler silent: ended (the registry got its end from it).
    assert job_folder("svc1", ["7"], ended_record, silent).state is FolderState.ENDED
    # A queued job has no output yet: its id comes from the record.
    queued = {"7": JobStatus("7", JobState.PENDING)}
    assert job_folder("svc1", [], ended_record, Scheduler(states=queued)).state is (
        FolderState.LIVE
    )


def test_workers_folders_follow_the_benchmarks_registry(tmp_path: Path) -> None:
    record = BenchmarkRecord(
        benchmark_id="b1",
        request_id="r",
        target={"url": "http://127.0.0.1:1"},
        workload=Workload(requests=1),
        state=BenchState.RUNNING,
        updated=datetime.fromtimestamp(NOW, UTC),
    )
    registries = Registries(benchmarks={"b1": record})
    assert job_folder("aif-bench-b1", [], registries, Scheduler()).state is FolderState.LIVE
    assert results_folder("b1", tmp_path, registries).state is FolderState.LIVE
    finished = Registries(benchmarks={"b1": record.model_copy(update={"state": BenchState.FAILED})})
    assert results_folder("b1", tmp_path, finished) == Evidence(
        FolderState.ENDED, "registry: benchmark failed", NOW
    )
    # No record: the summary, written last, says the run is over.
    no_bus = Registries.unavailable("down")
    assert results_folder("b2", tmp_path, no_bus).state is FolderState.UNKNOWN
    (tmp_path / "summary.json").write_text("{}")
    assert results_folder("b2", tmp_path, no_bus).state is FolderState.ENDED


def test_job_ids_come_from_slurm_style_output_names(tmp_path: Path) -> None:
    for name in ("aif-x.sh", "aif-x-12.out", "aif-x-13.out", "aif-x-oops.out", "other-99.out"):
        (tmp_path / name).write_text("")
    (tmp_path / "aif-x-14.out").symlink_to(tmp_path / "aif-x-12.out")
    assert job_ids(tmp_path) == (["aif-x"], ["12", "13"])


def test_usage_counts_links_as_links_and_never_follows_them(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(os.urandom(512 * 1024))
    job = tmp_path / "root" / "job"
    (job / "sub").mkdir(parents=True)
    (job / "sub" / "out").write_bytes(b"x" * 10_000)
    (job / "to-big").symlink_to(outside / "big")
    (job / "to-dir").symlink_to(outside)
    measured = usage(job)
    assert 10_000 <= measured.bytes < 100_000  # not the 512 KiB behind the link
    assert measured.files == 3  # out and the two links
    assert abs(measured.last_change - time.time()) < 60


def test_removal_stays_inside_the_root_and_never_removes_through_a_link(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    outside = tmp_path / "precious"
    (root / "ended").mkdir(parents=True)
    outside.mkdir()
    (outside / "data").write_text("keep me")
    (root / "ended" / "escape").symlink_to(outside)
    (root / "link").symlink_to(outside)
    with pytest.raises(RefusedPath, match="symbolic link"):
        remove_folder(root, root / "link")
    with pytest.raises(RefusedPath, match="not a folder directly inside"):
        remove_folder(root, outside)
    with pytest.raises(RefusedPath, match="not a folder directly inside"):
        remove_folder(root, root / "ended" / ".." / ".." / "precious")
    with pytest.raises(RefusedPath):
        remove_folder(root, root)
    remove_folder(root, root / "ended")
    assert not (root / "ended").exists()
    assert (outside / "data").read_text() == "keep me" and (root / "link").is_symlink()
    with pytest.raises(RefusedPath):
        checked_root(Path("/"))
    with pytest.raises(RefusedPath):
        checked_root(Path.home())
