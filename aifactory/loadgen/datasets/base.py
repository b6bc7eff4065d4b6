"""The prompt a request sends, and the interface every workload source implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Prompt:
    """One workload item.

    ``prompt_tokens`` is the built-in estimate (the server's usage replaces it when sent);
    ``output_tokens`` is the requested generation length (``max_tokens``/``num_predict``).
    """

    index: int
    text: str
    prompt_tokens: int
    output_tokens: int


class PromptSource(Protocol):
    """An endless, deterministic sequence of prompts for one worker."""

    def next(self) -> Prompt: ...
