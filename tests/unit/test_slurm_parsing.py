"""SLURM text parsing: host lists, the state map, squeue/sacct lines, time limits."""

from __future__ import annotations

import logging

import pytest

from aifactory.shared.executors.hostlist import MAX_HOSTS, HostlistError, expand_hostlist
from aifactory.shared.executors.slurm_states import (
    SLURM_STATE_MAP,
    SQUEUE_FORMAT,
    SlurmParseError,
    decode_sacct_exit,
    decode_wait_status,
    is_job_id,
    map_state,
    parse_sacct_line,
    parse_squeue_line,
    parse_time_limit,
    sbatch_time_limit,
)
from aifactory.shared.states import JobState

# -- host lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("vm", ["vm"]),
        ("node[01-03,07],other", ["node01", "node02", "node03", "node07", "other"]),
        ("mel[0001-0002]", ["mel0001", "mel0002"]),
        ("gpu-[8-10]-ib", ["gpu-8-ib", "gpu-9-ib", "gpu-10-ib"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("a[1],b,a1", ["a1", "b"]),  # duplicates removed, order kept
        ("x[9-11]", ["x9", "x10", "x11"]),
        ("", []),
        ("(null)", []),
        ("None", []),
        (None, []),
    ],
)
def test_expand_hostlist(text: str | None, hosts: list[str]) -> None:
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize(
    "text", ["node[01-03", "node01]", "node[[1]]", "node[3-1]", "node[a-b]", "node[1,,2]"]
)
def test_expand_hostlist_rejects_bad_syntax(text: str) -> None:
    with pytest.raises(HostlistError, match="host list"):
        expand_hostlist(text)


def test_expand_hostlist_refuses_explosions() -> None:
    with pytest.raises(HostlistError, match=str(MAX_HOSTS)):
        expand_hostlist("n[0-999999]")
    with pytest.raises(HostlistError, match=str(MAX_HOSTS)):
        expand_hostlist("a[0-999]b[0-999]")


# -- state map ------------------------------------------------------------------------------

EXPECTED = {
    "PENDING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "CONFIGURING": JobState.PENDING,
    "COMPLETING": JobState.COMPLETING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
    "NODE_FAIL": JobState.NODE_FAIL,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "PREEMPTED": JobState.PREEMPTED,
    "BOOT_FAIL": JobState.BOOT_FAIL,
    "DEADLINE": JobState.DEADLINE,
    "REQUEUED": JobState.REQUEUED,
    "REQUEUE_FED": JobState.REQUEUED,
    "REQUEUE_HOLD": JobState.REQUEUED,
    "SPECIAL_EXIT": JobState.REQUEUED,
    "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.COMPLETING,
    "SUSPENDED": JobState.SUSPENDED,
    "STOPPED": JobState.SUSPENDED,
    "RESV_DEL_HOLD": JobState.PENDING,
    "REVOKED": JobState.CANCELLED,
}


@pytest.mark.parametrize(("raw", "state"), sorted(EXPECTED.items()))
def test_every_slurm_state_maps(raw: str, state: JobState) -> None:
    assert map_state(raw)[0] is state


def test_state_map_covers_the_documented_states() -> None:
    assert set(SLURM_STATE_MAP) == set(EXPECTED)


def test_configuring_is_pending_with_a_reason() -> None:
    state, reason = map_state("CONFIGURING", "None")
    assert state is JobState.PENDING
    assert reason is not None and "booting" in reason


def test_cancelled_by_uid_keeps_who() -> None:
    assert map_state("CANCELLED by 0") == (JobState.CANCELLED, "by 0")
    assert map_state("CANCELLED+", None) == (JobState.CANCELLED, None)


def test_pending_reason_kept_and_none_dropped() -> None:
    assert map_state("PENDING", "Resources") == (JobState.PENDING, "Resources")
    assert map_state("RUNNING", "None") == (JobState.RUNNING, None)


def test_unknown_state_is_pending_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        state, reason = map_state("WARPED", "Priority")
    assert state is JobState.PENDING
    assert reason == "unknown SLURM state 'WARPED': Priority"
    assert "WARPED" in caplog.text


# -- squeue / sacct lines -------------------------------------------------------------------


def test_squeue_format_has_no_width_limit() -> None:
    assert SQUEUE_FORMAT == "JobID:|,State:|,exit_code:|,NodeList:|,Reason:|"


def test_parse_squeue_lines() -> None:
    running = parse_squeue_line("10|RUNNING|0|node[01-02]|None|")
    assert running.job_id == "10"
    assert running.state is JobState.RUNNING
    assert running.nodes == ("node01", "node02")
    assert running.reason is None
    assert running.exit_code is None  # only end states carry an exit code

    pending = parse_squeue_line("11|PENDING|0||Resources|")
    assert (pending.state, pending.reason, pending.nodes) == (JobState.PENDING, "Resources", ())

    failed = parse_squeue_line("9|FAILED|768|vm|NonZeroExitCode|")
    assert (failed.state, failed.exit_code, failed.reason) == (
        JobState.FAILED,
        3,
        "NonZeroExitCode",
    )
    cancelled = parse_squeue_line("13|CANCELLED|15|vm|None|")
    assert (cancelled.state, cancelled.exit_code) == (JobState.CANCELLED, 143)


@pytest.mark.parametrize("line", ["garbage", "1|RUNNING|0", "|RUNNING|0|n|None|"])
def test_parse_squeue_line_rejects_garbage(line: str) -> None:
    with pytest.raises(SlurmParseError):
        parse_squeue_line(line)


def test_parse_sacct_lines() -> None:
    status = parse_sacct_line("42|CANCELLED by 1000|0:15|gpu[1-2]|None")
    assert status.state is JobState.CANCELLED
    assert status.reason == "by 1000"
    assert status.exit_code == 143
    assert status.nodes == ("gpu1", "gpu2")
    oom = parse_sacct_line("43|OUT_OF_MEMORY|0:125|n1|OutOfMemory")
    assert (oom.state, oom.exit_code) == (JobState.OUT_OF_MEMORY, 253)
    done = parse_sacct_line("44|COMPLETED|0:0|n1|None")
    assert (done.state, done.exit_code) == (JobState.COMPLETED, 0)
    with pytest.raises(SlurmParseError):
        parse_sacct_line("44|COMPLETED")


@pytest.mark.parametrize(
    ("raw", "code"), [("0", 0), ("256", 1), ("768", 3), ("9", 137), ("x", None)]
)
def test_decode_wait_status(raw: str, code: int | None) -> None:
    assert decode_wait_status(raw) == code


@pytest.mark.parametrize(("raw", "code"), [("0:0", 0), ("3:0", 3), ("0:9", 137), ("", None)])
def test_decode_sacct_exit(raw: str, code: int | None) -> None:
    assert decode_sacct_exit(raw) == code


def test_job_id_syntax() -> None:
    assert all(is_job_id(text) for text in ("1", "123456", "12_3", "12+1"))
    assert not any(is_job_id(text) for text in ("", "-1", "--help", "1;2", "abc", "1 2"))


# -- time limits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5", 300.0),  # MM
        ("0:02", 2.0),  # MM:SS
        ("90:30", 5430.0),  # MM:SS with minutes > 59
        ("1:02:03", 3723.0),  # HH:MM:SS
        ("2-3", 2 * 86400 + 3 * 3600.0),  # D-HH
        ("1-01:30", 86400 + 5400.0),  # D-HH:MM
        ("1-00:00:10", 86410.0),  # D-HH:MM:SS
        ("UNLIMITED", None),
        ("infinite", None),
    ],
)
def test_parse_time_limit(text: str, seconds: float | None) -> None:
    assert parse_time_limit(text) == seconds


@pytest.mark.parametrize("text", ["", "1:2:3:4", "abc", "1-", "-5", "1h"])
def test_parse_time_limit_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a SLURM time"):
        parse_time_limit(text)


def test_sbatch_time_limit_reads_only_the_leading_block() -> None:
    script = "#!/bin/bash\n#SBATCH --job-name=x\n\n#SBATCH --time=0:02  # two s\necho\n"
    assert sbatch_time_limit(script) == 2.0
    assert sbatch_time_limit("#!/bin/bash\n#SBATCH -t 3\n") == 180.0
    assert sbatch_time_limit("#!/bin/bash\n#SBATCH -t1:00:00\n") == 3600.0
    assert sbatch_time_limit("#!/bin/bash\n#SBATCH --time 1-0\n") == 86400.0
    # After the first command sbatch stops reading directives.
    assert sbatch_time_limit("#!/bin/bash\necho hi\n#SBATCH --time=1\n") is None
    assert sbatch_time_limit("#!/bin/bash\n# SBATCH --time=1\n") is None
    # The last directive wins, as with sbatch.
    assert sbatch_time_limit("#SBATCH --time=1\n#SBATCH --time=2\n") == 120.0
    with pytest.raises(ValueError, match="not a SLURM time"):
        sbatch_time_limit("#SBATCH --time=soon\n")
