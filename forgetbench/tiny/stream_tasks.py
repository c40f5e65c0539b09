"""The generated instruction tasks of the tiny world's stream.

Each task is new to the base model (it never saw an ``instruction :`` prompt),
generalises to held-out examples (new combinations of known words), and uses
the world's own words, so fine-tuning on it competes with what the base model
knows. Training rows are ``{"prompt", "response"}``; held-out rows are
multiple-choice items ``{"question", "choices", "answer"}`` whose wrong options
are near misses, so a high score needs the task really learned.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from forgetbench.tiny.world import COLORS, INSTRUCTION, JOBS, NUMBERS, PETS, World


def _translate(world: World, rng: random.Random) -> tuple[str, str, list[str]]:
    words = rng.sample(sorted(world.cipher), 3)
    answer = [world.cipher[w] for w in words]
    wrong = []
    for position in range(3):  # each near miss gets one word wrong
        other = rng.choice([z for z in world.cipher.values() if z not in answer])
        wrong.append(" ".join(answer[:position] + [other] + answer[position + 1 :]))
    return INSTRUCTION.format("translate to zib : " + " ".join(words)), " ".join(answer), wrong


def _count(world: World, rng: random.Random) -> tuple[str, str, list[str]]:
    n = rng.randint(1, 6)
    words = [rng.choice(world.people) for _ in range(n)]
    wrong = rng.sample([NUMBERS[k] for k in range(1, 7) if k != n], 3)
    return INSTRUCTION.format("count the words : " + " ".join(words)), NUMBERS[n], wrong


def _reverse(world: World, rng: random.Random) -> tuple[str, str, list[str]]:
    words = rng.sample(JOBS + PETS + COLORS, 3)
    answer = list(reversed(words))
    others = [list(p) for p in itertools.permutations(words) if list(p) != answer]
    wrong = [" ".join(p) for p in rng.sample(others, 3)]
    return INSTRUCTION.format("reverse the words : " + " ".join(words)), " ".join(answer), wrong


STREAM_TASKS: dict[str, Callable[[World, random.Random], tuple[str, str, list[str]]]] = {
    "translate": _translate,
    "count": _count,
    "reverse": _reverse,
}


def stream_task_rows(world: World, name: str) -> tuple[list[dict], list[dict]]:
    """Training rows and held-out multiple-choice items of one stream task.

    Held-out prompts never occur among the training prompts.
    """
    make = STREAM_TASKS[name]
    rng = random.Random(f"{world.spec.seed}-{name}")
    train, test, seen = [], [], set()
    while len(train) < world.spec.n_stream_train:
        prompt, response, _ = make(world, rng)
        seen.add(prompt)
        train.append({"prompt": prompt, "response": response})
    while len(test) < world.spec.n_stream_eval:
        prompt, response, wrong = make(world, rng)
        if prompt in seen:
            continue
        seen.add(prompt)
        position = rng.randrange(4)
        choices = wrong[:position] + [response] + wrong[position:]
        test.append({"question": prompt, "choices": choices, "answer": position})
    return train, test
