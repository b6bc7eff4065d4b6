"""Pure parsers for SLURM's text: job states, ``squeue``/``sacct`` lines, time limits.

Kept apart from the executor so that every mapping decision is unit-tested without a
scheduler, and so that the ``local`` executor reads ``#SBATCH --time`` exactly as SLURM does.
"""

from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass

from aifactory.shared.executors.base import JobStatus
from aifactory.shared.executors.hostlist import HostlistError, expand_hostlist
from aifactory.shared.states import JobState

log = logging.getLogger(__name__)

#: ``squeue -O`` fields; ``:|`` = no width limit (no truncation) and ``|`` as separator.
#: ``exit_code`` is the raw wait status (768 = exit 3, 9 = killed by SIGKILL).
SQUEUE_FIELDS = ("JobID", "State", "exit_code", "NodeList", "Reason")
SQUEUE_FORMAT = ",".join(f"{field}:|" for field in SQUEUE_FIELDS)
#: ``sacct -P -o`` fields (``-P`` separates with ``|``).
SACCT_FIELDS = ("JobID", "State", "ExitCode", "NodeList", "Reason")
SACCT_FORMAT = ",".join(SACCT_FIELDS)


@dataclass(frozen=True, slots=True)
class _Mapping:
    state: JobState
    #: Prefixed to SLURM's reason when the mapping loses information (CONFIGURING → PENDING).
    note: str | None = None


#: Every state SLURM documents (squeue/sacct long names) → our enum.
SLURM_STATE_MAP: dict[str, _Mapping] = {
    "PENDING": _Mapping(JobState.PENDING),
    "RUNNING": _Mapping(JobState.RUNNING),
    "CONFIGURING": _Mapping(JobState.PENDING, "configuring: allocated nodes are booting"),
    "COMPLETING": _Mapping(JobState.COMPLETING),
    "COMPLETED": _Mapping(JobState.COMPLETED),
    "FAILED": _Mapping(JobState.FAILED),
    "CANCELLED": _Mapping(JobState.CANCELLED),
    "TIMEOUT": _Mapping(JobState.TIMEOUT),
    "NODE_FAIL": _Mapping(JobState.NODE_FAIL),
    "OUT_OF_MEMORY": _Mapping(JobState.OUT_OF_MEMORY),
    "PREEMPTED": _Mapping(JobState.PREEMPTED),
    "BOOT_FAIL": _Mapping(JobState.BOOT_FAIL),
    "DEADLINE": _Mapping(JobState.DEADLINE),
    "REQUEUED": _Mapping(JobState.REQUEUED),
    "REQUEUE_FED": _Mapping(JobState.REQUEUED, "requeued by the federation"),
    "REQUEUE_HOLD": _Mapping(JobState.REQUEUED, "requeued and held"),
    "SPECIAL_EXIT": _Mapping(JobState.REQUEUED, "special exit: requeued and held"),
    # Resizing and signalling jobs keep running; stage-out runs after the job's end.
    "RESIZING": _Mapping(JobState.RUNNING, "resizing"),
    "SIGNALING": _Mapping(JobState.RUNNING, "being signalled"),
    "STAGE_OUT": _Mapping(JobState.COMPLETING, "staging out"),
    "SUSPENDED": _Mapping(JobState.SUSPENDED),
    "STOPPED": _Mapping(JobState.SUSPENDED, "stopped (SIGSTOP), resources kept"),
    "RESV_DEL_HOLD": _Mapping(JobState.PENDING, "held: its reservation was deleted"),
    "REVOKED": _Mapping(JobState.CANCELLED, "revoked: a sibling cluster runs the job"),
}

_NO_REASON = frozenset({"", "None", "(null)", "n/a"})
_JOB_ID_RE = re.compile(r"^\d+(?:_\d+)?(?:\+\d+)?$")


class SlurmParseError(ValueError):
    """A line of scheduler output that does not have the expected fields."""


def is_job_id(text: str) -> bool:
    """SLURM job ids as sbatch prints them (plain, array ``12_3`` or het ``12+1``)."""
    return bool(_JOB_ID_RE.fullmatch(text))


def map_state(raw: str, reason: str | None = None) -> tuple[JobState, str | None]:
    """SLURM state text (``CANCELLED by 0``, ``COMPLETED``) → our state and a reason.

    An unknown state is treated as PENDING (the safe choice: the poller keeps watching) and
    logged, with the raw name kept in the reason so nobody has to guess later.
    """
    words = raw.strip().split()
    name = words[0].rstrip("+").upper() if words else ""
    reason = None if reason is None or reason.strip() in _NO_REASON else reason.strip()
    mapping = SLURM_STATE_MAP.get(name)
    if mapping is None:
        log.warning("unknown SLURM job state %r: treating it as pending", raw)
        note = f"unknown SLURM state {raw.strip()!r}"
        return JobState.PENDING, f"{note}: {reason}" if reason else note
    if name == "CANCELLED" and len(words) > 1:  # sacct: "CANCELLED by 1234" (uid)
        detail = " ".join(words[1:])
        reason = f"{detail}: {reason}" if reason else detail
    if mapping.note:
        reason = f"{mapping.note}: {reason}" if reason else mapping.note
    return mapping.state, reason


def decode_wait_status(raw: str) -> int | None:
    """squeue's ``exit_code`` (a raw wait status) → shell-style exit code.

    768 → 3; a job killed by signal N → 128 + N, as a shell reports it.
    """
    raw = raw.strip()
    if not raw.isdigit():
        return None
    status = int(raw)
    signal_number = status & 0x7F
    return 128 + signal_number if signal_number else (status >> 8) & 0xFF


def decode_sacct_exit(raw: str) -> int | None:
    """sacct's ``ExitCode`` (``code:signal``) → shell-style exit code."""
    code, _, signal_text = raw.strip().partition(":")
    if not code.isdigit():
        return None
    if signal_text.isdigit() and int(signal_text):
        return 128 + int(signal_text)
    return int(code)


def _nodes(text: str) -> tuple[str, ...]:
    try:
        return tuple(expand_hostlist(text))
    except HostlistError as exc:
        log.warning("cannot expand node list %r: %s", text, exc)
        return (text,)


def _status(
    job_id: str, state_text: str, exit_text: str | None, nodes: str, reason: str, *, sacct: bool
) -> JobStatus:
    state, why = map_state(state_text, reason)
    exit_code = None
    if state.is_terminal and exit_text is not None:
        exit_code = decode_sacct_exit(exit_text) if sacct else decode_wait_status(exit_text)
    return JobStatus(
        job_id=job_id, state=state, reason=why, nodes=_nodes(nodes), exit_code=exit_code
    )


def parse_squeue_line(line: str) -> JobStatus:
    """One line of ``squeue --noheader -O SQUEUE_FORMAT``."""
    parts = line.rstrip("\n").split("|", len(SQUEUE_FIELDS) - 1)
    if len(parts) != len(SQUEUE_FIELDS):
        raise SlurmParseError(f"squeue line has {len(parts)} fields, expected 5: {line!r}")
    job_id, state, exit_text, nodes, reason = (part.strip() for part in parts)
    reason = reason.removesuffix("|").strip()
    if not job_id or not state:
        raise SlurmParseError(f"squeue line without job id or state: {line!r}")
    return _status(job_id, state, exit_text, nodes, reason, sacct=False)


def parse_sacct_line(line: str) -> JobStatus:
    """One line of ``sacct -X -n -P -o SACCT_FORMAT``."""
    parts = line.rstrip("\n").split("|", len(SACCT_FIELDS) - 1)
    if len(parts) != len(SACCT_FIELDS):
        raise SlurmParseError(f"sacct line has {len(parts)} fields, expected 5: {line!r}")
    job_id, state, exit_text, nodes, reason = (part.strip() for part in parts)
    if not job_id or not state:
        raise SlurmParseError(f"sacct line without job id or state: {line!r}")
    return _status(job_id, state, exit_text, nodes, reason, sacct=True)


_TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time_limit(text: str) -> float | None:
    """SLURM time limit → seconds; ``None`` for no limit.

    Formats (sbatch(1)): ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS``; ``UNLIMITED``/``INFINITE``/``-1`` mean no limit.
    """
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "-1"):
        return None
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"time limit {text!r} is not a SLURM time: use MM, MM:SS, HH:MM:SS, D-HH, "
            "D-HH:MM or D-HH:MM:SS"
        )
    days_text, first, second, third = match.groups()
    a, b, c = int(first), int(second or 0), int(third or 0)
    if days_text is not None:
        # D-HH, D-HH:MM, D-HH:MM:SS
        return float(int(days_text) * 86400 + a * 3600 + b * 60 + c)
    if third is not None:
        return float(a * 3600 + b * 60 + c)  # HH:MM:SS
    if second is not None:
        return float(a * 60 + b)  # MM:SS
    return float(a * 60)  # MM


def sbatch_time_limit(script: str) -> float | None:
    """The ``#SBATCH --time`` / ``-t`` of a batch script, in seconds (``None`` if absent).

    Like sbatch, only the leading block is read: parsing stops at the first line that is
    neither blank nor a comment. The last directive wins.
    """
    limit: float | None = None
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        if not stripped.startswith("#SBATCH"):
            continue
        try:
            tokens = shlex.split(stripped[len("#SBATCH") :], comments=True)
        except ValueError as exc:
            raise ValueError(f"cannot parse directive {stripped!r}: {exc}") from exc
        for index, token in enumerate(tokens):
            value: str | None = None
            if token.startswith("--time="):
                value = token.split("=", 1)[1]
            elif token in ("--time", "-t") and index + 1 < len(tokens):
                value = tokens[index + 1]
            elif token.startswith("-t") and not token.startswith("--") and len(token) > 2:
                value = token[2:]
            if value is not None:
                limit = parse_time_limit(value)
    return limit
