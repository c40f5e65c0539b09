"""Write a tiny world to disk once, cached by the hash of its spec.

The files are data only, read through the same loaders as a user's own data:
``corpus.jsonl`` (pretraining), ``general_text.jsonl`` (held-out text in the corpus's style: what
replay mixes in as general data), ``general/<kind>.jsonl`` (multiple-choice rows
of the general suite; :mod:`forgetbench.tiny.suite` writes their task YAMLs into
``tasks/``) and ``stream/<task>/{train,test,validation}.jsonl``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from forgetbench.hashing import stable_hash
from forgetbench.jsonl import read_jsonl, write_jsonl
from forgetbench.tiny.stream_tasks import STREAM_TASKS, stream_task_rows
from forgetbench.tiny.world import GENERAL_TASKS, World, WorldSpec, build_world, corpus, general_text

FORMAT_VERSION = 2  # bump when generation changes, so caches are rebuilt


@dataclass(frozen=True)
class WorldFiles:
    root: Path

    @property
    def corpus(self) -> Path:
        return self.root / "corpus.jsonl"

    @property
    def general_text(self) -> Path:
        return self.root / "general_text.jsonl"

    @property
    def tasks_dir(self) -> Path:
        return self.root / "tasks"

    def general_file(self, kind: str) -> Path:
        return self.root / "general" / f"{kind}.jsonl"

    def stream_file(self, task: str, split: str) -> Path:
        return self.root / "stream" / task / f"{split}.jsonl"

    def all_texts(self) -> list[str]:
        """Every text in the world (the tokenizer's vocabulary is built from them)."""
        texts = []
        for path in sorted(self.root.rglob("*.jsonl")):
            for row in read_jsonl(path):
                texts.extend(str(v) if not isinstance(v, list) else " ".join(v) for v in row.values())
        return texts


def world_key(spec: WorldSpec) -> str:
    return stable_hash({"spec": spec.to_dict(), "format": FORMAT_VERSION})


def materialize_world(spec: WorldSpec, cache_dir: str | Path) -> WorldFiles:
    """The world's files under ``cache_dir``, generated on first use.

    Written to a temporary folder and renamed into place, so a crash never
    leaves a half-written world behind.
    """
    root = Path(cache_dir) / "worlds" / f"world-{world_key(spec)}"
    if root.is_dir():
        return WorldFiles(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".tmp-"))
    try:
        _write_world(build_world(spec), WorldFiles(tmp))
        os.replace(tmp, root)
    except OSError:
        if not root.is_dir():  # another process may have won the race; that is fine
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return WorldFiles(root)


def _write_world(world: World, files: WorldFiles) -> None:
    write_jsonl(files.corpus, corpus(world))
    write_jsonl(files.general_text, general_text(world))
    for kind, make in GENERAL_TASKS.items():
        write_jsonl(files.general_file(kind), make(world))
    for task in STREAM_TASKS:
        for split, rows in zip(("train", "test", "validation"), stream_task_rows(world, task), strict=True):
            write_jsonl(files.stream_file(task, split), rows)
