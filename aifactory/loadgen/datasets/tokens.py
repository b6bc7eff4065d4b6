"""Token counting without a tokenizer download.

A deterministic estimate stands in when the server sends no usage: ASCII words count one
token up to 7 letters and one more per further 5 letters, digits count in groups of three
(as tiktoken/Llama-3 split them), and every other non-space character (punctuation, CJK,
accented letters) counts one. It is labelled ``estimate`` wherever it is used, never passed
off as a tokenizer count. A real tokenizer can be plugged in through :class:`TokenCounter`.
"""

from __future__ import annotations

import re
from typing import Protocol

from aifactory.shared.results import TokenSource

_PIECES = re.compile(r"[A-Za-z]+|[0-9]{1,3}|[^\sA-Za-z0-9]")


class TokenCounter(Protocol):
    """Counts tokens in a text; ``source`` says how far to trust the number."""

    source: TokenSource

    def count(self, text: str) -> int: ...


class EstimateTokenCounter:
    """The built-in deterministic estimate (see module docstring)."""

    source: TokenSource = TokenSource.ESTIMATE

    def count(self, text: str) -> int:
        total = 0
        for piece in _PIECES.findall(text):
            n = len(piece)
            if n > 7 and piece[0].isascii() and piece[0].isalpha():
                total += 1 + (n - 7 + 4) // 5
            else:
                total += 1
        return total
