"""BenchConfig refuses inconsistent runs with the field named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aifactory.loadgen.backends import backend_class
from aifactory.shared.workload import BenchConfig, DatasetConfig


def _cfg(**kw: object) -> BenchConfig:
    base: dict[str, object] = {"target": "http://127.0.0.1:8000", "requests": 1}
    base.update(kw)
    return BenchConfig.model_validate(base)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"profile": "poisson"}, "needs 'rate'"),
        ({"profile": "concurrency"}, "needs 'concurrency'"),
        ({"warmup_requests": 2, "warmup_s": 1.0}, "not both"),
        ({"requests": None}, "a run must stop"),
        ({"target": "ftp://x"}, "target"),
        ({"rate": -1}, "rate"),
        ({"concurency": 3}, "concurency"),
        ({"dataset": {"format": "jsonl"}}, "needs a path"),
        ({"dataset": {"path": "x.jsonl"}}, "needs format"),
    ],
)
def test_invalid_configs(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _cfg(**kw)


def test_defaults_and_secret() -> None:
    cfg = _cfg(api_key="sk-secret")
    assert cfg.workers >= 1
    assert "sk-secret" not in cfg.model_dump_json()
    assert isinstance(cfg.dataset, DatasetConfig)


def test_base_url_drops_v1_for_openai_only() -> None:
    assert backend_class("openai_chat").base_url("http://h:1/v1/") == "http://h:1"
    assert backend_class("openai_chat").base_url("http://h:1/p") == "http://h:1/p"
    assert backend_class("ollama_generate").base_url("http://h:1/v1") == "http://h:1/v1"
