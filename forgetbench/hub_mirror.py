"""Local copies of Hugging Face Hub repos, for machines that cannot reach the Hub.

A mirror is a folder holding repos under their IDs (``<mirror>/bigscience/bloomz-1b1``,
``<mirror>/cais/mmlu``), as ``hf download REPO --local-dir <mirror>/REPO`` (with
``--repo-type dataset`` for data sets) writes them on a machine that has access. With
``paths.hub_mirror`` set, every model, stream data set and lm-eval task data set whose ID the
mirror holds is read from it; the configs keep their Hub IDs, so the same command downloads
them elsewhere. (transformers can read a pre-filled Hub cache offline, but ``datasets`` cannot
load a Hub data set from it: hence one folder for both.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


def local_copy(repo_id: str, mirror: str | None) -> str:
    """``<mirror>/<repo_id>`` when the mirror holds that repo, else ``repo_id`` unchanged."""
    if not mirror or not repo_id or Path(repo_id).is_absolute():
        return repo_id
    candidate = Path(mirror).expanduser() / repo_id
    return str(candidate) if candidate.is_dir() else repo_id


@contextlib.contextmanager
def datasets_from(mirror: str | None) -> Iterator[None]:
    """While active, ``datasets.load_dataset(path=ID, ...)`` reads ``<mirror>/ID`` when the mirror has it.

    lm-eval's stock tasks name their Hub data set in YAML and load it while the task is built,
    and lm-eval has no option to point them elsewhere; swapping the path in that one call, for
    the duration of the build, is the narrowest way in.
    """
    if not mirror:
        yield
        return
    import datasets

    original = datasets.load_dataset

    def load_dataset(path: str, *args, **kwargs):
        return original(local_copy(path, mirror), *args, **kwargs)

    datasets.load_dataset = load_dataset
    try:
        yield
    finally:
        datasets.load_dataset = original
