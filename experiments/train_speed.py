"""Training throughput of the loop's switches, one table: tokens/s (real tokens only), MFU, peak memory.

    python experiments/train_speed.py            # a GPU when there is one: the real model shapes
    python experiments/train_speed.py --tiny     # tiny shapes (the default without a GPU): shows the script works

Rows: the plain loop as it is (`train.packing=false train.fused_loss=false train.compile=false`),
+ packing (`train.packing`), + the chunked loss (`train.fused_loss`), + `torch.compile`
(`train.compile`), for the 1.1B BLOOM shape (BLOOMZ-1b1), the 1.2B mT0 shape (mT0-large) and a
Llama shape, at the micro-batch of their model configs. Random-init weights of the real configs (no
Hub), fp32 weights with bf16 autocast on a GPU, as train=luo2023 runs them. The same
instruction-sized examples for every row (prompts of 40-250 tokens, responses of 10-100): padded
per micro-batch of ``batch_size`` examples as the loop pads them, or packed into ``batch_size``
rows of 512 tokens as ``train.packing`` packs them.

- tokens/s counts real tokens only: non-padding input tokens (and, encoder-decoder, label tokens);
- fill: real tokens over all token positions the micro-batches hold (padding is the rest);
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
from forgetbench.training.packing import forward_inputs, isolation, split_step

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
    ("+ packing", {"packing": True}),
    ("+ packing + fused loss", {"packing": True, "fused_loss": True}),
    ("+ packing + fused loss + compile", {"packing": True, "fused_loss": True, "compile": True}),
]
ROW_TOKENS = 512  # train=luo2023's max_length


def model_of(shape: dict, tiny: bool, device: torch.device):
    shape = dict(shape) | ({k: v for k, v in TINY.items() if k in shape or k == "vocab_size"} if tiny else {})
    config = AutoConfig.for_model(shape.pop("model_type"), **shape)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    torch.manual_seed(0)
    return auto.from_config(config).to(device).train()


def examples(config, n: int) -> list[dict]:
    """``n`` instruction-sized examples (prompt 40-250, response 10-100 tokens) as the loop tokenizes them."""
    rng = random.Random(0)
    out = []
    for _ in range(n):
        prompt = [rng.randrange(3, config.vocab_size) for _ in range(rng.randint(40, 250))]
        response = [rng.randrange(3, config.vocab_size) for _ in range(rng.randint(10, 100))]
        if config.is_encoder_decoder:
            out.append({"input_ids": prompt, "labels": response})
        else:
            out.append({"input_ids": prompt + response, "labels": [-100] * len(prompt) + response})
    return out


def batches(model, train: TrainConfig, data: list[dict]) -> list[tuple[dict, int, str | None]]:
    """Micro-batches of ``data`` as the loop makes them: (tensors, real tokens, packing family or None)."""
    encoder_decoder = model.config.is_encoder_decoder
    if not train.packing:
        chunks = [data[i : i + train.batch_size] for i in range(0, len(data), train.batch_size)]
        return [(_pad(chunk, encoder_decoder), _real(chunk, encoder_decoder), None) for chunk in chunks]
    family = isolation(model)
    start = model.config.decoder_start_token_id if encoder_decoder else None
    packed = split_step(data, family, ROW_TOKENS, train.batch_size, 0, start, 1)
    tokens = [micro.tokens + (int((micro.batch["labels"] != -100).sum()) if encoder_decoder else 0) for micro in packed]
    return [(micro.batch, count, family) for micro, count in zip(packed, tokens)]


def _pad(chunk: list[dict], encoder_decoder: bool) -> dict:
    width = max(len(e["input_ids"]) for e in chunk)
    target = max(len(e["labels"]) for e in chunk)
    ids, mask = torch.zeros(len(chunk), width, dtype=torch.long), torch.zeros(len(chunk), width, dtype=torch.long)
    labels = torch.full((len(chunk), target), -100)
    for row, example in enumerate(chunk):
        n = len(example["input_ids"])
        ids[row, :n], mask[row, :n] = torch.tensor(example["input_ids"]), 1
        labels[row, : len(example["labels"])] = torch.tensor(example["labels"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _positions(batch: dict, model) -> int:
    """Token positions a micro-batch holds: its input rows' (and an encoder-decoder's label rows')."""
    return batch["input_ids"].numel() + (batch["labels"].numel() if model.config.is_encoder_decoder else 0)


def _real(chunk: list[dict], encoder_decoder: bool) -> int:
    """Non-padding tokens: the inputs', and an encoder-decoder's decoder tokens too."""
    return sum(len(e["input_ids"]) + (len(e["labels"]) if encoder_decoder else 0) for e in chunk)


def measure(model, train: TrainConfig, data: list, device: torch.device) -> float:
    """Tokens/s over a second pass through ``data`` (the first warms up: compiles each shape, allocates),
    one optimizer step per micro-batch."""
    optimizer = build_optimizer(model, train)
    module = compiled(model) if train.compile else model
    for _pass in ("warm-up", "timed"):
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        tokens, start = 0, time.perf_counter()
        for batch, real, family in data:
            batch = {key: value.to(device) for key, value in batch.items()}
            with autocast(device, train.autocast):
                if family is None:
                    loss = lm_loss(model, batch, train, module)
                else:
                    with forward_inputs(model, batch, family) as inputs:
                        loss = lm_loss(model, inputs, train, module)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += real
        _sync(device)
    return tokens / (time.perf_counter() - start)


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
    parser.add_argument("--examples", type=int, default=None, help="examples per row (default: 640 GPU, 96 CPU)")
    parser.add_argument("--models", nargs="*", default=list(SHAPES))
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiny = args.tiny or device.type == "cpu"
    n_examples = args.examples or (640 if device.type == "cuda" else 96)
    peak = peak_flops(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {where}; {'tiny' if tiny else 'real'} shapes; {n_examples} examples, timed in a second pass")
    print("| model | parameters | micro-batch | loop | micro-batches | fill | tokens/s | MFU | peak memory (GiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        shape, batch_size = SHAPES[name]
        for label, switches in SWITCHES:
            model = model_of(shape, tiny, device)
            train = replace(TrainConfig(steps=1, batch_size=batch_size, lr=1e-5), **switches)
            train.autocast = "bfloat16" if device.type == "cuda" else None
            data = batches(model, train, examples(model.config, n_examples))
            rate = measure(model, train, data, device)
            fill = sum(real for _, real, _ in data) / sum(_positions(batch, model) for batch, _, _ in data)
            n = sum(p.numel() for p in model.parameters())
            mfu = f"{100 * 6 * n * rate / peak:.1f}%" if peak else "n/a"
            memory = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}" if device.type == "cuda" else "n/a"
            cells = [name, f"{n / 1e6:,.1f}M", batch_size, label, len(data), f"{fill:.0%}", f"{rate:,.0f}", mfu, memory]
            print("| " + " | ".join(map(str, cells)) + " |", flush=True)
            del model


if __name__ == "__main__":
    main()
