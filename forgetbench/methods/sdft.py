"""Self-distillation fine-tuning (Yang et al. 2024, "Self-Distillation Bridges Distribution Gap in
Language Model Fine-Tuning"): before a task trains, the model as it is then rewrites each training
response in its own words, given the prompt and the reference response, and trains on its rewrite.

The rewrite prompt is ``template`` filled with the row's ``prompt`` and ``response`` (through the
model's chat template when one is in force), continued greedily by the evaluation engine's generation
(``forgetbench.evaluation.generate``), up to ``max_new_tokens`` and the first newline. As in the paper,
a rewrite is kept only when it still gives the reference answer (``keep: containing``: it contains the
reference response); otherwise the row keeps its reference (``keep: all`` keeps every rewrite). The
task's rewrites are kept in the method's state, so a task resumed from a mid-task checkpoint trains on
the same rows. Extra time: one greedy generation per training row, before each task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from datasets import Dataset

from forgetbench.evaluation.generate import generate_greedily
from forgetbench.methods.base import Method, TaskContext
from forgetbench.streams.base import training_rows
from forgetbench.validation import Positive

log = logging.getLogger(__name__)


@dataclass
class SDFT(Method):
    """Attributes:
    template: the rewrite prompt, with ``{prompt}`` and ``{response}`` (the reference).
    max_new_tokens: longest rewrite, in tokens.
    keep: containing (a rewrite that still contains the reference response; else the reference) | all.
    token_budget: tokens through the model per generation batch.
    """

    name: str = "sdft"
    template: str = "{prompt} {response}\nIn other words: {prompt}"
    max_new_tokens: Positive = 64
    keep: Literal["containing", "all"] = "containing"
    token_budget: Positive = 16384
    _rewritten: dict = field(default_factory=dict, init=False, repr=False)  # {"step": k, "rows": [...]}

    def training_examples(self, ctx: TaskContext) -> Dataset:
        if self._rewritten.get("step") != ctx.step:  # not resumed inside this task: rewrite it now
            self._rewritten = {"step": ctx.step, "rows": self.rewrite(ctx)}
        return Dataset.from_list(self._rewritten["rows"])

    def rewrite(self, ctx: TaskContext) -> list[dict]:
        """The task's rows with each response replaced by the model's rewrite (where it is kept)."""
        rows = training_rows(ctx.examples)
        prompts = [self._prompt(ctx.tokenizer, row) for row in rows]
        outputs = generate_greedily(ctx.model, ctx.tokenizer, prompts, ["\n"], self.max_new_tokens, self.token_budget)
        kept = 0
        for row, output in zip(rows, outputs, strict=True):
            text = output.strip()
            if text and (self.keep == "all" or row["response"].strip() in text):
                row["response"] = text
                kept += 1
        log.info(f"sdft: {kept} of {len(rows)} responses of {ctx.task_name} rewritten by the model (keep={self.keep})")
        return rows

    def _prompt(self, tokenizer, row: dict) -> str:
        text = self.template.format(prompt=row["prompt"], response=row["response"])
        if getattr(tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": text}]
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text

    def after_task(self, ctx: TaskContext) -> None:
        self._rewritten = {}

    def state_dict(self) -> dict:
        return {"rewritten": self._rewritten}

    def load_state_dict(self, state: dict) -> None:
        self._rewritten = dict(state["rewritten"])
