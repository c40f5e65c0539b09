"""lm-eval task configs over local JSON files, built from the templates in ``tasks/``.

Plain dictionaries and YAML only; running them is the bridge's job.
"""

from __future__ import annotations

from pathlib import Path

import yaml

TASKS_DIR = Path(__file__).parent / "tasks"
TEMPLATES = {"multiple_choice": "_multiple_choice.yaml", "loglikelihood": "_loglikelihood.yaml"}


def local_task_config(name: str, data_file: Path, kind: str) -> dict:
    """A complete task config scoring the rows of ``data_file``.

    Args:
        name: the task name lm-eval reports it under.
        data_file: a JSON/JSONL file; multiple_choice rows hold question, choices
            and answer (index), loglikelihood rows hold prompt and response.
        kind: "multiple_choice" or "loglikelihood".
    """
    template = yaml.safe_load((TASKS_DIR / TEMPLATES[kind]).read_text())
    data = {"data_files": {"test": str(Path(data_file).resolve())}}
    return {"task": name, **template, "dataset_kwargs": data}


def generation_task_config(name: str, data_file: Path, metrics: list[str], max_new_tokens: int = 64) -> dict:
    """A task that generates a response to each ``prompt`` (greedy, up to a newline) and scores it
    against ``response`` with :func:`score_generation` (``metrics``: which of its scores to report)."""
    from forgetbench.evaluation.generation_metrics import score_generation

    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "prompt",
        "doc_to_target": "response",
        "target_delimiter": " ",
        "generation_kwargs": {"until": ["\n"], "max_gen_toks": max_new_tokens, "do_sample": False},
        "process_results": score_generation,
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in metrics],
        "metadata": {"version": 1.0},
    }


def write_task_yaml(config: dict, folder: Path) -> Path:
    """Write ``config`` as ``<folder>/<task>.yaml`` so lm-eval's TaskManager finds it by name."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config['task']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
