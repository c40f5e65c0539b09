"""Chat templates: which one a model is trained and evaluated through, and which tokens carry loss.

``model.chat_template`` chooses the format once, on the tokenizer, where both training and lm-eval
read it:

- ``auto``: the tokenizer's own template when it has one (SmolLM2-Instruct, Qwen2.5-Instruct), else
  plain text (base models, the tiny world, mT0: an encoder-decoder is always plain text);
- ``none``: plain text, the template taken off (kept aside: ``eval.apply_chat_template=true`` still
  evaluates through it, which shows what plain-text fine-tuning did to the chat format);
- a path: that Jinja file becomes the tokenizer's template (decoders only).

Training renders an example as messages (an optional system turn, the prompt as the user's turn,
the response as the assistant's, or a row's own ``messages``) through ``apply_chat_template`` and
puts labels on the assistant turns only, their end-of-turn token included: what TRL's
``assistant_only_loss`` trains. TRL finds those tokens through ``{% generation %}`` markers, which
few shipped templates have (SmolLM2's and Qwen2.5's do not); here an assistant turn is the text its
rendering adds after the conversation before it with the generation prompt, which works for any
template that renders earlier turns the same once later ones follow (every common one does; one
that does not is refused, never trained with the wrong tokens labelled).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from forgetbench.errors import ForgetbenchError

IGNORE = -100  # the label of a token without loss
_SET_ASIDE = "forgetbench_own_chat_template"  # where ``none`` keeps the tokenizer's own template
CHAT_SETTINGS = ("auto", "none")  # or a path to a Jinja file


def check_chat_setting(setting: str) -> None:
    """``model.chat_template`` is auto, none or an existing file, or a one-line error."""
    if setting not in CHAT_SETTINGS and not Path(setting).expanduser().is_file():
        raise ForgetbenchError(
            f"model.chat_template={setting!r} is not valid: give auto, none or the path of a Jinja template file"
        )


def apply_chat_setting(tokenizer: PreTrainedTokenizerBase, setting: str, encoder_decoder: bool) -> str | None:
    """Put ``model.chat_template``'s choice on ``tokenizer`` (see the module doc); return the template
    now in force, or None for plain text."""
    if setting == "none" or (setting == "auto" and encoder_decoder):
        setattr(tokenizer, _SET_ASIDE, tokenizer.chat_template or getattr(tokenizer, _SET_ASIDE, None))
        tokenizer.chat_template = None
        return None
    if setting == "auto":
        return tokenizer.chat_template or None
    check_chat_setting(setting)
    path = Path(setting).expanduser()
    if encoder_decoder:
        raise ForgetbenchError(
            f"model.chat_template={setting!r}: an encoder-decoder model is trained on plain text "
            "(its prompt is the encoder's input); use auto or none"
        )
    tokenizer.chat_template = path.read_text()
    return tokenizer.chat_template


def available_template(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The template evaluation can apply: the one in force, else the tokenizer's own set aside by ``none``."""
    return getattr(tokenizer, "chat_template", None) or getattr(tokenizer, _SET_ASIDE, None)


@contextlib.contextmanager
def template_in_force(tokenizer: PreTrainedTokenizerBase, apply: bool) -> Iterator[None]:
    """Within the block, the tokenizer's own template is in force when ``apply`` and ``none`` set it
    aside (lm-eval reads ``tokenizer.chat_template``); training, outside, stays plain text."""
    if not apply or tokenizer.chat_template:
        yield
        return
    tokenizer.chat_template = available_template(tokenizer)
    try:
        yield
    finally:
        tokenizer.chat_template = None


def chat_setting_key(setting: str) -> str:
    """What of ``model.chat_template`` enters the config hash: the setting, or a template file's
    content (editing the file makes another run, moving it does not)."""
    if setting in CHAT_SETTINGS or not Path(setting).expanduser().is_file():
        return setting
    return "sha256:" + hashlib.sha256(Path(setting).expanduser().read_bytes()).hexdigest()[:16]


def row_messages(row: dict) -> list[dict]:
    """A training row as messages: its own ``messages``, or system (when the row has one), the
    prompt as the user's turn and the response as the assistant's."""
    system = row.get("system")
    if row.get("messages"):
        messages = [dict(m) for m in row["messages"]]
        return (
            [{"role": "system", "content": system}] if system and messages[0]["role"] != "system" else []
        ) + messages
    turns = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
    return ([{"role": "system", "content": system}] if system else []) + turns


def assistant_spans(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The whole conversation rendered, and the character span of each assistant turn in it (from
    the end of its generation prompt to the end of its rendering, end-of-turn token included)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(messages[: index + 1], tokenize=False)
        if not (text.startswith(before) and text.startswith(upto) and upto.startswith(before)):
            raise ForgetbenchError(
                "model.chat_template renders earlier turns differently once later ones follow, so the "
                "assistant's tokens cannot be told apart; give a template file that does not (model.chat_template=PATH)"
            )
        spans.append((len(before), len(upto)))
    if not spans:
        raise ForgetbenchError(f"a training conversation has no assistant turn to learn: {messages}")
    return text, spans


def chat_example(tokenizer: PreTrainedTokenizerBase, row: dict, max_length: int, loss_on_prompt: bool) -> dict:
    """``input_ids`` and ``labels`` of one row rendered through the tokenizer's chat template: labels
    on the tokens that start inside an assistant turn (every token with ``loss_on_prompt``), the
    rest -100; truncated from the left, as plain text is, so the last answer is kept."""
    if not tokenizer.is_fast:
        raise ForgetbenchError(
            f"chat templates need a fast tokenizer (for token offsets); {type(tokenizer).__name__} is not"
        )
    text, spans = assistant_spans(tokenizer, row_messages(row))
    # the template writes the special tokens itself (BOS, turn markers): none are added
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    labels = [
        token if loss_on_prompt or any(start <= begin < end for start, end in spans) else IGNORE
        for token, (begin, _) in zip(ids, encoded["offset_mapping"], strict=True)
    ]
    return {"input_ids": ids[-max_length:], "labels": labels[-max_length:]}
