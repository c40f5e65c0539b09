"""The generated world is deterministic and its eval sets are really held out."""

from __future__ import annotations

import pytest

from forgetbench.errors import ForgetbenchError
from forgetbench.tiny.files import materialize_world
from forgetbench.tiny.stream_tasks import STREAM_TASKS, stream_task_rows
from forgetbench.tiny.suite import tiny_world_suite
from forgetbench.tiny.world import (
    GENERAL_TASKS,
    RELATIONS,
    WorldSpec,
    build_world,
    corpus,
    general_text,
    knowledge_items,
)

SPEC = WorldSpec(n_people=24, n_eval=16, n_stream_train=64, n_stream_eval=12, n_routine_docs=20, n_reading_docs=20)


def test_same_seed_same_text_other_seed_other_text() -> None:
    assert corpus(build_world(SPEC)) == corpus(build_world(SPEC))
    other = WorldSpec(**{**SPEC.to_dict(), "seed": 1})
    assert corpus(build_world(other)) != corpus(build_world(SPEC))


def test_knowledge_questions_are_never_asked_in_the_corpus() -> None:
    world = build_world(SPEC)
    prompts = {doc["prompt"] for doc in corpus(world)}
    items = knowledge_items(world)
    assert len(items) == SPEC.n_eval
    for item in items:
        assert item["question"] not in prompts
        person = next(word for word in item["question"].split() if word in world.facts)
        assert person not in world.qa_people
        answer = item["choices"][item["answer"]]
        assert answer in world.facts[person].values()


def test_general_text_is_other_text_in_the_corpus_style_and_asks_no_knowledge_item() -> None:
    world = build_world(SPEC)
    text, pretraining = general_text(world), corpus(world)
    assert len(text) == len(pretraining) and text != pretraining
    assert {d["prompt"].split()[0] for d in text} == {d["prompt"].split()[0] for d in pretraining}
    prompts = {doc["prompt"] for doc in text}
    assert not any(item["question"] in prompts for item in knowledge_items(world))


def test_every_fact_is_stated_in_the_corpus() -> None:
    world = build_world(SPEC)
    texts = [f"{d['prompt']} {d['response']}" for d in corpus(world)]
    for person in world.tested_people:
        for relation, value in world.facts[person].items():
            assert any(person in t.split() and value in t.split() for t in texts), (person, relation, value)
    assert set(RELATIONS) == {"home", "job", "pet", "color"}


def test_stream_test_prompts_are_unseen_and_answers_are_among_choices() -> None:
    world = build_world(SPEC)
    for name in STREAM_TASKS:
        train, test, validation = stream_task_rows(world, name)
        seen = {row["prompt"] for row in train}
        assert len(test) == len(validation) == SPEC.n_stream_eval
        assert not {item["question"] for item in test} & {item["question"] for item in validation}
        for item in test + validation:
            assert item["question"] not in seen
            assert len(set(item["choices"])) == 4


def test_materialize_is_cached_and_complete(tmp_path) -> None:
    first = materialize_world(SPEC, tmp_path)
    again = materialize_world(SPEC, tmp_path)
    assert first.root == again.root
    assert all(first.general_file(kind).stat().st_size > 0 for kind in GENERAL_TASKS)
    assert first.general_text.stat().st_size > 0
    suite = tiny_world_suite(SPEC, str(tmp_path), name="tiny_world", tasks=["tiny_world_knowledge"])
    assert str(first.tasks_dir) in suite.include_path  # the factory's task folder, beside the world's rows
    assert sorted(p.name for p in first.tasks_dir.glob("*.yaml")) == [
        "tiny_world_continuation.yaml",
        "tiny_world_knowledge.yaml",
        "tiny_world_reading.yaml",
    ]
    assert all(
        first.stream_file(t, s).stat().st_size > 0 for t in STREAM_TASKS for s in ("train", "test", "validation")
    )
    assert not list(tmp_path.glob("worlds/.tmp-*"))


def test_the_stream_scores_validation_items_when_asked_and_brings_its_general_text(tmp_path) -> None:
    from forgetbench.streams.base import BringsGeneralText
    from forgetbench.streams.local import LocalStream
    from forgetbench.tiny.world_stream import TinyWorldStream

    files = materialize_world(SPEC, tmp_path)
    test_run = TinyWorldStream("tiny_world", SPEC, str(tmp_path), tasks=["count"]).load()
    tuning = TinyWorldStream("tiny_world", SPEC, str(tmp_path), tasks=["count"], held_out="validation").load()
    assert test_run[0].test_file == files.stream_file("count", "test").resolve()
    assert tuning[0].test_file == files.stream_file("count", "validation").resolve()
    assert test_run[0].train["prompt"] == tuning[0].train["prompt"]  # the same training rows
    stream = TinyWorldStream("tiny_world", SPEC, str(tmp_path))
    assert isinstance(stream, BringsGeneralText) and not issubclass(LocalStream, BringsGeneralText)
    general = stream.general_examples()
    assert general.column_names == ["prompt", "response"] and len(general) == len(corpus(build_world(SPEC)))


def test_a_stream_task_without_enough_unseen_prompts_is_a_one_line_error() -> None:
    crowded = WorldSpec(**{**SPEC.to_dict(), "n_stream_train": 20000})
    with pytest.raises(ForgetbenchError, match=r"world.n_stream_eval=12: stream task 'reverse' has too few prompts"):
        stream_task_rows(build_world(crowded), "reverse")


def test_pretraining_objectives_add_one_pair_per_document_made_from_its_whole_text() -> None:
    from forgetbench.tiny.objectives import pretraining_pairs

    docs = [{"prompt": "kova lives in", "response": "bazimo ."}, {"prompt": "a b c d", "response": "e f"}]
    assert pretraining_pairs(docs, "pairs", seed=0) == docs
    for seed in range(20):
        prefix = pretraining_pairs(docs, "prefix_lm", seed)
        denoise = pretraining_pairs(docs, "denoise", seed)
        assert len(prefix) == len(denoise) == 4 and all(d in prefix and d in denoise for d in docs)
        texts = [f"{d['prompt']} {d['response']}" for d in docs]
        for pair in (p for p in prefix if p not in docs):  # cut at a word, both sides non-empty
            assert pair["prompt"] and pair["response"] and f"{pair['prompt']} {pair['response']}" in texts
        for pair in (p for p in denoise if p not in docs):  # the whole text, from it less 1-3 words, 2 swapped
            whole, noised = pair["response"].split(), pair["prompt"].split()
            assert pair["response"] in texts and 1 <= len(whole) - len(noised) <= 3
            gap = len(whole) - len(noised)
            candidates = [whole[:i] + whole[i + gap :] for i in range(len(whole) - gap + 1)]
            swapped = [k[:j] + [k[j + 1], k[j]] + k[j + 2 :] for k in candidates for j in range(len(k) - 1)]
            assert noised in swapped or (len(noised) == 1 and noised in candidates)
