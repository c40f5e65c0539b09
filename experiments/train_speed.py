"""Training throughput of the loop's switches, one table: tokens/s (real tokens only), MFU, peak memory.

    python experiments/train_speed.py            # a GPU when there is one: the real model shapes
    python experiments/train_speed.py --tiny     # tiny shapes (the default without a GPU): shows the script works

Rows: the plain loop as it is (`train.fused_loss=false train.compile=false`), + the chunked loss
(`train.fused_loss`), + `torch.compile` (`train.compile`), for the 1.1B BLOOM shape (BLOOMZ-1b1),
the 1.2B mT0 shape (mT0-large) and a Llama shape, at the micro-batch of their model configs.
Random-init weights of the real configs (no Hub), fp32 weights with bf16 autocast on a GPU, as
train=luo2023 runs them. Examples are instruction-sized: prompts of 40-250 tokens and responses of
10-100, padded per micro-batch as the loop pads them (packing is not built yet).

- tokens/s counts real tokens only: non-padding input tokens (and, encoder-decoder, label tokens);
- MFU = 6 · parameters · tokens/s / the device's dense bf16 peak (H100/H200 SXM: 989 TFLOPS);
  n/a on a CPU;
- peak memory: ``torch.cuda.max_memory_allocated`` on a GPU; n/a on a CPU.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from forgetbench.training import TrainConfig, autocast, build_optimizer, compiled, lm_loss

BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s, by device name
SHAPES = {  # name: (config, micro-batch of its model config)
    "bloom_1b1": ({"model_type": "bloom", "vocab_size": 250880, "hidden_size": 1536, "n_layer": 24, "n_head": 16}, 16),
    "mt0_large": (
        {"model_type": "mt5", "vocab_size": 250112, "d_model": 1024, "d_ff": 2816, "d_kv": 64, "num_heads": 16}
        | {"num_layers": 24, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False},
        8,
    ),
    "llama_1b": (
        {"model_type": "llama", "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632}
        | {"num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4},
        16,
    ),
}
TINY = {"hidden_size": 64, "n_layer": 2, "n_head": 4, "d_model": 64, "d_ff": 128, "d_kv": 16, "num_heads": 4}
TINY |= {"num_layers": 2, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
TINY |= {"num_key_value_heads": 4, "vocab_size": 4096}
SWITCHES = [
    ("plain loop", {}),
    ("+ fused loss", {"fused_loss": True}),
    ("+ fused loss + compile", {"fused_loss": True, "compile": True}),
]


def model_of(shape: dict, tiny: bool, device: torch.device):
    shape = dict(shape) | ({k: v for k, v in TINY.items() if k in shape or k == "vocab_size"} if tiny else {})
    config = AutoConfig.for_model(shape.pop("model_type"), **shape)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    torch.manual_seed(0)
    return auto.from_config(config).to(device).train()


def batches(config, batch_size: int, n: int, device: torch.device) -> list[dict]:
    """``n`` padded micro-batches of instruction-sized examples (prompt 40-250, response 10-100 tokens)."""
    rng = random.Random(0)
    out = []
    for _ in range(n):
        pairs = [(rng.randint(40, 250), rng.randint(10, 100)) for _ in range(batch_size)]
        out.append(_pad(config, pairs, rng, device))
    return out


def _pad(config, pairs, rng, device) -> dict:
    vocab = config.vocab_size
    if config.is_encoder_decoder:
        width, target = max(p for p, _ in pairs), max(r for _, r in pairs)
        ids = torch.zeros(len(pairs), width, dtype=torch.long)
        mask, labels = torch.zeros_like(ids), torch.full((len(pairs), target), -100)
        for row, (p, r) in enumerate(pairs):
            ids[row, :p], mask[row, :p] = torch.randint(3, vocab, (p,)), 1
            labels[row, :r] = torch.randint(3, vocab, (r,))
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}
    width = max(p + r for p, r in pairs)
    ids = torch.zeros(len(pairs), width, dtype=torch.long)
    mask, labels = torch.zeros_like(ids), torch.full((len(pairs), width), -100)
    for row, (p, r) in enumerate(pairs):
        tokens = torch.randint(3, vocab, (p + r,))
        ids[row, : p + r], mask[row, : p + r], labels[row, p : p + r] = tokens, 1, tokens[p:]
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def real_tokens(batch: dict, encoder_decoder: bool) -> int:
    """Non-padding tokens: the inputs', and an encoder-decoder's labelled decoder tokens too."""
    tokens = int(batch["attention_mask"].sum())
    return tokens + int((batch["labels"] != -100).sum()) if encoder_decoder else tokens


def measure(model, train: TrainConfig, data: list[dict], warmup: int, device: torch.device) -> tuple[float, float]:
    """(tokens/s, seconds) over ``data`` after ``warmup`` micro-batches, one optimizer step per micro-batch."""
    optimizer = build_optimizer(model, train)
    module = compiled(model) if train.compile else model
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tokens, start = 0, 0.0
    for index, batch in enumerate(data):
        if index == warmup:
            _sync(device)
            tokens, start = 0, time.perf_counter()
        with autocast(device, train.autocast):
            loss = lm_loss(model, batch, train, module)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += real_tokens(batch, model.config.is_encoder_decoder)
    _sync(device)
    seconds = time.perf_counter() - start
    return tokens / seconds, seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in BF16_PEAK.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (default without a GPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed micro-batches (default: 20 GPU, 6 CPU)")
    parser.add_argument("--models", nargs="*", default=list(SHAPES))
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiny = args.tiny or device.type == "cpu"
    steps, warmup = args.steps or (20 if device.type == "cuda" else 6), 3
    peak = peak_flops(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {where}; {'tiny' if tiny else 'real'} shapes; {steps} timed micro-batches after {warmup}")
    print("| model | parameters | micro-batch | loop | tokens/s | MFU | peak memory (GiB) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        shape, batch_size = SHAPES[name]
        for label, switches in SWITCHES:
            model = model_of(shape, tiny, device)
            train = replace(TrainConfig(steps=1, batch_size=batch_size, lr=1e-5), **switches)
            train.autocast = "bfloat16" if device.type == "cuda" else None
            data = batches(model.config, batch_size, warmup + steps, device)
            rate, _ = measure(model, train, data, warmup, device)
            n = sum(p.numel() for p in model.parameters())
            mfu = f"{100 * 6 * n * rate / peak:.1f}%" if peak else "n/a"
            memory = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}" if device.type == "cuda" else "n/a"
            print(f"| {name} | {n / 1e6:,.1f}M | {batch_size} | {label} | {rate:,.0f} | {mfu} | {memory} |", flush=True)
            del model


if __name__ == "__main__":
    main()
