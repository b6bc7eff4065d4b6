"""Where the ingress's CPU goes, from py-spy's collapsed stacks (server_ingress --profile)."""

from __future__ import annotations

import collections
import re


def _frame_key(frame: str) -> str:
    """``func (path:line)`` → ``func (package/module.py)``: group lines of one function."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if match is None:
        return frame
    func, path = match[1], match[2]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


#: Code paths worth a number of their own: (label, substring of a collapsed stack).
HOTSPOTS = (
    ("BaseHTTPMiddleware (@app.middleware count_requests)", "BaseHTTPMiddleware.__call__"),
    ("KVRegistry.get (KV read + record parse)", "KVRegistry.get"),
    ("  nats-py get_msg (request, JSON, base64, headers)", "JetStreamManager.get_msg"),
    ("  ServiceRecord.model_validate_json", "BaseModel.model_validate_json"),
    ("FastAPI serialize_response (response_model)", "serialize_response"),
    ("FastAPI solve_dependencies (BearerAuth, path)", "solve_dependencies"),
    ("prometheus counter (labels().inc())", "prometheus_client"),
    ("uvicorn httptools protocol", "httptools_impl.py"),
)

#: Leaf-frame areas with the reason they appear on this route.
AREA_NOTES = {
    "email": "email (nats-py parses NATS headers with email.parser)",
    "base64.py": "base64 (nats-py decodes STREAM.MSG.GET payloads)",
    "python stdlib: json": "json (nats-py STREAM.MSG.GET replies are JSON)",
}


def print_profile(collapsed: str) -> None:
    """Where the server's CPU goes, from py-spy's collapsed stacks.

    Self time by area uses leaf frames only, which py-spy always gets right. Inclusive
    shares are lower bounds: on Python 3.11 py-spy cuts some coroutine stacks short (the
    samples whose entry point is not ``runpy``), so a caller can miss samples it owns.
    """
    own: collections.Counter[str] = collections.Counter()
    by_area: collections.Counter[str] = collections.Counter()
    hot: collections.Counter[str] = collections.Counter()
    total = truncated = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_key(f) for f in stack.split(";")]
        total += count
        truncated += count if "runpy" not in frames[0] and "threading" not in frames[0] else 0
        own[frames[-1]] += count
        by_area[_area(frames[-1])] += count
        for label, needle in HOTSPOTS:
            if needle in stack:
                hot[label] += count
    if not total:
        print("\nprofile: no samples")
        return
    print(f"\nprofile of the server under the service route ({total} samples, py-spy)")
    print("self time by area (leaf frames):")
    for area, count in by_area.most_common(12):
        print(f"  {100 * count / total:5.1f}%  {AREA_NOTES.get(area, area)}")
    print(f"inclusive, lower bounds ({100 * truncated / total:.0f}% of stacks cut short):")
    for label, _ in HOTSPOTS:
        print(f"  {100 * hot[label] / total:5.1f}%  {label}")
    print("self time by function:")
    for key, count in own.most_common(12):
        print(f"  {100 * count / total:5.1f}%  {key}")


def _area(frame_key: str) -> str:
    """The package a leaf frame belongs to: where self time is spent."""
    match = re.search(r"\((.*)\)$", frame_key)
    path = match[1] if match else frame_key
    if path.startswith(("<frozen", "asyncio/", "json/", "selectors", "socket")):
        return "python stdlib: " + path.split("/")[0].removesuffix(".py")
    return path.split("/")[0]
