"""Workloads: seeded synthetic prompts, and file errors that name the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aifactory.loadgen.datasets import (
    EstimateTokenCounter,
    SyntheticPrompts,
    load_jsonl,
    load_sharegpt,
    make_prompt_source,
    validate_dataset,
)
from aifactory.loadgen.errors import DatasetError
from aifactory.shared.workload import DatasetConfig, DatasetFormat, TokenDistribution


def test_synthetic_is_seeded_bounded_and_counts_match() -> None:
    inp = TokenDistribution(mean=100, std=30, min=50, max=140)
    out = TokenDistribution(mean=20, std=5, min=10, max=30)
    a = SyntheticPrompts(inp, out, seed=1, worker_id=0)
    b = SyntheticPrompts(inp, out, seed=1, worker_id=0)
    c = SyntheticPrompts(inp, out, seed=1, worker_id=1)
    pa = [a.next() for _ in range(300)]
    assert pa == [b.next() for _ in range(300)]
    assert [p.text for p in pa[:5]] != [c.next().text for _ in range(5)]
    counter = EstimateTokenCounter()
    assert all(50 <= p.prompt_tokens <= 140 and 10 <= p.output_tokens <= 30 for p in pa)
    assert all(counter.count(p.text) == p.prompt_tokens for p in pa)
    mean_in = sum(p.prompt_tokens for p in pa) / len(pa)
    assert 90 < mean_in < 105  # clipped normal around 100
    assert len({p.prompt_tokens for p in pa}) > 20
    assert [p.index for p in pa[:3]] == [0, 1, 2]


def test_fixed_lengths_when_std_zero() -> None:
    src = SyntheticPrompts(TokenDistribution(mean=8), TokenDistribution(mean=3), seed=0)
    assert {(p.prompt_tokens, p.output_tokens) for p in (src.next() for _ in range(20))} == {(8, 3)}


def test_distribution_bounds_are_validated() -> None:
    with pytest.raises(ValueError, match="min <= mean <= max"):
        TokenDistribution(mean=10, min=20)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_jsonl_good_file_and_worker_striding(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "p.jsonl",
        '{"prompt": "a b", "output_tokens": 5}\n\n{"prompt": "c", "id": 7}\n{"prompt": "d e f"}\n',
    )
    assert load_jsonl(path) == [("a b", 5), ("c", None), ("d e f", None)]
    cfg = DatasetConfig(
        format=DatasetFormat.JSONL, path=path, output_tokens=TokenDistribution(mean=9)
    )
    w1 = make_prompt_source(cfg, seed=0, worker_id=1, n_workers=2)
    got = [w1.next() for _ in range(3)]
    # Stride 2 over 3 entries: each worker starts on its own entry, then wraps.
    assert [(p.index, p.text, p.output_tokens) for p in got] == [
        (1, "c", 9),
        (0, "a b", 5),
        (2, "d e f", 9),
    ]
    w0 = make_prompt_source(cfg, seed=0, worker_id=0, n_workers=2)
    assert [w0.next().index for _ in range(3)] == [0, 2, 1]


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        ('{"prompt": "a"}\n{"prompt": "b", "output_tokens": 0}\n', 2, "output_tokens", "greater"),
        ('{"prompt": "a"}\n{"prompt": "a"}\n{"text": "b"}\n', 3, "prompt", "required"),
        ('{"prompt": "a", "output_token": 3}\n', 1, "output_token", "valid fields"),
        ('{"prompt": 5}\n', 1, "prompt", "string"),
        ('{"prompt": "a"}\n{"prompt": "b",\n', 2, None, "invalid JSON"),
        ("[1, 2]\n", 1, None, "object per line"),
    ],
)
def test_jsonl_errors_name_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, problem: str
) -> None:
    path = _write(tmp_path, "bad.jsonl", text)
    with pytest.raises(DatasetError) as info:
        load_jsonl(path)
    err = info.value
    assert (err.line, err.field) == (line, field)
    assert problem in str(err)
    assert str(err).startswith(f"{path}:{line}: ")


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="file not found"):
        load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="no prompts"):
        load_jsonl(_write(tmp_path, "e.jsonl", "\n\n"))
    cfg = DatasetConfig(format=DatasetFormat.JSONL, path=tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="file not found"):
        validate_dataset(cfg)


SHAREGPT = [
    {
        "id": "a",
        "conversations": [
            {"from": "human", "value": "Why?"},
            {"from": "gpt", "value": "Because it is so."},
        ],
    },
    {"id": "b", "conversations": []},
    {
        "id": "c",
        "conversations": [{"from": "system", "value": "x"}, {"from": "human", "value": "Hi"}],
    },
]


def test_sharegpt_prompts_reply_lengths_and_skips(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.json", json.dumps(SHAREGPT, indent=2))
    entries, skipped = load_sharegpt(path)
    assert entries == [("Why?", 5), ("Hi", None)]
    assert skipped == 1


def test_sharegpt_error_names_the_entry_line_and_field(tmp_path: Path) -> None:
    bad = [*SHAREGPT, {"id": "d", "conversations": [{"from": "human", "value": 3}]}]
    text = json.dumps(bad, indent=2)
    path = _write(tmp_path, "s.json", text)
    lines = text.splitlines()
    entry_line = max(i for i, ln in enumerate(lines) if ln == "  {") + 1
    with pytest.raises(DatasetError) as info:
        load_sharegpt(path)
    assert info.value.line == entry_line
    assert info.value.field == "conversations.0.value"
    path = _write(
        tmp_path, "t.json", '[\n {"conversations": [{"from": "human", "value": "a"}]}\n {"x": 1}\n]'
    )
    with pytest.raises(DatasetError, match=r"t.json:3: expected ','"):
        load_sharegpt(path)
    path = _write(tmp_path, "u.json", '{"conversations": []}')
    with pytest.raises(DatasetError, match="expected a JSON array"):
        load_sharegpt(path)


def test_estimate_is_deterministic_and_plausible() -> None:
    c = EstimateTokenCounter()
    assert c.count("") == 0
    assert c.count("the cat sat") == 3
    assert c.count("internationalization") == 1 + (20 - 7 + 4) // 5
    assert c.count("12345, ok!") == 5  # 123 | 45 | , | ok | !
    assert c.count("東京") == 2
    assert c.source.value == "estimate"
