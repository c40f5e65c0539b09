"""``forgetbench data-check [overrides]``: what the model will see, before any GPU time is spent.

Composes the same config a run would (any experiment and overrides), reads and checks the stream's
tasks and the eval suite's file tasks exactly as a run's setup does (a run performs the same checks
before it writes anything), and prints per task: the train and held-out sizes, the rows each filter
dropped, token-length percentiles with the model's tokenizer, and three examples rendered as the
model sees them. Loads the tokenizer only, never the weights; trains and scores nothing.
"""

from __future__ import annotations

import sys

import numpy as np
from omegaconf import DictConfig

from forgetbench.assembly import build, load_stream
from forgetbench.data.file_task import token_count
from forgetbench.errors import ForgetbenchError
from forgetbench.preflight import command_line_error, compose_config
from forgetbench.resolvers import register_resolvers
from forgetbench.stream_records import StreamTask

EXAMPLES = 3


def main(argv: list[str]) -> int:
    """Print the check of the config ``argv`` composes; 2 and one line on stderr for bad input."""
    error = command_line_error(argv)
    if error is None:
        try:
            print(check(compose_config(argv)))
            return 0
        except ForgetbenchError as err:
            error = str(err)
    print(f"error: {error}", file=sys.stderr)
    return 2


def check(cfg: DictConfig) -> str:
    """The data-check report of ``cfg``: the stream's tasks, then the eval suite's file tasks."""
    register_resolvers()
    tokenizer = build(cfg.model, "model").load_tokenizer()
    lines = [f"data check of stream={cfg.stream.name}, eval={cfg.eval.name}, tokens by {cfg.model.name}'s tokenizer"]
    for task in load_stream(cfg, tokenizer):
        lines += _stream_task(task, tokenizer)
    for file_task in build(cfg.eval, "eval").file_tasks:
        prepared = file_task.prepare(tokenizer, split=False)
        lines += [
            "",
            f"eval task {file_task.name} (files {file_task.files!r}): {len(prepared.held_out)} rows scored "
            f"as {file_task.scoring}",
            *_dropped(prepared.dropped),
            *_chance(prepared.held_out),
            *_lengths(_scored_pairs(prepared.held_out), tokenizer, "scored rows"),
            *_literal_newlines(_scored_pairs(prepared.held_out)),
            *_examples([(r.prompt, r.response) for r in prepared.examples], tokenizer),
        ]
    return "\n".join(lines)


def _stream_task(task: StreamTask, tokenizer) -> list[str]:
    pairs = list(zip(task.train["prompt"], task.train["response"]))
    held_out = len(task.test_rows) if task.test_rows is not None else "?"
    return [
        "",
        f"stream task {task.name}: {len(task.train)} rows to train on, {held_out} held out "
        f"(scored as {task.scoring.kind})",
        *_dropped(task.dropped),
        *_chance(task.test_rows),
        *_lengths(pairs, tokenizer, "train rows"),
        *_literal_newlines(pairs),
        *_examples(pairs[:EXAMPLES], tokenizer),
    ]


def _literal_newlines(pairs: list[tuple[str, str]]) -> list[str]:
    """A warning when rendered text holds a backslash and an n: a ``\\n`` typed in a shell override
    (or a YAML string in single quotes) stays those two characters, not a line break."""
    count = sum("\\n" in prompt or "\\n" in response for prompt, response in pairs)
    if not count:
        return []
    return [
        f"  WARNING: {count} rows hold a literal backslash-n (\\n), not a line break: in bash write the "
        "override as $'...\\n...' or put the template in a YAML file in double quotes"
    ]


def _scored_pairs(rows) -> list[tuple[str, str]]:
    """(prompt, answer) of held-out rows in either layout: multiple choice or prompt/response."""
    if "choices" in rows.column_names:
        return [(r["question"], r["choices"][r["answer"]]) for r in rows]
    return list(zip(rows["prompt"], rows["response"]))


def _dropped(dropped: dict[str, int]) -> list[str]:
    if not dropped:
        return ["  dropped by filters: none set"]
    return ["  dropped by filters: " + ", ".join(f"{name} {n}" for name, n in dropped.items())]


def _chance(held_out) -> list[str]:
    """Multiple choice: the accuracy of a uniform guess over the held-out rows (1 / choices, averaged)."""
    if held_out is None or "choices" not in held_out.column_names:
        return []
    chance = np.mean([1 / len(choices) for choices in held_out["choices"]])
    return [f"  chance accuracy on the held-out rows (1 / choices, mean): {chance:.3f}"]


def _lengths(pairs: list[tuple[str, str]], tokenizer, what: str) -> list[str]:
    """p50, p95 and max of prompt + response tokens (as training counts them: with the EOS)."""
    if not pairs:
        return [f"  tokens per example: no {what}"]
    counts = np.array([token_count(tokenizer, p, r) for p, r in pairs])
    p50, p95 = np.percentile(counts, [50, 95])
    stats = f"p50 {p50:.0f}, p95 {p95:.0f}, max {counts.max()}"
    return [f"  tokens per example (prompt + response + EOS, {len(counts)} {what}): {stats}"]


def _examples(pairs: list[tuple[str, str]], tokenizer) -> list[str]:
    lines = []
    for index, (prompt, response) in enumerate(pairs[:EXAMPLES], start=1):
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        n_response = token_count(tokenizer, prompt, response) - n_prompt
        lines += [
            f"  example {index} ({n_prompt} prompt tokens | {n_response} response tokens with EOS):",
            *(f"    {line}" for line in prompt.splitlines() or [""]),
            f"    | {response}",
        ]
    return lines
