"""Ollama's ``POST /api/pull``: the NDJSON progress stream a real server sends while it
downloads a model, so job scripts that pull models before a service is ready run for real.

A pull takes a few short steps (manifest, layers with ``total``/``completed``, verify,
write, ``success``); a model whose name starts with ``missing`` fails the way Ollama fails
for a name the registry does not know (``{"error": "pull model manifest: file does not
exist"}`` inside the stream). Pulled models are listed by ``/api/tags`` afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import orjson

from aifactory.simulator.http import Connection, HttpRequest

NDJSON = b"application/x-ndjson"
#: Seconds between two progress lines (a real pull takes minutes; tests should not).
STEP_S = 0.02
LAYER_BYTES = 4_000_000


class PullError(ValueError):
    """A pull request that cannot be served (bad body); answered with Ollama's 400."""


def pull_steps(model: str) -> list[dict[str, object]]:
    """The progress lines of one pull, in order."""
    if model.startswith("missing"):
        return [
            {"status": "pulling manifest"},
            {"error": "pull model manifest: file does not exist"},
        ]
    digest = "sha256:" + hashlib.sha256(model.encode()).hexdigest()
    short = digest.removeprefix("sha256:")[:12]
    steps: list[dict[str, object]] = [{"status": "pulling manifest"}]
    for done in (0, LAYER_BYTES // 4, LAYER_BYTES // 2, LAYER_BYTES):
        steps.append(
            {
                "status": f"pulling {short}",
                "digest": digest,
                "total": LAYER_BYTES,
                "completed": done,
            }
        )
    steps += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}]
    steps.append({"status": "success"})
    return steps


def parse_pull(body: bytes) -> str:
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise PullError(f"invalid JSON body: {exc}") from exc
    model = data.get("model") or data.get("name") if isinstance(data, dict) else None
    if not isinstance(model, str) or not model:
        raise PullError("model is required")
    return model


def serve_pull(conn: Connection, req: HttpRequest, on_pulled: Callable[[str], None]) -> None:
    """Stream the pull's progress on ``conn``; ``on_pulled`` learns a model that arrived."""
    try:
        model = parse_pull(req.body)
    except PullError as exc:
        conn.respond(400, b"application/json", orjson.dumps({"error": str(exc)}))
        return
    steps = pull_steps(model)
    conn.start_stream(NDJSON)
    loop = asyncio.get_running_loop()

    def step(i: int) -> None:
        line = orjson.dumps(steps[i]) + b"\n"
        last = i == len(steps) - 1
        conn.send(line, last=last)
        if last:
            if steps[i].get("status") == "success":
                on_pulled(model)
            return
        loop.call_later(STEP_S, step, i + 1)

    step(0)
