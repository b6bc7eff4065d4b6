"""From an exposition body to the samples the monitor keeps, or the reason it cannot.

A node exporter answers 50-200 KB; a hundred targets every five seconds must cost a few
percent of a core. Parsing every line with a Python parser costs far more than that
(prometheus_client's takes ~70 us per DCGM line), so the work is split:

1. the whole body is checked for structure in C (``re``): UTF-8, and every line a
   comment, a blank, or ``name[{labels}] value [timestamp]``: garbage fails the scrape.
   The line-by-line check is the costliest step (~0.8 ms per 100 KB), so a caller may ask
   for it only now and then (``thorough``); the cheap form, every time, checks UTF-8 and
   that every line starts as a comment or a metric name does (an HTML page, JSON, binary
   data or indented text fail at once);
2. only the lines of kept metric names are picked out: each pattern's literal prefix
   (``DCGM_FI_DEV_``, ``vllm:``) is found with ``str.find`` and its block of consecutive
   lines taken whole (a family's lines are consecutive), so the body is never walked line
   by line in Python; the few lines of such a block that are not kept are skipped by name;
3. each distinct series text (name and labels) is parsed once by prometheus_client's
   parser and cached, so the common case (the same series every scrape, new values) costs
   a dictionary lookup and a ``float``; values are Prometheus floats (``NaN``, ``+Inf``).

Duplicate series among the kept ones fail the scrape (the bus never carries two values
for one series). Per-CPU node series are summed over CPUs (``REDUCE``): a 128-core node
would otherwise send a thousand ``node_cpu_seconds_total`` samples per scrape, and every
reader wants the node's total anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from aifactory.shared.messages.monitor import SeriesGroup

#: Metric name → label summed away (``node_cpu_seconds_total{cpu,mode}`` → ``{mode}``).
REDUCE: dict[str, str] = {"node_cpu_seconds_total": "cpu"}

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LINE = rf"(?:#[^\n]*|[ \t]*|{_NAME}(?:\{{[^\n]*\}})?[ \t]+[^ \t\n]+(?:[ \t]+-?[0-9]+)?[ \t]*)"
_STRUCTURE = re.compile(rf"(?:{_LINE}\n)*{_LINE}?")
#: A line that starts as neither a comment nor a metric name (searched from "\n": fast).
_BAD_START = re.compile(r"\n[^#a-zA-Z_:\n]")
#: A kept line: its series text (name and labels) and its value.
_SPLIT = re.compile(rf"^({_NAME}(?:\{{[^\n]*\}})?)[ \t]+([^ \t\n]+)", re.MULTILINE)
_SERIES_CACHE_LIMIT = 200_000
_REGEX_META = set(".^$*+?{}[]\\|()")


class ExpositionError(ValueError):
    """The body is not a usable exposition; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Series:
    """A parsed series text: its name and labels (values change, series do not), whether
    it is kept, and the label-set group it travels in."""

    name: str
    labels: dict[str, str]
    kept: bool
    #: The group of its label set (after reduction), numbered by the parser.
    group: int
    #: Summed with the other series of its group and name (its name is reduced).
    reduced: bool = False


def literal_prefix(pattern: str) -> str:
    """The text every name ``pattern`` matches starts with (``vllm:.*`` → ``vllm:``)."""
    out = []
    for ch in pattern:
        if ch in _REGEX_META:
            break
        out.append(ch)
    # A quantifier applies to the character before it: that one is not certain.
    if len(out) < len(pattern) and pattern[len(out)] in "*?{":
        out = out[:-1]
    return "".join(out)


class Selector:
    """Which metric names are kept (regular expressions matching the whole name)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._regexes = [re.compile(p) for p in patterns]
        stems = sorted({literal_prefix(p) for p in patterns}, key=len)
        #: Searched as "\n<prefix>"; an empty prefix means every line is a candidate. A
        #: prefix that extends another is left out: the shorter one finds its lines too.
        self.prefixes = [p for i, p in enumerate(stems) if not p.startswith(tuple(stems[:i]))]
        #: Per prefix: its block ends at the first line that neither starts with it nor is a
        #: comment (HELP and TYPE lines separate the families sharing a prefix).
        self._block_ends = [(p, re.compile("\n(?!" + re.escape(p) + "|#)")) for p in self.prefixes]
        self._verdicts: dict[str, bool] = {}

    def keeps(self, name: str) -> bool:
        verdict = self._verdicts.get(name)
        if verdict is None:
            verdict = any(r.fullmatch(name) for r in self._regexes)
            if len(self._verdicts) < _SERIES_CACHE_LIMIT:
                self._verdicts[name] = verdict
        return verdict

    def candidate_lines(
        self, text: str, only: frozenset[str] | None = None
    ) -> tuple[list[str], frozenset[str]]:
        """Blocks of consecutive lines starting with a kept prefix, in exposition order, and
        the prefixes found. ``only``: search just these (the ones a target had before).

        A family's lines are consecutive in an exposition, so each prefix costs a few
        ``find`` calls and one regex scan to the end of its block, whatever the line count;
        a prefix a body lacks costs a scan of the whole body, which ``only`` avoids.
        """
        if "" in self.prefixes:
            lines = [line for line in text.split("\n") if line and line[0] != "#"]
            return lines, frozenset({""})
        body = "\n" + text
        found: dict[int, str] = {}
        present = set()
        for prefix, block_end in self._block_ends:
            if only is not None and prefix not in only:
                continue
            needle = "\n" + prefix
            at = body.find(needle)
            while at >= 0:
                present.add(prefix)
                end_match = block_end.search(body, at + 1)
                end = len(body) if end_match is None else end_match.start()
                found[at] = body[at + 1 : end]
                at = body.find(needle, end)
        return [found[k] for k in sorted(found)], frozenset(present)


class Parser:
    """Turns exposition bodies into kept samples; keeps its series cache across scrapes."""

    def __init__(self, selector: Selector) -> None:
        self.selector = selector
        self._series: dict[str, Series] = {}
        #: Per source, the kept prefixes its body had at its last thorough scrape.
        self._present: dict[str, frozenset[str]] = {}
        #: Label sets by number (an int hashes faster than the labels).
        self._group_of: dict[tuple[tuple[str, str], ...], int] = {}
        self._groups: list[dict[str, str]] = []

    def samples(self, body: bytes, *, thorough: bool = True, source: str = "") -> list[SeriesGroup]:
        """The kept samples of ``body``; raises :class:`ExpositionError`.

        ``thorough``: check every line's shape, not only how each line starts, and look for
        every kept prefix; otherwise only for those ``source`` (a target's URL) had at its
        last thorough scrape (a node exporter never grows ``vllm:`` lines).
        """
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ExpositionError(f"not UTF-8 text (byte {exc.start})") from None
        bad = _BAD_START.search("\n" + text) is not None
        if bad or (thorough and _STRUCTURE.fullmatch(text) is None):
            raise ExpositionError(_first_bad_line(text))
        if len(self._series) >= _SERIES_CACHE_LIMIT:
            # Churn (a label per request, say): start over rather than grow. Between
            # bodies, so no slot of this one is lost.
            self._series.clear()
            self._group_of.clear()
            self._groups.clear()
        only = None if thorough else self._present.get(source)
        lines, present = self.selector.candidate_lines(text, only)
        if only is None and source:
            if len(self._present) >= _SERIES_CACHE_LIMIT:
                self._present.clear()
            self._present[source] = present
        blocks = "\n".join(lines)
        pairs = _SPLIT.findall(blocks)
        comments = blocks.count("\n#") + blocks.startswith("#")
        if blocks and len(pairs) != blocks.count("\n") + 1 - comments:
            raise ExpositionError("a kept line has no value")  # the checks above prevent it
        texts = [text for text, _ in pairs]
        if len(set(texts)) != len(texts):
            raise ExpositionError(f"duplicate series {_first_repeat(texts)[:200]}")
        groups: dict[int, dict[str, float]] = {}
        cache = self._series
        series_text = value_text = ""
        try:
            for series_text, value_text in pairs:
                series = cache.get(series_text) or self._parse_series(series_text)
                if not series.kept:
                    continue
                values = groups.get(series.group)
                if values is None:
                    values = groups[series.group] = {}
                if series.reduced:
                    values[series.name] = values.get(series.name, 0.0) + float(value_text)
                elif series.name in values:  # the same labels written in another order
                    raise ExpositionError(f"duplicate series {series_text[:200]}")
                else:
                    values[series.name] = float(value_text)
        except ExpositionError:
            raise
        except ValueError:
            where = series_text[:200]
            raise ExpositionError(f"{where}: not a number: {value_text[:40]!r}") from None
        # The labels dicts are shared with the cache: nobody mutates a scrape's groups.
        return [{"labels": self._groups[g], "values": v} for g, v in groups.items()]

    def _parse_series(self, series_text: str) -> Series:
        try:
            families = list(text_string_to_metric_families(series_text + " 0\n"))
            sample = families[0].samples[0]
        except (ValueError, IndexError, KeyError) as exc:
            raise ExpositionError(f"cannot parse {series_text[:200]}: {exc}") from None
        labels = dict(sample.labels)
        drop = REDUCE.get(sample.name)
        if drop is not None:
            labels.pop(drop, None)
        key = tuple(sorted(labels.items()))
        group = self._group_of.setdefault(key, len(self._group_of))
        if group == len(self._groups):
            self._groups.append(labels)
        kept = self.selector.keeps(sample.name)
        parsed = Series(sample.name, labels, kept, group, reduced=drop is not None)
        self._series[series_text] = parsed
        return parsed


def _first_repeat(texts: list[str]) -> str:
    seen: set[str] = set()
    for text in texts:
        if text in seen:
            return text
        seen.add(text)
    return ""


def _first_bad_line(text: str) -> str:
    line_re = re.compile(_LINE)
    for number, line in enumerate(text.split("\n"), start=1):
        if line_re.fullmatch(line) is None:
            return f"line {number} is not a sample or a comment: {line[:120]!r}"
    return "not a Prometheus text exposition"


def parse_all(body: bytes, keep: Iterable[str] = (".*",)) -> list[SeriesGroup]:
    """Every kept sample of one body (tests and one-off use; services keep a Parser)."""
    return Parser(Selector(list(keep))).samples(body)
