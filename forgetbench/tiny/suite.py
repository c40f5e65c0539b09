"""The tiny world's suites: general ability (``eval=tiny_world``), and with safety (``eval=tiny_world_safety``).

The world is materialised (generated once, cached by hash), a task YAML per
general task is written beside its rows, and an ordinary
:class:`~forgetbench.evaluation.suite.EvalSuite` comes back with that folder on
its include path: evaluation never needs to know where a suite's tasks came from.
"""

from __future__ import annotations

from forgetbench.evaluation.safety import write_safety_tasks
from forgetbench.evaluation.suite import EvalSuite
from forgetbench.evaluation.task_configs import local_task_config, write_task_yaml
from forgetbench.judges import Judge
from forgetbench.tiny.files import WorldFiles, materialize_world
from forgetbench.tiny.post_training import safety_eval_rows
from forgetbench.tiny.world import GENERAL_TASKS, WorldSpec, build_world


def general_task_name(kind: str) -> str:
    return f"tiny_world_{kind}"


def write_general_tasks(files: WorldFiles) -> None:
    """One multiple-choice task YAML per general task, in ``files.tasks_dir``. Rewritten only when
    it changed (it names the installed templates' path), atomically: parallel jobs share the cache."""
    for kind in GENERAL_TASKS:
        config = local_task_config(general_task_name(kind), files.general_file(kind), "multiple_choice")
        write_task_yaml(config, files.tasks_dir)


def tiny_world_suite(world: WorldSpec, cache_dir: str, **fields) -> EvalSuite:
    """An :class:`EvalSuite` (``fields``: its fields) over the tiny world's generated tasks.

    Args:
        world: the world whose tasks are scored.
        cache_dir: where generated worlds are kept.
        fields: :class:`EvalSuite`'s; the world's task folder is added to ``include_path``.
    """
    world_files = materialize_world(world, cache_dir)
    write_general_tasks(world_files)
    fields["include_path"] = [*(fields.get("include_path") or []), str(world_files.tasks_dir)]
    return EvalSuite(**fields)


def tiny_world_safety_suite(world: WorldSpec, cache_dir: str, judge: Judge, max_new_tokens: int, **fields) -> EvalSuite:
    """:func:`tiny_world_suite` with the world's safety tasks (:func:`safety_eval_rows`) beside its
    general ones: ``tiny_world_refusal`` (harmful requests) and ``tiny_world_over_refusal`` (their
    look-alikes), answered in up to ``max_new_tokens`` tokens and judged by ``judge``."""
    rows = safety_eval_rows(build_world(world))
    tasks = {f"tiny_world_{kind}": (kind, kind_rows) for kind, kind_rows in rows.items()}
    folder = write_safety_tasks(cache_dir, tasks, judge, max_new_tokens)
    fields["include_path"] = [*(fields.get("include_path") or []), str(folder)]
    return tiny_world_suite(world, cache_dir, **fields)
