"""Eval suites: which lm-eval tasks measure general ability (the ``eval`` config group)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from forgetbench.data.file_task import FileTask, file_tasks
from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.task_configs import TASKS_DIR
from forgetbench.validation import HASHED_WHEN_SET, UNHASHED, NonNegative, Positive, check_fields


@dataclass
class EvalSuite:
    """A general-ability suite.

    Attributes:
        name: the suite's name.
        tasks: lm-eval task or group names; an entry may be a dict
            ``{task: NAME, num_fewshot: K, limit: N}`` to set its shots or its items (per subtask).
        num_fewshot: shots for entries that do not set their own (null: the task's default).
        limit: items per task (null: all); for smoke runs.
        engine: what answers lm-eval's requests: ``fast`` (forgetbench's engine: requests built
            once per run, shared contexts, token-budget batches) or ``lm_eval`` (lm-eval's HF
            backend as it is). Both score the same items with the same prompts and metrics.
        token_budget: the fast engine's tokens through the model per batch (halved on
            out-of-memory; results do not depend on it).
        batch_size: lm-eval's HF backend's batch size (``engine: lm_eval``; it also sets the
            size of HFLM's rolling-window batches under the fast engine).
        include_path: extra folders of task YAMLs (a suite built by a factory, such as the tiny
            world's, puts its own generated tasks here).
        categories: category -> task names, for per-category forgetting (a task's
            subtasks, e.g. mmlu_*, belong to its category). Category "bias" is
            reported as a change in bias, never as forgetting.
        mirror: a folder of local Hub copies (see :mod:`forgetbench.hub_mirror`): the tasks'
            data sets are read from it when it holds them.
        files: tasks from a user's own table files, scored beside ``tasks``: one mapping per task
            with :class:`~forgetbench.data.file_task.FileTask`'s fields (every row is scored; nothing
            is held out for training). A domain's own benchmark sits beside MMLU this way.
        apply_chat_template: render every prompt through the model's chat template (lm-eval's
            ``apply_chat_template``); null: when the model has one in force (``model.chat_template``).
            True with ``model.chat_template=none`` evaluates through the tokenizer's own template a
            model fine-tuned on plain text.
        fewshot_as_multiturn: few-shot examples as earlier user/assistant turns (lm-eval's
            ``fewshot_as_multiturn``); null: as ``apply_chat_template``.
        turn_end: score task ``turn_end`` on this many items (0: not at all): whether the model
            ends its turn after a right answer (on the shipped MMLU items, spread over the subjects:
            the question as the prompt, "The answer is <right
            choice>." as the response; acc = the end-of-turn token, EOS, is the greedy next token,
            perplexity = 1 / its geometric-mean probability; through the chat template when one is
            applied): a format kept or lost.
        system_instruction: a system turn before every prompt (lm-eval's ``system_instruction``;
            plain text puts it first); null: none.
        every_steps: also evaluate inside each task, every this many optimizer steps (null: only at
            task boundaries); the rows go to ``inside_task.parquet`` with the optimizer step.
        at_steps: also evaluate inside each task after these optimizer steps (with or without
            ``every_steps``); a step at or past the task's last is left to the boundary evaluation.
        inside_task_tasks: what is scored inside a task: names of the suite's tasks or of stream
            tasks (null: the suite's general tasks).
        inside_task_limit: items per task inside a task (null: all; the boundary evaluations
            keep ``limit``).
    """

    name: str
    tasks: list
    num_fewshot: NonNegative | None = None
    limit: Positive | None = None
    engine: Literal["fast", "lm_eval"] = "fast"
    token_budget: Positive = field(default=16384, metadata=UNHASHED)  # results do not depend on it
    batch_size: Positive = 64
    include_path: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)
    mirror: str | None = None
    files: list[dict] = field(default_factory=list)
    apply_chat_template: bool | None = None
    fewshot_as_multiturn: bool | None = None
    system_instruction: str | None = None
    turn_end: NonNegative = 0
    # evaluation inside a task: off by default, and hashed only when set (runs made before it keep their hash)
    every_steps: Positive | None = field(default=None, metadata=HASHED_WHEN_SET)
    at_steps: list[Positive] = field(default_factory=list, metadata=HASHED_WHEN_SET)
    inside_task_tasks: list[str] | None = field(default=None, metadata=HASHED_WHEN_SET)
    inside_task_limit: Positive | None = field(default=50, metadata=HASHED_WHEN_SET)

    def __post_init__(self) -> None:
        check_fields(self)
        self.file_tasks: list[FileTask] = file_tasks(self.files, "eval.files")

    def chat_options(self, in_force: str | None, available: str | None = None) -> dict:
        """lm-eval's chat arguments for a model whose chat template in force is ``in_force`` (None:
        plain text; ``available``: one it has set aside), or a one-line error when asked for a
        template the model lacks."""
        apply = bool(in_force) if self.apply_chat_template is None else self.apply_chat_template
        if apply and not (in_force or available):
            raise ForgetbenchError(
                "eval.apply_chat_template=true, but the model has no chat template in force "
                "(model.chat_template=none, or its tokenizer has none); set eval.apply_chat_template=false "
                "or give one with model.chat_template=PATH"
            )
        multiturn = apply if self.fewshot_as_multiturn is None else self.fewshot_as_multiturn
        if multiturn and not apply:
            raise ForgetbenchError(
                "eval.fewshot_as_multiturn=true needs the chat template applied (eval.apply_chat_template)"
            )
        return {
            "apply_chat_template": apply,
            "fewshot_as_multiturn": multiturn,
            "system_instruction": self.system_instruction,
        }

    @property
    def evaluates_inside_tasks(self) -> bool:
        return self.every_steps is not None or bool(self.at_steps)

    def evaluates_inside(self, step: int, total: int) -> bool:
        """Whether optimizer step ``step`` (of ``total`` in its task) is followed by an evaluation inside
        the task; the last step's is the boundary evaluation."""
        every = self.every_steps is not None and step % self.every_steps == 0
        return step < total and (every or step in self.at_steps)

    def category_of(self, task: str) -> str:
        """The category listing ``task`` (or a task it is a subtask of), else "other"."""
        for category, names in self.categories.items():
            if any(task == name or task.startswith(f"{name}_") for name in names):
                return category
        return "other"

    def task_folders(self) -> list[Path]:
        """Folders on lm-eval's include_path: the project's own, then ``include_path``."""
        return [TASKS_DIR, *(Path(p) for p in self.include_path)]

    def task_shots(self) -> list[tuple[str, int | None, int | None]]:
        """Each task name with its number of shots (None: the task's default) and its item limit
        (None: all)."""
        triples = []
        for entry in self.tasks:
            if isinstance(entry, str):
                triples.append((entry, self.num_fewshot, self.limit))
            else:
                triples.append(
                    (entry["task"], entry.get("num_fewshot", self.num_fewshot), entry.get("limit", self.limit))
                )
        return triples
