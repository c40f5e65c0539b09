"""The Luo et al. 2023 reproduction's code path, offline: fixture rows in the Hub datasets' layouts,
the study's processed files, and tiny random-init BLOOM, mT5 and Llama models running the stream."""

from __future__ import annotations

import json
import random

import pytest
from omegaconf import OmegaConf

from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.task_configs import TASKS_DIR
from forgetbench.jsonl import write_jsonl
from forgetbench.results import read_results
from forgetbench.runner import run_experiment
from forgetbench.streams.hub import HubStream
from forgetbench.streams.luo2023 import headline_constraint
from tests.conftest import compose
from tests.helpers import save_tiny_model

# a few hand-written rows per task, in each Hub dataset's own columns
FIXTURES = {
    "wiki_auto": lambda i: {
        "source": f"The council , which was founded in {1900 + i} , convened often .",
        "target": f"The council met often after {1900 + i} .",
    },
    "empathetic_dialogues": lambda i: {
        "context": "sad",
        "prompt": f"My dog {i} ran away .",
        "utterance": "I am so sorry , I hope you find him .",
    },
    "eli5": lambda i: {"question": f"Why is the sky blue {i} ?", "answer": "Air scatters blue light more ."},
    "esnli": lambda i: {
        "premise": f"A man {i} plays a guitar .",
        "hypothesis": "A man makes music .",
        "label": 0,
        "explanation_1": "Playing a guitar makes music .",
    },
    "gigaword": lambda i: {
        "document": f"police arrested {i} men after the robbery on friday .",
        "summary": f"police arrest {i} men over robbery",
    },
}


@pytest.fixture(scope="module")
def hub_copies(tmp_path_factory):
    """One local folder per task, laid out like the Hub dataset (train + test/validation files)."""
    root = tmp_path_factory.mktemp("hub")
    for task, make in FIXTURES.items():
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
        assert task.eval_config["task"] == f"stream_{task.name}"
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


@pytest.mark.parametrize(("config", "kind"), [("bloomz_1b1", "bloom"), ("mt0_large", "mt5"), ("llama_7b", "llama")])
def test_two_steps_of_luo2023_on_a_tiny_stand_in(config, kind, hub_copies, tmp_path, cache_dir) -> None:
    stream = _stream_config(hub_copies, cache_dir)
    texts = [v for make in FIXTURES.values() for i in range(16) for v in map(str, make(i).values())]
    texts += [
        p for spec in stream["tasks"] for p in ([spec["prompt"]] if isinstance(spec["prompt"], str) else spec["prompt"])
    ]
    texts += ["Article:", "Question:", "Answer:", "begins", "contains", "ends", "with", "the", "word"]
    model_dir = save_tiny_model(kind, [t.replace("{", " ").replace("}", " ") for t in texts], tmp_path / "model")

    race = tmp_path / "race_middle.jsonl"
    write_jsonl(
        race,
        [
            {
                "article": "a man plays a guitar .",
                "question": "what does he play ?",
                "options": ["guitar", "dog", "sky", "light"],
                "answer": "A",
            }
        ]
        * 4,
    )
    tasks = tmp_path / "eval_tasks"
    tasks.mkdir()
    (tasks / "race_middle_fixture.yaml").write_text(
        f"task: race_middle_fixture\ninclude: {TASKS_DIR / 'race_middle.yaml'}\ndataset_path: json\n"
        f"dataset_name: null\ndataset_kwargs:\n  data_files:\n    test: {race}\n"
    )

    cfg = compose(
        [
            "experiment=bloomz_1b",
            f"model={config}",
            f"model.path={model_dir}",
            "model.dtype=float32",
            "eval=quick",
            "eval.tasks=[race_middle_fixture]",
            f"eval.include_path=[{tasks}]",
            "stream.order=[wiki_auto,gigaword]",
            f"paths.root_dir={tmp_path}",
            f"paths.cache_dir={cache_dir}",
        ]
    )
    cfg.stream.tasks = stream["tasks"]  # the fixture copies instead of the Hub
    cfg.stream.max_new_tokens = 8
    run_experiment(cfg, tmp_path / "run")
    rows = read_results(tmp_path / "run")
    assert set(rows["step"]) == {0, 1, 2}
    assert dict(zip(rows["step"], rows["trained_task"])) == {0: "", 1: "wiki_auto", 2: "gigaword"}
    assert {"race_middle_fixture", "stream_wiki_auto", "stream_gigaword"} <= set(rows["eval_task"])
    stream = rows[rows["eval_kind"] == "stream"]
    assert set(stream.loc[stream["eval_task"] == "stream_wiki_auto", "metric"]) == {"rouge_l", "exact_match"}
    assert set(stream.loc[stream["eval_task"] == "stream_gigaword", "metric"]) == {
        "rouge_l",
        "exact_match",
        "constraint_met",
    }
    assert stream["value"].between(0, 1).all()
