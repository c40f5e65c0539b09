"""The tiny world's general-ability suite: the ``eval=tiny_world`` factory.

The world is materialised (generated once, cached by hash), a task YAML per
general task is written beside its rows, and an ordinary
:class:`~forgetbench.evaluation.suite.EvalSuite` comes back with that folder on
its include path: evaluation never needs to know where a suite's tasks came from.
"""

from __future__ import annotations

from forgetbench.evaluation.suite import EvalSuite
from forgetbench.evaluation.task_configs import local_task_config, write_task_yaml
from forgetbench.tiny.files import WorldFiles, materialize_world
from forgetbench.tiny.world import GENERAL_TASKS, WorldSpec


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
