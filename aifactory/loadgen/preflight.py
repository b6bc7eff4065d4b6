"""Pre-flight of LLM generation backends: prove the target answers before any load.

(``aifactory.loadgen.drivers.preflight`` picks the pre-flight of the backend's kind.) A run
against a wrong port or the wrong backend must fail in a second with a message saying
what to fix, not produce a results directory full of ``connection_refused``. Steps: list the
models (also resolves ``model`` when not given), then one 1-token generation through the very
HTTP client, backend and parser the run will use.
"""

from __future__ import annotations

import orjson

from aifactory.loadgen.backends import GenerationBackend
from aifactory.loadgen.datasets.base import Prompt
from aifactory.loadgen.errors import (
    InvalidResponseError,
    PreflightError,
    ServerStreamError,
    StreamCutError,
)
from aifactory.loadgen.transport import ConnectionLostError, HttpClient, HttpProtocolError
from aifactory.shared.workload import BenchConfig

PREFLIGHT_TIMEOUT_S = 30.0
#: A server with a (simulated or real) error rate may fail one probe; 5 failures in a row
#: of the retryable kinds (HTTP 5xx, cut or erroring stream) are not bad luck.
PROBE_ATTEMPTS = 5


class _RetryableError(Exception):
    """A probe failure that another attempt may not repeat."""


def _unreachable(url: str, exc: BaseException) -> PreflightError:
    if isinstance(exc, TimeoutError):
        return PreflightError(f"cannot reach {url}: no answer within {PREFLIGHT_TIMEOUT_S:.0f}s")
    if isinstance(exc, ConnectionRefusedError):
        return PreflightError(f"cannot reach {url}: connection refused (is the service up?)")
    return PreflightError(f"cannot reach {url}: {exc}")


async def _list_models(client: HttpClient, cls: type[GenerationBackend], hint: str) -> list[str]:
    url = client.url(cls.models_path)
    try:
        resp = await client.request(client.get_payload(cls.models_path))
    except (OSError, TimeoutError, ConnectionLostError, HttpProtocolError) as exc:
        raise _unreachable(url, exc) from exc
    text = resp.body[:200].decode("utf-8", "replace").strip()
    if resp.status != 200:
        raise PreflightError(f"{url} answered HTTP {resp.status}: {text} {hint}")
    try:
        listing = orjson.loads(resp.body)
        if not isinstance(listing, dict):
            raise InvalidResponseError("not a JSON object")
        return cls.model_names(listing)
    except (orjson.JSONDecodeError, InvalidResponseError) as exc:
        raise PreflightError(f"{url}: malformed model list ({exc}): {text!r} {hint}") from exc


async def _probe_once(client: HttpClient, backend: GenerationBackend, hint: str) -> None:
    url = client.url(backend.path)
    body = backend.body(Prompt(index=0, text="Hello", prompt_tokens=1, output_tokens=1), 1)
    payload = HttpClient.post_payload(client.post_head(backend.path), body)
    parser = backend.parser() if backend.stream else None
    try:
        resp = await client.request(payload, parser)
    except ConnectionLostError as exc:
        if exc.got_bytes:
            raise _RetryableError(f"{url}: response cut short: {exc}") from exc
        raise _unreachable(url, exc) from exc
    except (OSError, TimeoutError, HttpProtocolError) as exc:
        raise _unreachable(url, exc) from exc
    except (StreamCutError, ServerStreamError) as exc:
        raise _RetryableError(f"{url} gave a broken response: {exc} {hint}") from exc
    except InvalidResponseError as exc:
        raise PreflightError(f"{url} gave a malformed response: {exc} {hint}") from exc
    if resp.status != 200:
        text = resp.body[:300].decode("utf-8", "replace").strip()
        message = f"{url} answered HTTP {resp.status}: {text} {hint}"
        if resp.status >= 500:
            raise _RetryableError(message)
        raise PreflightError(message)
    try:
        if parser is not None:
            parser.finish(resp.end_ns)
        else:
            backend.parse_body(resp.body, resp.end_ns)
    except StreamCutError as exc:
        raise _RetryableError(f"{url} gave a broken response: {exc} {hint}") from exc
    except (InvalidResponseError, ServerStreamError) as exc:
        raise PreflightError(f"{url} gave a malformed response: {exc} {hint}") from exc


async def _probe(client: HttpClient, backend: GenerationBackend, hint: str) -> None:
    """A 1-token generation must succeed within :data:`PROBE_ATTEMPTS` tries."""
    last = ""
    for _ in range(PROBE_ATTEMPTS):
        try:
            await _probe_once(client, backend, hint)
        except _RetryableError as exc:
            last = str(exc)
            continue
        return
    raise PreflightError(f"{last} ({PROBE_ATTEMPTS} attempts)")


async def generation_preflight(config: BenchConfig, cls: type[GenerationBackend]) -> BenchConfig:
    """Check the target; return the config with ``model`` resolved. Raises PreflightError."""
    api_key = config.api_key.get_secret_value() if config.api_key else None
    hint = f"(is --backend {config.backend} right for this target?)"
    model = config.model
    # Every endpoint must answer before the load starts: a dead replica would otherwise be
    # found out as a share of failed requests.
    for url in config.targets:
        base = cls.base_url(url)
        async with HttpClient(base, timeout_s=PREFLIGHT_TIMEOUT_S, api_key=api_key) as client:
            if model is None:
                names = await _list_models(client, cls, hint)
                if not names:
                    where = client.url(cls.models_path)
                    raise PreflightError(f"{where} lists no models; pass --model")
                model = names[0]
            backend = cls(
                model,
                stream=config.stream,
                ignore_eos=config.ignore_eos,
                extra_body=dict(config.extra_body),
            )
            await _probe(client, backend, hint)
    return config.model_copy(update={"model": model})
