"""How a tiny base model's pretraining corpus is turned into (prompt, response) pairs.

The corpus is pairs already (a statement cut at its fact, a routine cut at its next step, a passage
and its question cut at the answer). A decoder trains on each pair joined (loss on every token), so it
learns the whole text; an encoder-decoder learns only to write the response from the prompt. The other
objectives add, for every document, one more pair made from its whole text, as T5 and BART pretrain:

- ``prefix_lm``: the text cut at a random word, the rest to be written (T5's prefix language modelling);
- ``denoise``: the text with a random span of one to three words deleted and two neighbouring words
  swapped, the whole text to be written (the deletion and local shuffle noise of BART and of Lample et
  al. 2018's denoising auto-encoder): the decoder learns to copy from the encoder, to restore what is
  missing and to put words back in order.
"""

from __future__ import annotations

import random
from typing import Literal

Objective = Literal["pairs", "prefix_lm", "denoise"]


def pretraining_pairs(docs: list[dict[str, str]], objective: Objective, seed: int) -> list[dict[str, str]]:
    """The corpus's pairs plus, unless ``objective`` is "pairs", one pair per document made by it."""
    if objective == "pairs":
        return docs
    rng = random.Random(seed)
    extra = []
    for doc in docs:
        words = f"{doc['prompt']} {doc['response']}".split()
        if objective == "prefix_lm":
            cut = rng.randrange(1, len(words))
            extra.append({"prompt": " ".join(words[:cut]), "response": " ".join(words[cut:])})
        else:
            extra.append({"prompt": " ".join(_noised(words, rng)), "response": " ".join(words)})
    mixed = docs + extra
    rng.shuffle(mixed)
    return mixed


def _noised(words: list[str], rng: random.Random) -> list[str]:
    """``words`` less a random span of one to three, then with one random pair of neighbours swapped."""
    length = min(rng.randint(1, 3), len(words) - 1)
    start = rng.randrange(0, len(words) - length + 1)
    kept = words[:start] + words[start + length :]
    if len(kept) > 1:
        i = rng.randrange(len(kept) - 1)
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return kept
