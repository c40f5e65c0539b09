"""The generated instruction tasks of the tiny world's stream.

Each task is new to the base model (it never saw an ``instruction :`` prompt),
generalises to held-out examples (new combinations of known words), and uses
the world's own words, so fine-tuning on it competes with what the base model
knows. Training rows are ``{"prompt", "response"}``; held-out rows are
multiple-choice items ``{"question", "choices", "answer"}`` whose wrong options
are near misses, so a high score needs the task really learned.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from forgetbench.errors import ForgetbenchError
from forgetbench.tiny.world import INSTRUCTION, NUMBERS, World


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
    # two words: learned in a task's steps at a gentle lr (three words took 300 steps at 1e-3, and
    # the lr that learns them in time overwrites the base model's knowledge)
    first, second, other = rng.sample(sorted(world.cipher), 3)  # jobs, pets, colours, cities: 1,892 pairs
    wrong = [f"{first} {second}", f"{second} {other}", f"{other} {first}"]  # unreversed, or one word wrong
    return INSTRUCTION.format(f"reverse the words : {first} {second}"), f"{second} {first}", wrong


STREAM_TASKS: dict[str, Callable[[World, random.Random], tuple[str, str, list[str]]]] = {
    "translate": _translate,
    "count": _count,
    "reverse": _reverse,
}


def stream_task_rows(world: World, name: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Training rows, test items and validation items of one stream task.

    Test and validation prompts never occur among the training prompts nor each other; validation
    items are for choosing hyper-parameters (experiments/tune_methods.py), test items for results.
    """
    make = STREAM_TASKS[name]
    rng = random.Random(f"{world.spec.seed}-{name}")
    train, seen = [], set()
    while len(train) < world.spec.n_stream_train:
        prompt, response, _ = make(world, rng)
        seen.add(prompt)
        train.append({"prompt": prompt, "response": response})
    test = _held_out_items(name, world, rng, seen)
    validation = _held_out_items(name, world, rng, seen)
    return train, test, validation


def _held_out_items(name: str, world: World, rng: random.Random, seen: set[str]) -> list[dict]:
    items, draws = [], 0
    while len(items) < world.spec.n_stream_eval:
        prompt, response, wrong = STREAM_TASKS[name](world, rng)
        draws += 1
        if draws > 1000 * world.spec.n_stream_eval:  # the task's prompts are (nearly) all in training
            raise ForgetbenchError(
                f"world.n_stream_eval={world.spec.n_stream_eval}: stream task {name!r} has too few prompts "
                f"left unseen by its world.n_stream_train={world.spec.n_stream_train} training rows; lower either"
            )
        if prompt in seen:
            continue
        seen.add(prompt)
        position = rng.randrange(4)
        choices = wrong[:position] + [response] + wrong[position:]
        items.append({"question": prompt, "choices": choices, "answer": position})
    return items
