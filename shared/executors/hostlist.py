"""Expand SLURM host lists (``node[01-03,07],login1``) in pure Python.

``scontrol show hostnames`` does the same but costs one extra scheduler call per job; the
poller asks for every tracked job at once, so the expansion must be free. Supports what SLURM
prints: comma-separated items, bracket groups of numbers and ranges with zero padding, and
several bracket groups in one name (cartesian product, ``r[1-2]n[1-2]``).
"""

from __future__ import annotations

import itertools

#: A hostlist that expands past this is a parsing accident, not a cluster.
MAX_HOSTS = 100_000


class HostlistError(ValueError):
    """The host list is not in SLURM's syntax; the message quotes the offending part."""


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``[...]``."""
    items: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "[":
            depth += 1
            if depth > 1:
                raise HostlistError(f"nested '[' in host list {text!r}")
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise HostlistError(f"unbalanced ']' in host list {text!r}")
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise HostlistError(f"unbalanced '[' in host list {text!r}")
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _expand_range_group(group: str, whole: str) -> list[str]:
    """``01-03,07`` → ``["01", "02", "03", "07"]`` keeping the zero padding of the start."""
    values: list[str] = []
    for part in group.split(","):
        part = part.strip()
        if not part:
            raise HostlistError(f"empty range in host list {whole!r}")
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise HostlistError(f"range {part!r} in host list {whole!r} is not numeric")
        if not sep:
            values.append(low)
            continue
        start, end = int(low), int(high)
        if end < start:
            raise HostlistError(f"range {part!r} in host list {whole!r} runs backwards")
        if len(values) + end - start + 1 > MAX_HOSTS:
            raise HostlistError(f"host list {whole!r} expands to more than {MAX_HOSTS} hosts")
        width = len(low)
        values.extend(str(number).zfill(width) for number in range(start, end + 1))
    return values


def _expand_item(item: str, whole: str) -> list[str]:
    pieces: list[list[str]] = []
    rest = item
    while "[" in rest:
        prefix, _, tail = rest.partition("[")
        group, closed, rest = tail.partition("]")
        if not closed:
            raise HostlistError(f"unbalanced '[' in host list {whole!r}")
        pieces.append([prefix])
        pieces.append(_expand_range_group(group, whole))
    if "]" in rest:
        raise HostlistError(f"unbalanced ']' in host list {whole!r}")
    pieces.append([rest])
    total = 1
    for piece in pieces:
        total *= len(piece)
    if total > MAX_HOSTS:
        raise HostlistError(f"host list {whole!r} expands to more than {MAX_HOSTS} hosts")
    return ["".join(combo) for combo in itertools.product(*pieces)]


def expand_hostlist(text: str | None) -> list[str]:
    """Every host name in a SLURM host list, in order, without duplicates.

    ``""``, ``None`` and SLURM's placeholders for "no nodes" (``(null)``, ``None``) give ``[]``.
    """
    if text is None:
        return []
    text = text.strip()
    if text in ("", "(null)", "None", "n/a"):
        return []
    hosts: dict[str, None] = {}
    for item in _split_top_level(text):
        for host in _expand_item(item, text):
            hosts[host] = None
        if len(hosts) > MAX_HOSTS:
            raise HostlistError(f"host list {text!r} expands to more than {MAX_HOSTS} hosts")
    return list(hosts)
