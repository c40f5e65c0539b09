"""The Hub mirror reads a repo from its local copy when there is one, and only then."""

from __future__ import annotations

import datasets

from forgetbench.hub_mirror import datasets_from, local_copy
from forgetbench.jsonl import write_jsonl


def test_local_copy_only_for_repos_the_mirror_holds(tmp_path) -> None:
    (tmp_path / "org" / "held").mkdir(parents=True)
    assert local_copy("org/held", str(tmp_path)) == str(tmp_path / "org" / "held")
    assert local_copy("org/missing", str(tmp_path)) == "org/missing"
    assert local_copy("org/held", None) == "org/held"
    assert local_copy("/abs/path", str(tmp_path)) == "/abs/path"


def test_datasets_are_redirected_inside_the_context_only(tmp_path) -> None:
    write_jsonl(tmp_path / "org" / "rows" / "test.jsonl", [{"x": 1}, {"x": 2}])
    original = datasets.load_dataset
    with datasets_from(str(tmp_path)):
        rows = datasets.load_dataset(path="org/rows", split="test")  # as lm-eval calls it
    assert rows["x"] == [1, 2]
    assert datasets.load_dataset is original
