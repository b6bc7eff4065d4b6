"""Workload sources: synthetic prompts, JSONL and ShareGPT files."""

from __future__ import annotations

from aifactory.loadgen.datasets.base import Prompt, PromptSource
from aifactory.loadgen.datasets.files import FilePrompts, load_jsonl, load_sharegpt
from aifactory.loadgen.datasets.synthetic import SyntheticPrompts
from aifactory.loadgen.datasets.tokens import EstimateTokenCounter, TokenCounter
from aifactory.shared.workload import DatasetConfig, DatasetFormat

__all__ = [
    "EstimateTokenCounter",
    "FilePrompts",
    "Prompt",
    "PromptSource",
    "SyntheticPrompts",
    "TokenCounter",
    "load_jsonl",
    "load_sharegpt",
    "make_prompt_source",
    "validate_dataset",
]


def _entries(cfg: DatasetConfig) -> list[tuple[str, int | None]]:
    assert cfg.path is not None
    if cfg.format is DatasetFormat.JSONL:
        return load_jsonl(cfg.path)
    return load_sharegpt(cfg.path)[0]


def validate_dataset(cfg: DatasetConfig) -> None:
    """Read the workload file once in the parent so a bad file fails before any worker starts."""
    if cfg.format is not DatasetFormat.SYNTHETIC:
        _entries(cfg)


def make_prompt_source(
    cfg: DatasetConfig, *, seed: int, worker_id: int, n_workers: int
) -> PromptSource:
    if cfg.format is DatasetFormat.SYNTHETIC:
        return SyntheticPrompts(cfg.input_tokens, cfg.output_tokens, seed=seed, worker_id=worker_id)
    return FilePrompts(
        _entries(cfg), cfg.output_tokens, seed=seed, worker_id=worker_id, n_workers=n_workers
    )
