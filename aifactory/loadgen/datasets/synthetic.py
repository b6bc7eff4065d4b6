"""Synthetic prompts with seeded input/output token-length distributions.

Prompts are random sequences of short common English words, each one token for common BPE
tokenizers and for the built-in estimate, so the requested input length is what the server
sees (to within the chat template). Random words also defeat prefix caching, which would
otherwise make later requests unrealistically cheap.
"""

from __future__ import annotations

import random

from aifactory.loadgen.datasets.base import Prompt
from aifactory.shared.workload import TokenDistribution

_TEXT = (
    "the of and to in is you that it he was for on are as with his they at be this have "
    "from or one had by word but not what all were we when your can said there use an each "
    "which she do how their if will up other about out many then them these so some her "
    "would make like him into time has look two more write go see number no way could people "
    "my than first water been call who oil its now find long down day did get come made may "
    "part over new sound take only little work know place year live me back give most very "
    "after thing our just name good man think say great where help through much before line "
    "right too mean old any same tell boy follow came want show also around form three small"
)
_WORDS: tuple[str, ...] = tuple(_TEXT.split())


def sample_length(rng: random.Random, dist: TokenDistribution) -> int:
    """normal(mean, std), rounded, clipped to [min, max]; exactly ``mean`` when std is 0."""
    value = dist.mean if dist.std == 0 else round(rng.gauss(dist.mean, dist.std))
    return max(dist.low, min(dist.high, value))


class SyntheticPrompts:
    """Endless seeded prompts; distinct workers get distinct, reproducible streams."""

    def __init__(
        self,
        input_tokens: TokenDistribution,
        output_tokens: TokenDistribution,
        *,
        seed: int,
        worker_id: int = 0,
    ) -> None:
        self._input = input_tokens
        self._output = output_tokens
        self._rng = random.Random(f"synthetic:{seed}:{worker_id}")
        self._index = 0

    def next(self) -> Prompt:
        n_in = sample_length(self._rng, self._input)
        n_out = sample_length(self._rng, self._output)
        text = " ".join(self._rng.choices(_WORDS, k=n_in))
        prompt = Prompt(index=self._index, text=text, prompt_tokens=n_in, output_tokens=n_out)
        self._index += 1
        return prompt
