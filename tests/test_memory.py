"""Training a 7B model on one 80 GB GPU: the bf16 optimizer keeps small updates, the memory
tracer counts what training holds, and each model's batch accumulates to the study's 128."""

from __future__ import annotations

import re

import pytest
import torch
from hydra.utils import instantiate
from transformers import LlamaConfig, LlamaForCausalLM

from experiments.memory_tracing import traced_training_peak
from forgetbench.errors import ForgetbenchError
from forgetbench.memory import describe_peak, peak_bytes, reset_peak
from forgetbench.training import TrainConfig
from forgetbench.training.optim import StochasticRoundingAdamW, stochastic_round_to_bf16
from tests.conftest import compose


def test_stochastic_rounding_is_unbiased_and_lands_on_neighbours() -> None:
    torch.manual_seed(0)
    value = 1 + 2**-10  # a quarter of the way from bf16's 1.0 to its next value, 1 + 2**-7
    rounded = stochastic_round_to_bf16(torch.full((200_000,), value)).float()
    assert set(rounded.unique().tolist()) == {1.0, 1 + 2**-7}
    assert rounded.mean().item() == pytest.approx(value, abs=2e-5)
    exact = torch.tensor([1.0, -2.5, 0.0, 3.0e38], dtype=torch.bfloat16).float()
    assert torch.equal(stochastic_round_to_bf16(exact).float(), exact)  # representable values stay
    negative = stochastic_round_to_bf16(torch.full((200_000,), -value)).float()
    assert negative.mean().item() == pytest.approx(-value, abs=2e-5)


def _train_constant_gradient(optimizer_class, dtype: torch.dtype, steps: int = 20) -> torch.Tensor:
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.ones(20_000, dtype=dtype))
    optimizer = optimizer_class([weight], lr=1e-4, weight_decay=0.0)
    for _ in range(steps):
        weight.grad = torch.ones_like(weight)
        optimizer.step()
    return weight.detach().float()


def test_bf16_weights_keep_updates_smaller_than_their_precision() -> None:
    reference = _train_constant_gradient(torch.optim.AdamW, torch.float32)  # each step moves 1e-4
    assert reference.mean().item() == pytest.approx(1 - 20e-4, abs=1e-6)
    plain = _train_constant_gradient(torch.optim.AdamW, torch.bfloat16)
    assert torch.equal(plain, torch.ones_like(plain))  # rounding to nearest dropped every update
    rounded = _train_constant_gradient(StochasticRoundingAdamW, torch.bfloat16)
    assert rounded.mean().item() == pytest.approx(reference.mean().item(), abs=5e-5)


def test_on_float32_weights_it_is_adamw() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 8)
    twin = torch.nn.Linear(16, 8)
    twin.load_state_dict(model.state_dict())
    ours = StochasticRoundingAdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    torchs = torch.optim.AdamW(twin.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(5):
        x = torch.randn(4, 16)
        for net, optimizer in ((model, ours), (twin, torchs)):
            optimizer.zero_grad()
            net(x).pow(2).mean().backward()
            optimizer.step()
    for mine, theirs in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_traced_peak_counts_weights_gradients_and_states_at_their_sizes() -> None:
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    )
    train = TrainConfig(batch_size=1, max_length=8)
    peak = traced_training_peak(config, torch.bfloat16, train, gradient_checkpointing=True, target_length=4)
    n_params = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    assert peak.by_kind["Parameter"] == 2 * n_params  # bf16 weights
    assert peak.by_kind["Gradient"] == 2 * n_params  # bf16 gradients
    # two bf16 moments, plus the float32 temporaries of the update of the largest tensor (the
    # tracer counts what the optimizer allocates during its step as optimizer memory)
    largest = max(p.numel() for p in LlamaForCausalLM(config).parameters())
    assert 4 * n_params < peak.by_kind["Optstate"] <= 4 * n_params + 32 * largest
    fp32 = traced_training_peak(config, torch.float32, train, gradient_checkpointing=False)
    assert fp32.by_kind["Parameter"] == 4 * n_params and fp32.by_kind["Optstate"] >= 8 * n_params


def test_each_model_batch_accumulates_to_the_studys_batch() -> None:
    for model in ("bloomz_560m", "bloomz_7b1", "mt0_xl", "llama_7b"):
        cfg = compose([f"model={model}", "train=luo2023"])
        train = instantiate(cfg.train)
        assert train.batch_size == cfg.model.train_batch_size
        assert train.batch_size * train.grad_accum == 128
    with pytest.raises(ForgetbenchError, match="train.batch_size=12 does not divide train.effective_batch_size=128"):
        TrainConfig(batch_size=12, effective_batch_size=128)


@pytest.mark.parametrize("route", ["oracle", "learned"])
def test_traced_peak_knows_the_adapters_and_the_routers_gate(route) -> None:
    """method=adapters traced at the stream's last task: one adapter per task (float32 beside bf16
    weights), the gate when the route is learned; only the current task's adapter (and the gate) is
    trained, so gradients and optimizer states are theirs alone."""
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    )
    cfg = compose(["method=adapters", f"method.route={route}", "train.packing=false", "train.fused_loss=false"])
    method = instantiate(cfg.method)
    train = TrainConfig(batch_size=1, max_length=8)
    tasks = ["a", "b", "c"]
    peak = traced_training_peak(config, torch.bfloat16, train, False, method=method, stream_tasks=tasks)
    base = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    rank, layers, hidden = cfg.method.lora.r, config.num_hidden_layers, config.hidden_size
    per_adapter = layers * 2 * (2 * rank * hidden)  # q_proj and v_proj: A (r × d) and B (d × r)
    gate = (hidden + 1) * len(tasks) if route == "learned" else 0
    assert peak.added_parameters == len(tasks) * per_adapter + gate
    assert peak.trainable_parameters == per_adapter + gate
    assert peak.by_kind["Parameter"] == 2 * base + 4 * peak.added_parameters
    assert peak.by_kind["Gradient"] <= 4 * peak.trainable_parameters  # the frozen base has none
    states = 8 * peak.trainable_parameters  # AdamW's two float32 moments
    assert states <= peak.by_kind["Optstate"] <= states + 32 * hidden * rank
    full = traced_training_peak(config, torch.bfloat16, train, False)
    assert full.added_parameters == 0 and full.trainable_parameters == base


def test_a_tasks_peak_memory_starts_from_what_is_held_now() -> None:
    """The runner logs each task's peak (forgetbench/memory.py): on this CPU the resident set's peak,
    which a reset brings down to what the process holds once a large buffer is gone."""
    cpu = torch.device("cpu")
    buffer = torch.ones(50_000_000)  # 200 MB, freed below (a large allocation goes back to the system)
    with_buffer = peak_bytes(cpu)
    del buffer
    reset_peak(cpu)
    after = peak_bytes(cpu)
    assert with_buffer - after > 150 * 2**20
    assert re.fullmatch(r"peak memory [\d,]+ MiB \(process resident set\)", describe_peak(cpu))
