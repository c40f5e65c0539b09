"""Chat templates in training and evaluation (``model.chat_template``, ``eval.apply_chat_template``),
on a tiny Llama given a template file: rendering and label masks token by token, packed rows, the
loss of a step against a hand computation, templated evaluation under both engines, the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset

from forgetbench.chat import IGNORE, apply_chat_setting, chat_example, chat_setting_key
from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
from forgetbench.evaluation.suite import EvalSuite
from forgetbench.jsonl import write_jsonl
from forgetbench.models import LoadedModel
from forgetbench.stream_records import StreamTask
from forgetbench.streams.base import local_stream_task, with_system_prompt
from forgetbench.training import TrainConfig, packing, tokenize_pairs, train_on_task
from tests.conftest import SMALL, run_cli
from tests.helpers import tiny_model

# a template in the tiny word vocabulary: role, colon, content, then </s> (the tokenizer's EOS) ends a turn
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)
WORDS = "system user assistant : be kind who are you i am a cat dog red blue what is it".split()


@pytest.fixture
def template_file(tmp_path):
    path = tmp_path / "chat.jinja"
    path.write_text(TEMPLATE)
    return path


def _llama(template_file, width: int = 32):
    model, tokenizer = tiny_model("llama", WORDS, width=width)
    apply_chat_setting(tokenizer, str(template_file), encoder_decoder=False)
    return model, tokenizer


def _ids(tokenizer, words: str) -> list[int]:
    return tokenizer.convert_tokens_to_ids(words.split())


def test_rendering_and_labels_token_by_token(template_file):
    _, tokenizer = _llama(template_file)
    example = chat_example(
        tokenizer, {"prompt": "who are you", "response": "i am a cat", "system": "be kind"}, 64, False
    )
    prompt = "system : be kind </s> user : who are you </s> assistant :"
    answer = "i am a cat </s>"  # the end-of-turn token is the assistant's: it is learned
    assert example["input_ids"] == _ids(tokenizer, f"{prompt} {answer}")
    assert example["labels"] == [IGNORE] * len(prompt.split()) + _ids(tokenizer, answer)

    # a multi-turn row: every assistant turn carries labels, every user turn none
    messages = [
        {"role": "user", "content": "who are you"},
        {"role": "assistant", "content": "a cat"},
        {"role": "user", "content": "what is it"},
        {"role": "assistant", "content": "a red dog"},
    ]
    example = chat_example(tokenizer, {"messages": messages}, 64, False)
    labelled = [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != IGNORE]
    assert labelled == _ids(tokenizer, "a cat </s> a red dog </s>")
    assert sum(label != IGNORE for label in example["labels"]) == 7

    # truncation keeps the end (the answer), as plain text does
    short = chat_example(tokenizer, {"prompt": "who are you", "response": "i am a cat"}, 6, False)
    assert short["labels"] == [IGNORE] + _ids(tokenizer, answer)


def test_plain_text_without_a_template_and_the_training_path_follows_the_tokenizer(template_file):
    model, tokenizer = _llama(template_file)
    rows = Dataset.from_list([{"prompt": "who are you", "response": "a cat"}])
    config = TrainConfig(max_length=64)
    chat = tokenize_pairs(rows, tokenizer, False, config)[0]
    assert chat["input_ids"][:3] == _ids(tokenizer, "user : who")
    apply_chat_setting(tokenizer, "none", encoder_decoder=False)
    plain = tokenize_pairs(rows, tokenizer, False, config)[0]
    assert plain["input_ids"] == _ids(tokenizer, "who are you a cat </s>")
    assert plain["labels"] == [IGNORE] * 3 + _ids(tokenizer, "a cat </s>")


def test_packed_rows_keep_the_masks(template_file):
    _, tokenizer = _llama(template_file)
    rows = [
        {"prompt": "who are you", "response": "i am a cat"},
        {"prompt": "what is it", "response": "a dog"},
        {"prompt": "who are you", "response": "red", "system": "be kind"},
    ]
    examples = [chat_example(tokenizer, row, 64, False) for row in rows]
    [micro] = packing.split_step(examples, "positions", 64, 4, tokenizer.pad_token_id, None, 1)
    packed = micro.batch["labels"][0].tolist()
    # each example's labels, in its slot of the row (its first token never predicted: alone, nothing precedes it)
    expected = [label for e in examples for label in [IGNORE, *e["labels"][1:]]]
    assert packed[: len(expected)] == expected and set(packed[len(expected) :]) <= {IGNORE}


def test_one_step_loss_is_the_mean_over_assistant_tokens(template_file):
    model, tokenizer = _llama(template_file)
    rows = [
        {"prompt": "who are you", "response": "i am a cat"},
        {"prompt": "what is it", "response": "a red dog", "system": "be kind"},
    ]
    # by hand: cross-entropy of every assistant token (and its end of turn) given what precedes it
    losses = []
    with torch.no_grad():
        for row in rows:
            prompt = ([f"system : {row['system']} </s>"] if "system" in row else []) + [f"user : {row['prompt']} </s>"]
            context = _ids(tokenizer, " ".join(prompt) + " assistant :")
            answer = _ids(tokenizer, f"{row['response']} </s>")
            logits = model(torch.tensor([context + answer])).logits[0].log_softmax(-1)
            losses += [-logits[len(context) + i - 1, t].item() for i, t in enumerate(answer)]
    expected = float(np.mean(losses))
    dataset = Dataset.from_list([{"system": None, **row} for row in rows])
    config = TrainConfig(steps=1, batch_size=2, lr=1e-3, max_length=64, log_every=1)
    result, _ = train_on_task(model, tokenizer, dataset, config, seed=0, label="chat")
    assert result.final_loss == pytest.approx(expected, rel=1e-5)


def test_system_prompt_reaches_the_training_rows(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"prompt": "who", "response": "a cat"}] * 2)
    write_jsonl(tmp_path / "test.jsonl", [{"prompt": "who", "response": "a cat"}])
    task = local_stream_task("t", tmp_path / "train.jsonl", tmp_path / "test.jsonl", None)
    [task] = with_system_prompt([task], "be kind")
    assert task.train["system"] == ["be kind", "be kind"]


def _stream_rows(tmp_path) -> StreamTask:
    rows = [{"prompt": p, "response": r} for p, r in [("who are you", "a cat"), ("what is it", "a red dog")] * 3]
    write_jsonl(tmp_path / "held.jsonl", rows)
    return local_stream_task("pets", tmp_path / "held.jsonl", tmp_path / "held.jsonl", None)


@pytest.mark.parametrize("chat", [True, False])
def test_templated_evaluation_is_the_same_under_both_engines(template_file, tmp_path, chat):
    model, tokenizer = _llama(template_file, width=64)
    loaded = LoadedModel("tiny-chat", model.eval(), tokenizer)
    write_jsonl(
        tmp_path / "mc.jsonl",
        [
            {"question": q, "choices": ["a cat", "a dog", "red"], "answer": i % 3}
            for i, q in enumerate(["who are you", "what is it"] * 4)
        ],
    )
    files = [
        {
            "name": "mc",
            "files": str(tmp_path / "mc.jsonl"),
            "prompt": "{{question}}",
            "response": "{{choices[answer]}}",
            "scoring": "multiple_choice",
            "choices": "choices",
            "held_out": 1,
        }
    ]
    items = {}
    for engine in ("lm_eval", "fast"):
        suite = EvalSuite(
            "chat",
            [],
            files=files,
            engine=engine,
            batch_size=4,
            apply_chat_template=chat,
            system_instruction="be kind" if chat else None,
        )
        bridge = LmEvalBridge(suite, [_stream_rows(tmp_path)], tokenizer)
        evaluation = bridge.evaluate(loaded)
        items[engine] = evaluation.items.sort_values(["eval_task", "doc_id"], ignore_index=True)
        if engine == "fast" and chat:  # the requests went through the template, with the system turn
            context = bridge.engine.contexts()[0]
            assert tokenizer.decode(list(context)).startswith("system : be kind </s> user :")
    assert items["fast"][["eval_task", "doc_id"]].equals(items["lm_eval"][["eval_task", "doc_id"]])
    np.testing.assert_allclose(
        np.concatenate(items["fast"]["logliks"].tolist()),
        np.concatenate(items["lm_eval"]["logliks"].tolist()),
        rtol=1e-5,
        atol=1e-4,
    )


def test_the_errors_are_one_line(template_file, tmp_path):
    _, tokenizer = tiny_model("llama", WORDS)
    with pytest.raises(ForgetbenchError, match=r"^eval.apply_chat_template=true, but the model has no chat template"):
        EvalSuite("x", [], apply_chat_template=True).chat_options(tokenizer.chat_template)
    with pytest.raises(ForgetbenchError, match=r"^model.chat_template='nope.jinja' is not valid: give auto, none or"):
        apply_chat_setting(tokenizer, "nope.jinja", encoder_decoder=False)
    with pytest.raises(ForgetbenchError, match=r"an encoder-decoder model is trained on plain text"):
        apply_chat_setting(tokenizer, str(template_file), encoder_decoder=True)
    assert apply_chat_setting(tokenizer, "auto", encoder_decoder=True) is None  # mT0: plain text
    # the hash follows the file's content, not its path
    other = tmp_path / "same.jinja"
    other.write_text(TEMPLATE)
    assert chat_setting_key(str(other)) == chat_setting_key(str(template_file)) != chat_setting_key("auto")


def test_cli_fine_tunes_and_evaluates_the_tiny_decoder_through_a_template(template_file, tmp_path, cache_dir):
    done = run_cli(
        [f"model.chat_template={template_file}", *SMALL, "stream.system_prompt=be kind"],
        tmp_path,
        cache_dir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    logs = done.stdout + done.stderr
    assert "chat template in force: training labels the assistant turns; evaluation applies it" in logs


def test_files_stream_takes_a_messages_column(template_file, tmp_path):
    from forgetbench.streams.files import FilesStream

    conversation = [
        {"role": "user", "content": "who are you"},
        {"role": "assistant", "content": "a cat"},
        {"role": "user", "content": "what is it"},
        {"role": "assistant", "content": "a red dog"},
    ]
    write_jsonl(tmp_path / "chats.jsonl", [{"messages": conversation}] * 4)
    stream = FilesStream(
        "chats",
        [{"name": "chats", "files": str(tmp_path / "chats.jsonl"), "messages": "messages", "held_out": 1}],
        system_prompt="be kind",
    )
    [task] = stream.load()
    row = task.train[0]
    assert (row["prompt"], row["response"], row["system"]) == ("who are you\na cat\nwhat is it", "a red dog", "be kind")
    _, tokenizer = _llama(template_file)
    example = tokenize_pairs(task.train, tokenizer, False, TrainConfig(max_length=64))[0]
    assert example["input_ids"][:4] == _ids(tokenizer, "system : be kind")
    labelled = [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != IGNORE]
    assert labelled == _ids(tokenizer, "a cat </s> a red dog </s>")  # every assistant turn is learned
    assert task.test_rows[0] == {"prompt": "who are you\na cat\nwhat is it", "response": "a red dog"}
    with pytest.raises(ForgetbenchError, match=r"give prompt and response templates .*, or messages"):
        FilesStream("x", [{"name": "x", "files": str(tmp_path / "chats.jsonl")}])
