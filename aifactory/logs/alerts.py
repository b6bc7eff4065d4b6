"""Known failure patterns in job output, found as the lines go by.

:data:`PATTERNS` is the one table: add a row to catch something new. Each row names the
literal ``needles`` a matching line must contain; a batch in which none of them occurs (the
common case) costs one substring search per needle over the whole batch, in C, and no
regular expression at all. That is what keeps scanning 50,000 lines a second cheap.

A pattern with ``block_end`` spans lines (a Python traceback): it opens at its line and the
alert goes out at the line that ends the block, whose text is the summary (the exception).
The open block is part of the scanner's state, which the logs service checkpoints with the
file position, so a traceback cut by a restart is still reported.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from aifactory.shared.messages import AlertSeverity


@dataclass(frozen=True, slots=True)
class AlertPattern:
    name: str
    severity: AlertSeverity
    #: Literal substrings (case-sensitive); a line can only match if it holds one.
    needles: tuple[str, ...]
    regex: re.Pattern[str]
    about: str
    #: For a block pattern: given the opening line's prefix, does this line end the block?
    block_end: Callable[[str, str], bool] | None = None
    block_max: int = 200


def _traceback_ends(prefix: str, line: str) -> bool:
    """The exception line after the frames: no indent after the header's prefix (a per-line
    prefix such as srun's ``0:`` or Ray's ``(pid=1)``), or at all when the line lacks it."""
    rest = line[len(prefix) :] if line.startswith(prefix) else line
    return bool(rest) and not rest[0].isspace()


_APPTAINER_PULL = (
    r"(?:FATAL|ERROR)\s*:\s+.*(?:While making image from oci registry|"
    r"Unable to handle (?:docker|oras|library|shub|https?)://|"
    r"[Ff]ailed to (?:pull|get image|download|fetch)|[Ee]rror fetching image|"
    r"while building SIF|[Uu]nable to (?:pull|retrieve|get) (?:image|manifest))"
)

#: The table. Single-line patterns: at most one alert per line, the first row that matches.
PATTERNS: tuple[AlertPattern, ...] = (
    AlertPattern(
        "python_traceback",
        AlertSeverity.ERROR,
        ("Traceback (most recent call last):",),
        re.compile(r"Traceback \(most recent call last\):"),
        "A Python exception; the summary is the exception line that ends the traceback.",
        block_end=_traceback_ends,
    ),
    AlertPattern(
        "cuda_oom",
        AlertSeverity.ERROR,
        ("out of memory", "OutOfMemoryError", "OUT_OF_MEMORY", "cudaErrorMemoryAllocation"),
        re.compile(
            r"CUDA out of memory|torch\.(?:cuda\.)?OutOfMemoryError|CUDA error: out of memory"
            r"|CUDA_ERROR_OUT_OF_MEMORY|cudaErrorMemoryAllocation"
        ),
        "The GPU ran out of memory (batch, context length or KV cache too large).",
    ),
    AlertPattern(
        "nccl_error",
        AlertSeverity.ERROR,
        ("NCCL", "nccl"),
        re.compile(
            r"NCCL error|nccl(?:System|Internal|UnhandledCuda|Remote|InvalidUsage)Error"
            r"|NCCL WARN .*(?:[Ee]rror|[Ff]ailed|[Tt]imeout|[Tt]imed out)"
            r"|Watchdog caught collective operation timeout|NCCL communicator was aborted"
        ),
        "Collective communication between GPUs or nodes failed.",
    ),
    AlertPattern(
        "oom_kill",
        AlertSeverity.ERROR,
        ("oom", "OOM", "Out of memory"),
        re.compile(
            r"oom[-_]kill|OOM[- ]?[Kk]ill|Out of memory: Kill(?:ed)? process"
            r"|Memory cgroup out of memory"
        ),
        "The kernel (or SLURM's cgroup) killed a process for using too much host memory.",
    ),
    AlertPattern(
        "slurmstepd_error",
        AlertSeverity.ERROR,
        ("slurmstepd",),
        # A plain cancellation notice is how every cancelled job ends: not an alert.
        re.compile(
            r"slurmstepd(?:-[\w.-]+)?: error: "
            r"(?!\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT \S+ \*\*\*$)"
        ),
        "SLURM's step daemon reports an error (time limit, node failure, a task killed).",
    ),
    AlertPattern(
        "apptainer_pull",
        AlertSeverity.ERROR,
        ("FATAL", "ERROR"),
        re.compile(_APPTAINER_PULL),
        "Apptainer (Singularity) could not pull or build the container image.",
    ),
)

BY_NAME = {p.name: p for p in PATTERNS}

#: What an alert carries of the lines: characters per line, first and last lines of a block.
CONTEXT_CHARS = 500
CONTEXT_HEAD = 10
CONTEXT_TAIL = 30


class OpenBlock(BaseModel):
    """A multi-line match waiting for its end (kept in the checkpoint across restarts)."""

    model_config = ConfigDict(extra="forbid")

    pattern: str
    prefix: str
    line: int
    offset: int
    #: Lines taken so far, and the kept ones: the first few and the last (a traceback's
    #: innermost frames and its exception are what matter).
    taken: int = 1
    context: list[str]

    def take(self, text: str) -> None:
        self.taken += 1
        self.context.append(text[:CONTEXT_CHARS])
        if len(self.context) > CONTEXT_HEAD + CONTEXT_TAIL:
            del self.context[CONTEXT_HEAD]


@dataclass(frozen=True, slots=True)
class Found:
    pattern: AlertPattern
    summary: str
    line: int
    offset: int
    context: list[str]
    suppressed: int = 0


@dataclass
class RateLimit:
    """At most ``burst`` alerts per pattern per ``window`` seconds; the rest are counted
    and the count rides on the next alert of that pattern."""

    burst: int = 10
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _sent: dict[str, list[float]] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)

    def admit(self, found: Found) -> Found | None:
        now = self.clock()
        name = found.pattern.name
        recent = [t for t in self._sent.get(name, []) if now - t < self.window]
        if len(recent) >= self.burst:
            self._sent[name] = recent
            self._held[name] = self._held.get(name, 0) + 1
            return None
        self._sent[name] = [*recent, now]
        held = self._held.pop(name, 0)
        if not held:
            return found
        return Found(found.pattern, found.summary, found.line, found.offset, found.context, held)


class AlertScanner:
    """Scans one file's records in order; returns what matched."""

    def __init__(
        self,
        patterns: tuple[AlertPattern, ...] = PATTERNS,
        *,
        limit: RateLimit | None = None,
        block: OpenBlock | None = None,
    ) -> None:
        self.patterns = patterns
        self.single = tuple(p for p in patterns if p.block_end is None)
        self.blocks = tuple(p for p in patterns if p.block_end is not None)
        self.needles = tuple(dict.fromkeys(n for p in patterns for n in p.needles))
        self.limit = limit or RateLimit()
        self.block = block

    def scan(
        self,
        texts: list[str],
        cuts: Collection[int],
        locate: Callable[[int], tuple[int, int]],
        *,
        first_continues: bool = False,
    ) -> list[Found]:
        """Scan consecutive records. ``cuts``: indices of records that do not end their
        line (the rest of a cut line is matched with its first piece only);
        ``locate(i)``: record ``i``'s line number and byte offset, asked only on a match;
        ``first_continues``: the first record is the rest of a line cut before."""

        def rest_of_a_line(j: int) -> bool:
            return (j - 1) in cuts if j > 0 else first_continues

        found: list[Found] = []
        joined = "\n".join(texts)
        hits = [n for n in self.needles if n in joined]
        i = 0
        while i < len(texts):
            if self.block is not None:
                i = self._continue_block(texts, i, rest_of_a_line, found)
                continue
            if not hits:
                break
            for j in range(i, len(texts)):
                i = j + 1
                text = texts[j]
                if rest_of_a_line(j) or not any(n in text for n in hits):
                    continue
                self._match_line(text, j, locate, found)
                if self.block is not None:
                    break
        return [f for f in (self.limit.admit(f) for f in found) if f is not None]

    def _match_line(
        self, text: str, i: int, locate: Callable[[int], tuple[int, int]], found: list[Found]
    ) -> None:
        for pattern in self.blocks:
            match = pattern.regex.search(text) if any(n in text for n in pattern.needles) else None
            if match is not None:
                line, offset = locate(i)
                self.block = OpenBlock(
                    pattern=pattern.name,
                    prefix=text[: match.start()],
                    line=line,
                    offset=offset,
                    context=[text[:CONTEXT_CHARS]],
                )
                return
        for pattern in self.single:
            if any(n in text for n in pattern.needles) and pattern.regex.search(text):
                line, offset = locate(i)
                found.append(
                    Found(pattern, text[:CONTEXT_CHARS], line, offset, [text[:CONTEXT_CHARS]])
                )
                return

    def _continue_block(
        self,
        texts: list[str],
        start: int,
        rest_of_a_line: Callable[[int], bool],
        found: list[Found],
    ) -> int:
        """Feed records from ``start`` to the open block until it ends; returns the index to
        go on from. The record that ends the block is scanned as any line after it (a
        traceback's ``torch.OutOfMemoryError`` line is also a ``cuda_oom``)."""
        block = self.block
        assert block is not None
        pattern = BY_NAME.get(block.pattern)
        if pattern is None or pattern.block_end is None:
            self.block = None
            return start
        for i in range(start, len(texts)):
            text = texts[i]
            if rest_of_a_line(i):
                continue
            if pattern.block_end(block.prefix, text):
                self.block = None
                block.take(text)
                summary = text[len(block.prefix) :] if text.startswith(block.prefix) else text
                found.append(
                    Found(pattern, summary[:CONTEXT_CHARS], block.line, block.offset, block.context)
                )
                return i
            if block.taken >= pattern.block_max:
                self.block = None
                summary = f"(no end within {pattern.block_max} lines)"
                found.append(Found(pattern, summary, block.line, block.offset, block.context))
                return i
            block.take(text)
        return len(texts)
