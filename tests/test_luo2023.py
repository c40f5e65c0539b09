"""The Luo et al. 2023 stream's task builders, offline: fixture rows in the Hub data sets' columns
and the study's processed files. (The experiments themselves run in test_ladders.py.)"""

from __future__ import annotations

import json
import random

import pytest
from omegaconf import OmegaConf

from forgetbench.errors import ForgetbenchError
from forgetbench.jsonl import write_jsonl
from forgetbench.streams.hub import HubStream
from forgetbench.streams.luo2023 import headline_constraint
from tests.conftest import compose
from tests.hub_mirror_fixture import STREAM_ROWS


@pytest.fixture(scope="module")
def hub_copies(tmp_path_factory):
    """One local folder per task, laid out like the Hub dataset (train + test/validation files)."""
    root = tmp_path_factory.mktemp("hub")
    for task, make in STREAM_ROWS.items():
        rows = [make(i) for i in range(16)]
        write_jsonl(root / task / "train.jsonl", rows[:12])
        write_jsonl(root / task / ("validation.jsonl" if task == "wiki_auto" else "test.jsonl"), rows[12:])
    return root


def _stream_config(hub_copies, cache) -> dict:
    cfg = OmegaConf.to_container(compose(["stream=luo2023", f"paths.cache_dir={cache}"]).stream, resolve=True)
    for spec in cfg["tasks"]:
        spec["path"] = str(hub_copies / spec["name"])
        spec["n_train"], spec["n_test"] = 8, 3
        if spec.get("test_split") == "train":  # eli5: one split, held-out rows set aside
            spec["n_train"] = 6
    cfg["max_new_tokens"] = 8
    return cfg


def test_every_task_builds_from_its_hub_layout(hub_copies, tmp_path) -> None:
    cfg = _stream_config(hub_copies, tmp_path)
    cfg.pop("_target_")
    tasks = HubStream(**cfg).load()
    assert [t.name for t in tasks] == ["wiki_auto", "empathetic_dialogues", "eli5", "esnli", "gigaword"]
    for task in tasks:
        assert len(task.train) in (6, 8) and all(r["prompt"] and r["response"] for r in task.train)
        assert task.test_file.is_file() and task.scoring.kind == "generation"
    gigaword = tasks[-1].train
    for row in gigaword:
        word = row["prompt"].split("the word '")[1].split("'")[0]
        assert word in row["response"].split()  # the constraint word comes from the target headline
    prompts = {row["prompt"].split("\n")[0] for row in tasks[0].train}
    assert len(prompts) > 1, "paraphrased templates are drawn per example"


def test_headline_constraint_positions() -> None:
    rng = random.Random(0)
    seen = {headline_constraint("police arrest five men", rng)["constraint"] for _ in range(50)}
    assert "begins with the word 'police'" in seen and "ends with the word 'men'" in seen
    assert any(c.startswith("contains the word '") for c in seen)


def test_processed_files_of_the_original_study(tmp_path) -> None:
    folder = tmp_path / "processed"
    folder.mkdir()
    src = [f"Simplify: sentence {i}" for i in range(5)]
    (folder / "simplification_1.train.json").write_text(json.dumps({"src": src, "tgt": [s.upper() for s in src]}))
    (folder / "simplification_1.test.json").write_text(json.dumps({"src": src[:2], "tgt": src[:2]}))
    spec = {
        "name": "wiki_auto",
        "path": "unused",
        "prompt": "{x}",
        "response": "{y}",
        "n_train": None,
        "n_test": 2,
        "processed_dir": str(folder),
        "prompt_name": "simplification_1",
    }
    [task] = HubStream(name="luo2023", tasks=[spec], cache_dir=str(tmp_path)).load()
    assert sorted(task.train["prompt"]) == src  # identical data, prompts as the study wrote them
    assert all(r["response"] == r["prompt"].upper() for r in task.train)
    (folder / "simplification_1.test.json").write_text(json.dumps({"src": src, "tgt": src[:1]}))
    with pytest.raises(ForgetbenchError, match="5 src and 1 tgt"):
        HubStream(name="luo2023", tasks=[spec], cache_dir=str(tmp_path)).load()
