"""Cheap deterministic tokenizer estimate and the seeded vocabulary the simulator "generates".

A real tokenizer would cost more than the rest of a request; benchmarks only need a count that
is stable, roughly proportional to text length and consistent between what the server reports
in ``usage`` and what a client counts by re-tokenizing the text. Every generated token is one
alphabetic word, so re-counting the generated text with :func:`count_tokens` gives exactly the
reported ``completion_tokens``.
"""

from __future__ import annotations

import random
import re
import zlib

import orjson

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")

_ONSETS = ("b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
_CODAS = ("", "n", "r", "s", "l", "th", "nd", "st")


def count_tokens(text: str) -> int:
    """Estimate tokens as runs of word characters plus each punctuation mark."""
    return len(_TOKEN_RE.findall(text))


def count_token_ids(ids: list[int]) -> int:
    """Pre-tokenized prompts (OpenAI allows lists of token ids) count one token per id."""
    return len(ids)


def prompt_key(text: str) -> int:
    """Stable (process-independent) hash of a prompt: same prompt, same seed, same answer."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


class Vocabulary:
    """A seeded list of pronounceable words with their JSON encodings pre-built.

    Pre-encoding every word once is what keeps the streaming hot path free of JSON encoding:
    a chunk is a concatenation of constant byte templates and one of these entries.
    """

    __slots__ = ("json_first", "json_next", "size", "words")

    def __init__(self, seed: int, size: int = 512) -> None:
        rng = random.Random(seed)
        words: set[str] = set()
        while len(words) < size:
            syllables = rng.randint(1, 3)
            words.add(
                "".join(
                    rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                    for _ in range(syllables)
                )
            )
        ordered = sorted(words)
        rng.shuffle(ordered)
        self.words: tuple[str, ...] = tuple(ordered)
        self.size = size
        # Token 0 carries no leading space (like a detokenized first word); later ones do.
        self.json_first: tuple[bytes, ...] = tuple(orjson.dumps(w) for w in ordered)
        self.json_next: tuple[bytes, ...] = tuple(orjson.dumps(" " + w) for w in ordered)

    def index(self, key: int, i: int) -> int:
        """Vocabulary index of token ``i`` of the answer to a prompt with hash ``key``."""
        return (key + i) % self.size

    def token_json(self, key: int, i: int) -> bytes:
        """JSON string literal (with quotes) of token ``i``."""
        idx = (key + i) % self.size
        return self.json_next[idx] if i else self.json_first[idx]

    def token_text(self, key: int, i: int) -> str:
        word = self.words[(key + i) % self.size]
        return " " + word if i else word

    def text(self, key: int, start: int, end: int) -> str:
        """Concatenated text of tokens ``start`` .. ``end - 1``."""
        return "".join(self.token_text(key, i) for i in range(start, end))
