"""Greedy generation outside an evaluation, through the fast engine (a method's rewrites: SDFT)."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase


def generate_greedily(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    until: list[str],
    max_new_tokens: int,
    token_budget: int = 16384,
) -> list[str]:
    """Each prompt's greedy continuation, cut at the first of ``until`` (and at EOS), batched by the
    fast engine as its generation tasks are; the model is left in the mode it was in."""
    from forgetbench.evaluation.fast_engine import FastLM  # lm-eval: imported when used

    backend = "seq2seq" if model.config.is_encoder_decoder else "causal"
    lm = FastLM(pretrained=model, tokenizer=tokenizer, backend=backend, batch_size=1, token_budget=token_budget)
    eos = tokenizer.eos_token
    was_training = model.training
    model.eval()
    try:
        return lm.generate(prompts, [*until, *([eos] if eos else [])], max_new_tokens)
    finally:
        model.train(was_training)
