"""A word-level tokenizer for the tiny world.

A word-level vocabulary is what lets a sub-million-parameter model learn the
world in a minute on a CPU (a character-level one of the same size learned
far less in five times as long). It is a real ``tokenizers`` tokenizer wrapped
in ``PreTrainedTokenizerFast``, so it saves, loads and runs inside lm-eval like
any Hub tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "bos_token": "<s>", "unk_token": "<unk>"}


def build_word_tokenizer(texts: Iterable[str], input_eos: bool = False) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is every whitespace-separated word of ``texts``.

    Encoding adds no special tokens, unless ``input_eos``: then, as T5's tokenizer does, it closes
    each text with ``</s>`` where special tokens are asked for (an encoder-decoder's input, in
    training and in lm-eval's seq2seq contexts). Training appends the responses' EOS itself, and
    lm-eval scores continuations on the plain words.
    """
    words = sorted({word for text in texts for word in text.split()})
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS.values())}
    vocab.update({word: len(vocab) + i for i, word in enumerate(words)})
    return _word_level(vocab, input_eos)


def extend_word_tokenizer(tokenizer: PreTrainedTokenizerFast, words: Iterable[str]) -> PreTrainedTokenizerFast:
    """``tokenizer`` with the ``words`` it lacks appended to its vocabulary (the ids it has stay; a model
    grows its embeddings to match): how a post-training stage brings words the corpus never had."""
    vocab = dict(tokenizer.get_vocab())
    for word in sorted(set(words) - set(vocab)):
        vocab[word] = len(vocab)
    return _word_level(vocab, tokenizer.backend_tokenizer.post_processor is not None)


def _word_level(vocab: dict[str, int], input_eos: bool) -> PreTrainedTokenizerFast:
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    if input_eos:
        eos = SPECIAL_TOKENS["eos_token"]
        core.post_processor = processors.TemplateProcessing(single=f"$A {eos}", special_tokens=[(eos, vocab[eos])])
    return PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)
