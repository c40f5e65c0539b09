"""stream=files and eval.files: table files through templates, filters and splits (forgetbench.data)."""

from __future__ import annotations

import csv
import gzip
import json

import pandas as pd
import pytest

from forgetbench.data.file_task import FileTask, file_tasks
from forgetbench.data.templates import RowTemplate, nonzero
from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.generation_metrics import score_generation
from forgetbench.tiny.tokenizer import build_word_tokenizer

ROWS = [{"question": f"where does person{i} live", "answer": f"town{i % 4}", "n": i} for i in range(20)]


def _write(path, rows=ROWS):
    """``rows`` in the format ``path``'s suffix names (csv, csv.gz, tsv, json, jsonl, parquet)."""
    name = path.name
    if name.endswith((".csv", ".csv.gz", ".tsv")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "wt", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t" if name.endswith(".tsv") else ",")
            writer.writeheader()
            writer.writerows(rows)
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif name.endswith(".json"):
        path.write_text(json.dumps(rows))
    else:
        pd.DataFrame(rows).to_parquet(path)
    return path


def _task(files, **fields) -> FileTask:
    return FileTask(name="qa", files=str(files), prompt="Q: {{ question }}", response="{{ answer }}", **fields)


@pytest.mark.parametrize("suffix", ["csv", "csv.gz", "tsv", "json", "jsonl", "parquet"])
def test_every_format_reads_the_same_rows(tmp_path, suffix):
    prepared = _task(_write(tmp_path / f"rows.{suffix}"), held_out=4).prepare(None)
    assert (len(prepared.train), len(prepared.held_out)) == (16, 4)
    rows = {(r["prompt"], r["response"]) for r in [*prepared.train, *prepared.held_out]}
    assert rows == {(f"Q: {r['question']}", r["answer"]) for r in ROWS}


def test_a_glob_reads_every_matching_file_and_limit_counts_across_them(tmp_path):
    _write(tmp_path / "a.csv", ROWS[:10])
    _write(tmp_path / "b.csv", ROWS[10:])
    assert len(_task(tmp_path / "*.csv", held_out=0.25).prepare(None).train) == 15
    limited = _task(tmp_path / "*.csv", held_out=2, limit=12).prepare(None)
    assert len(limited.train) + len(limited.held_out) == 12


def test_held_out_as_fraction_count_or_own_file(tmp_path):
    files = _write(tmp_path / "rows.csv")
    assert len(_task(files, held_out=0.2).prepare(None).held_out) == 4
    assert len(_task(files, held_out=7).prepare(None).held_out) == 7
    own = _task(files, held_out=str(_write(tmp_path / "test.jsonl", ROWS[:3]))).prepare(None)
    assert (len(own.train), len(own.held_out)) == (20, 3)
    # the split is seeded: the same rows every time, other rows for another seed
    first, again = (_task(files, held_out=5).prepare(None).held_out["prompt"] for _ in range(2))
    assert first == again != _task(files, held_out=5, seed=1).prepare(None).held_out["prompt"]


def test_filters_drop_and_count_rows(tmp_path):
    rows = ROWS + ROWS[:5] + [{"question": "where " * 30 + "?", "answer": "far", "n": 99}]
    files = _write(tmp_path / "rows.jsonl", rows)
    tokenizer = build_word_tokenizer([r["question"] + " " + r["answer"] for r in rows])
    prepared = _task(files, drop_duplicates=True, max_tokens=12, sample=10, held_out=2).prepare(tokenizer)
    assert prepared.dropped == {"drop_duplicates": 5, "max_tokens": 1, "sample": 10}
    assert len(prepared.train) + len(prepared.held_out) == 10


def test_rename_columns_and_non_identifier_names(tmp_path):
    files = _write(tmp_path / "rows.csv", [{"Question Text": "q1", "ans": "a1"}, {"Question Text": "q2", "ans": "a2"}])
    task = FileTask(
        name="t",
        files=str(files),
        prompt='{{ row["Question Text"] }}',
        response="{{ answer }}",
        rename={"ans": "answer"},
        held_out=1,
    )
    prepared = task.prepare(None)
    assert sorted([*prepared.train["prompt"], *prepared.held_out["prompt"]]) == ["q1", "q2"]


def test_nonzero_lists_matching_columns_with_a_value():
    row = {"pack_card_Bolt": 1, "pack_card_Wall": 0, "pool_Bolt": 2, "pool_Elf": 1, "pool_Wall": 0, "rank": "gold"}
    assert nonzero(row, "pack_card_*") == ["Bolt"]
    assert nonzero(row, "pool_*") == ["Bolt", "Elf"]
    assert nonzero(row, "pool_*", repeat=True) == ["Bolt", "Bolt", "Elf"]
    template = RowTemplate('{{ nonzero("pool_*") | join(", ") or "nothing" }} / {{ rank }}', "test")
    assert template.render(row) == "Bolt, Elf / gold"
    assert template.render({**row, "pool_Bolt": 0, "pool_Elf": 0}) == "nothing / gold"
    # Jinja's own globals are not taken for columns
    assert RowTemplate("{% for i in range(2) %}{{ rank }}{% endfor %}", "test").render(row) == "goldgold"


def test_multiple_choice_from_a_list_a_column_or_a_template(tmp_path):
    rows = [
        {"q": f"q{i}", "a": ["x", "y", "z"][i % 3], "opts": ["x", "y", "z"], "x": 1, "y": 1, "z": 0} for i in range(6)
    ]
    files = _write(tmp_path / "rows.jsonl", rows)
    fixed = dict(files=str(files), prompt="{{ q }}", response="{{ a }}", scoring="multiple_choice", held_out=3)
    by_list = FileTask(name="a", choices=["x", "y", "z"], **fixed).prepare(None).held_out
    by_column = FileTask(name="b", choices="opts", **fixed).prepare(None).held_out
    assert by_list.to_list() == by_column.to_list()
    for r in by_list:
        assert r["choices"][r["answer"]] == "xyz"[int(r["question"][1:]) % 3]
    # a template giving one choice a line; rows whose answer is not among them are an error
    templated = FileTask(name="c", choices="{{ nonzero('[xyz]') | join('\\n') }}", **{**fixed, "held_out": 1})
    with pytest.raises(ForgetbenchError, match=r"row 3, column 'choices': the response 'z' is not one of the 2"):
        templated.prepare(None)


def test_generation_scoring_names_builtin_and_user_metrics(tmp_path):
    files = _write(tmp_path / "rows.csv")
    task = _task(files, scoring="generation", metrics=["exact_match", "tests.helpers:same_first_word"], held_out=2)
    assert task.held_out_scoring().metrics == ("exact_match", "same_first_word")
    assert task.prepare(None).held_out[0]["metric_functions"] == ["tests.helpers:same_first_word"]
    # lm-eval's process_results for generation calls the named function on each item
    doc = {"prompt": "p", "response": "town1", "metric_functions": ["tests.helpers:same_first_word"]}
    assert score_generation(doc, [" town2"]) == {"rouge_l": 0.0, "exact_match": 0.0, "same_first_word": 0.0}
    with pytest.raises(ForgetbenchError, match="metric 'bleu' is not valid"):
        _task(files, scoring="generation", metrics=["bleu"])
    with pytest.raises(ForgetbenchError, match="metric 'no_such_module:f' names no importable function"):
        _task(files, scoring="generation", metrics=["no_such_module:f"])


@pytest.mark.parametrize(
    ("rows", "fields", "expected"),
    [
        ([{"question": "q", "other": "a"}], {}, r"row 1, column 'answer': has no column 'answer'"),
        (
            [{"question": "q", "answer": "a"}, {"question": "q2", "answer": None}],
            {},
            r"row 2, column 'answer': has no value in column 'answer'",
        ),
        (
            [{"question": "q", "answer": "a"}, {"question": "q2", "answer": "  "}],
            {},
            r"row 2, column 'answer': renders an empty response",
        ),
        (
            [{"question": "q", "answer": "a"}],
            {"prompt": "{{ row.missing }}"},
            r"row 1, column 'missing': has no column",
        ),
    ],
    ids=["missing column", "null value", "empty response", "undefined variable"],
)
def test_a_bad_row_is_named_by_file_row_and_column(tmp_path, rows, fields, expected):
    files = _write(tmp_path / "rows.jsonl", rows)
    task = FileTask(
        **{"name": "qa", "files": str(files), "prompt": "{{ question }}", "response": "{{ answer }}", **fields}
    )
    with pytest.raises(ForgetbenchError, match=expected) as raised:
        task.prepare(None)
    assert str(files) in str(raised.value) and "\n" not in str(raised.value)


def test_unreadable_and_missing_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "rows.parquet"
    bad.write_text("not parquet")
    with pytest.raises(ForgetbenchError, match=r"rows.parquet' is not readable as parquet"):
        _task(bad).prepare(None)
    with pytest.raises(ForgetbenchError, match=r"matches no file"):
        _task(tmp_path / "none*.csv").prepare(None)
    (tmp_path / "rows.xlsx").write_text("x")
    with pytest.raises(ForgetbenchError, match=r"has no readable suffix"):
        _task(tmp_path / "rows.xlsx").prepare(None)


def test_bad_task_definitions_are_named_from_the_config_root(tmp_path):
    spec = {"name": "qa", "files": "x.csv", "prompt": "{{ q }}", "response": "{{ a }}"}
    with pytest.raises(ForgetbenchError, match=r"stream.tasks\[0\] \('qa'\) has unknown keys \['promt'\]"):
        file_tasks([{**spec, "promt": "x"}], "stream.tasks")
    with pytest.raises(ForgetbenchError, match=r"stream.tasks\[0\].max_tokens=0 is not valid"):
        file_tasks([{**spec, "max_tokens": 0}], "stream.tasks")
    with pytest.raises(ForgetbenchError, match=r"held_out=1.5 is not valid"):
        file_tasks([{**spec, "held_out": 1.5}], "stream.tasks")
    with pytest.raises(ForgetbenchError, match=r"prompt template is not valid Jinja"):
        file_tasks([{**spec, "prompt": "{{ q }"}], "stream.tasks")
    with pytest.raises(ForgetbenchError, match=r"scoring=multiple_choice needs choices"):
        file_tasks([{**spec, "scoring": "multiple_choice"}], "stream.tasks")
    with pytest.raises(ForgetbenchError, match=r"names a task twice"):
        file_tasks([spec, spec], "eval.files")


def test_a_row_longer_than_training_takes_is_named_unless_max_tokens_drops_it(tmp_path):
    """A 1 MB row would be cut by training (train.max_length): it is a bad row, named at set-up."""
    rows = [*ROWS[:5], {"question": "where " + "does person1 live " * 50_000, "answer": "town1", "n": 5}, *ROWS[6:]]
    files = _write(tmp_path / "qa.csv", rows)
    tokenizer = build_word_tokenizer([r["question"] + " " + r["answer"] for r in ROWS])
    with pytest.raises(ForgetbenchError) as err:
        _task(files).prepare(tokenizer, max_length=64)
    assert f"'{files}' row 6 has 150,004 tokens after templating, more than train.max_length=64" in str(err.value)
    assert "max_tokens: 64" in str(err.value)
    prepared = _task(files, max_tokens=64).prepare(tokenizer, max_length=64)
    assert prepared.dropped["max_tokens"] == 1 and len(prepared.train) + len(prepared.held_out) == 19


def test_multiple_choice_gold_by_index_stripped_or_refused_when_two_choices_match(tmp_path):
    rows = [
        {"q": "pick y", "opts": ["x", " y", "z", "w"], "a": "y", "i": 1},  # the gold padded in the list
        {"q": "pick x", "opts": ["x", "x", "z", "w"], "a": "x", "i": 1},  # the same text twice
        {"q": "pick z", "opts": ["x", "y", "z", "w"], "a": "z", "i": "2"},
    ]
    files = _write(tmp_path / "rows.jsonl", rows)
    common = dict(files=str(files), prompt="{{ q }}", scoring="multiple_choice", choices="opts", held_out=2)
    with pytest.raises(ForgetbenchError, match=r"row 2, column 'choices': the response 'x' matches choices \[0, 1\]"):
        FileTask(name="t", response="{{ a }}", **common).prepare(None)
    # by index: response may be left out (the gold choice is the target); the padded gold found stripped
    prepared = FileTask(name="t", answer_index="i", **{**common, "held_out": 3}).prepare(None, split=False)
    assert [r["answer"] for r in prepared.held_out] == [1, 1, 2]
    first = _write(tmp_path / "first.jsonl", rows[:1])
    stripped = FileTask(name="t", response="{{ a }}", **{**common, "files": str(first), "held_out": 1})
    assert stripped.prepare(None, split=False).held_out[0]["answer"] == 1
    bad = _write(tmp_path / "bad.jsonl", [{**rows[2], "i": 4}])
    with pytest.raises(ForgetbenchError, match=r"row 1, column 'i': the answer index 4 is not one of 0..3"):
        FileTask(name="t", answer_index="i", **{**common, "files": str(bad)}).prepare(None, split=False)
    with pytest.raises(ForgetbenchError, match="answer_index applies to scoring=multiple_choice"):
        FileTask(name="t", files=str(files), prompt="{{ q }}", response="{{ a }}", answer_index="i")


def test_acc_norm_is_lm_evals_on_the_same_log_likelihoods(tmp_path):
    """score_choices (file tasks' multiple choice) against lm-eval's own multiple-choice process_results."""
    import random

    from lm_eval.api.task import ConfigurableTask

    from forgetbench.evaluation.choice_metrics import score_choices

    data = tmp_path / "mc.jsonl"
    docs = [{"question": "q", "choices": ["a", "bbbbbbbb", "cc", "ddd dd"], "answer": i % 4} for i in range(40)]
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    config = {
        "task": "mc_check",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "question",
        "doc_to_choice": "choices",
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
    }
    task = ConfigurableTask(config=config)
    rng = random.Random(0)
    differ = 0
    for doc in docs:
        logliks = [(-rng.uniform(1, 20), False) for _ in doc["choices"]]
        theirs = task.process_results(doc, logliks)
        ours = score_choices(doc, logliks)
        assert ours["acc"] == theirs["acc"] and ours["acc_norm"] == theirs["acc_norm"]
        differ += ours["acc"] != ours["acc_norm"]
    assert differ > 0  # the draws reach items where the length normalisation changes the choice


def test_data_check_warns_of_a_literal_backslash_n():
    """A ``\\n`` typed in a shell override is two characters; data-check says so and how to type a newline."""
    from forgetbench.data_check import _literal_newlines

    [warning] = _literal_newlines([("Q: where\\nA:", "x"), ("Q: where\nA:", "y")])
    assert "1 rows hold a literal backslash-n" in warning and "$'" in warning
    assert _literal_newlines([("Q: where\nA:", "y")]) == []
