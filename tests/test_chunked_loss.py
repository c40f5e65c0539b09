"""The chunked output layer + cross-entropy equals the models' own loss, in value and gradients."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

from forgetbench.errors import ForgetbenchError
from forgetbench.training import TrainConfig, make_loader
from forgetbench.training.chunked_loss import chunked_lm_loss
from tests.helpers import tiny_model

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "birds sing at dawn", "rain falls on the roof"]


def _batch(model, tokenizer) -> dict[str, torch.Tensor]:
    rows = Dataset.from_list([{"prompt": t, "response": t.split()[-1] + " " + t.split()[0]} for t in TEXTS])
    loader = make_loader(rows, tokenizer, model, TrainConfig(steps=1, batch_size=4), batch_size=4, seed=0)
    return next(iter(loader))


def _gradients(model, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["llama", "bloom", "mt5"])
def test_chunked_loss_equals_the_models_loss_and_gradients(kind: str) -> None:
    """Chunks of 5 tokens (several per batch, the last one short); fp32: equal to 1e-6 relative in value
    (the loss is of order 10, where one float32 step is 1e-6: summing in chunks may round one step
    apart, as it did for mT5 on this machine), gradients to 1e-6 (absolute; they are of order 1e-2 here)."""
    model, tokenizer = tiny_model(kind, TEXTS)
    model.eval()  # no dropout: both losses see the same network (gradients flow in eval mode too)
    batch = _batch(model, tokenizer)
    plain = model(**batch).loss
    chunked = chunked_lm_loss(model, batch, chunk_tokens=5)
    assert torch.allclose(chunked, plain, atol=0, rtol=1e-6), (chunked.item(), plain.item())
    expected, got = _gradients(model, plain), _gradients(model, chunked_lm_loss(model, batch, chunk_tokens=5))
    assert expected.keys() == got.keys()
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-6, rtol=0), name
    assert model(**batch).logits.shape[-1] == len(tokenizer)  # the output layer is back in place


def test_a_model_without_a_plain_output_layer_is_refused() -> None:
    model, _ = tiny_model("llama", TEXTS)
    model.config.final_logit_softcapping = 30.0
    with pytest.raises(ForgetbenchError, match="train.fused_loss=true needs a plain linear output layer"):
        chunked_lm_loss(model, {"input_ids": torch.ones(1, 2, dtype=torch.long), "labels": torch.ones(1, 2)})


def test_training_with_the_chunked_loss_follows_the_plain_loop() -> None:
    """train.fused_loss=true in the real loop: after 5 AdamW steps the weights equal the plain loop's
    (fp32; measured identical here, asserted to 1e-5 for other CPUs)."""
    from forgetbench.training import train_on_task

    rows = Dataset.from_list([{"prompt": t, "response": t.split()[-1]} for t in TEXTS])
    weights = []
    for fused in (False, True):
        model, tokenizer = tiny_model("llama", TEXTS)
        config = TrainConfig(steps=5, batch_size=2, lr=1e-3, fused_loss=fused)
        train_on_task(model, tokenizer, rows, config, seed=0)
        weights.append({name: p.detach().clone() for name, p in model.named_parameters()})
    changed = max((weights[0][n] - tiny_model("llama", TEXTS)[0].state_dict()[n]).abs().max() for n in weights[0])
    assert changed > 1e-3  # the steps moved the weights
    assert max((weights[0][n] - weights[1][n]).abs().max() for n in weights[0]) < 1e-5


def test_a_compiled_training_step_follows_the_eager_loop() -> None:
    """train.compile=true: the same weights after 2 steps (tolerance 1e-4: compiled kernels may fuse
    and reorder floating-point work), and the state dict keeps its names (the compiled wrapper is no submodule)."""
    from forgetbench.training import train_on_task

    rows = Dataset.from_list([{"prompt": t, "response": t.split()[-1]} for t in TEXTS])
    weights = []
    for compile_steps in (False, True):
        model, tokenizer = tiny_model("llama", TEXTS)
        train_on_task(
            model, tokenizer, rows, TrainConfig(steps=2, batch_size=4, lr=1e-3, compile=compile_steps), seed=0
        )
        weights.append(model.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert max((weights[0][n] - weights[1][n]).abs().max() for n in weights[0]) < 1e-4
