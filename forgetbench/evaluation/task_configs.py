"""lm-eval task configs over local JSON files: the one place that turns scoring kinds into tasks.

A task is a small YAML that ``include:``s one of the templates in ``tasks/``
(``_multiple_choice.yaml``, ``_loglikelihood.yaml``, ``_generation.yaml``, which
share ``_local_rows.yaml``) and names its data file. Plain dictionaries and YAML
only; running them is the bridge's job.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from forgetbench.jsonl import write_jsonl
from forgetbench.stream_records import Scoring, StreamTask

TASKS_DIR = Path(__file__).parent / "tasks"
GENERATION_METRICS = ("rouge_l", "exact_match")  # what _generation.yaml lists
TEMPLATES = {
    "multiple_choice": "_multiple_choice.yaml",
    "loglikelihood": "_loglikelihood.yaml",
    "generation": "_generation.yaml",
}


def stream_eval_name(task: str) -> str:
    """The lm-eval task name a stream task's held-out items are scored under."""
    return f"stream_{task}"


def local_task_config(name: str, data_file: Path, scoring: Scoring | str, chat: bool = False) -> dict:
    """A task config scoring the rows of ``data_file``.

    Args:
        name: the task name lm-eval reports it under.
        data_file: a JSON/JSONL file in the layout ``scoring.kind`` reads (see :class:`Scoring`).
        scoring: how the rows are scored (a bare kind for the defaults).
        chat: prompts go through the model's chat template: a scored response then starts the
            assistant's turn as training puts it there, without the space plain text puts before it
            (lm-eval drops multiple choice's delimiter itself under a chat template).
    """
    scoring = Scoring(scoring) if isinstance(scoring, str) else scoring
    template = "_multiple_choice_chance.yaml" if scoring.report_chance else TEMPLATES[scoring.kind]
    config = {
        "task": name,
        "include": str(TASKS_DIR / template),
        "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
    }
    if chat and scoring.kind == "loglikelihood":
        config["doc_to_target"] = "{{response}}"
    if scoring.kind == "generation":
        config["generation_kwargs"] = {"until": ["\n"], "max_gen_toks": scoring.max_new_tokens, "do_sample": False}
        if scoring.metrics:  # beside the template's (score_generation always returns those: unlisted, lm-eval warns)
            metrics = dict.fromkeys([*GENERATION_METRICS, *scoring.metrics])
            config["metric_list"] = [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in metrics]
    return config


TURN_END_TASK = "turn_end"


def turn_end_config(data_file: Path) -> dict:
    """Task ``turn_end`` over rows {prompt, response, end}: the prompt as the user's turn, the response
    begun as the assistant's (lm-eval's ``gen_prefix``: continued, not closed, under a chat template),
    acc = ``end`` (the end-of-turn token) is the model's greedy continuation."""
    return {
        "task": TURN_END_TASK,
        "include": str(TASKS_DIR / "_loglikelihood.yaml"),
        "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
        "gen_prefix": "{{response}}",
        "doc_to_target": "{{end}}",
        "target_delimiter": " ",  # plain text: prompt, space, response (as training renders it)
    }  # the template's metrics: acc, and perplexity (1 / the geometric mean of the end token's probability)


def stream_task_config(task: StreamTask, folder: Path | None = None, chat: bool = False) -> dict:
    """The task scoring ``task``'s held-out rows, named :func:`stream_eval_name`; rows handed over in
    memory (``test_rows``) are written to ``folder`` first (required for them); ``chat``: as for
    :func:`local_task_config`."""
    name = stream_eval_name(task.name)
    if task.test_rows is not None and folder is None:
        raise ValueError(f"stream task {task.name!r} hands over its held-out rows: give a folder to write them to")
    data_file = task.test_file if task.test_rows is None else write_rows(task.test_rows.to_list(), folder, name)
    return local_task_config(name, data_file, task.scoring, chat)


def write_rows(rows: list[dict], folder: Path, name: str) -> Path:
    """``rows`` as ``<folder>/<name>.jsonl`` (atomically), for a task config to name as its data file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    write_jsonl(tmp, rows)
    os.replace(tmp, path)
    return path


def write_task_yaml(config: dict, folder: Path) -> Path:
    """Write ``config`` as ``<folder>/<task>.yaml`` (atomically, and only when it changed), so
    lm-eval's TaskManager finds it by name or path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config['task']}.yaml"
    text = yaml.safe_dump(config, sort_keys=False)
    if path.is_file() and path.read_text() == text:
        return path
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
