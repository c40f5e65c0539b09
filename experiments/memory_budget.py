"""Peak GPU memory of training every Hub model config at its configured batch.

    python experiments/memory_budget.py                    # every model, train=luo2023
    python experiments/memory_budget.py bloomz_7b1 --fit   # also the largest batch that fits
    python experiments/memory_budget.py mt0_xxl --gpus 2 --gpus 4   # per GPU under distributed=fsdp
    python experiments/memory_budget.py bloomz_7b1 --override method=adapters --override method.route=learned \
        --override train.packing=false --override train.fused_loss=false  # a method's adapters and gate

Each model is built at its real size on fake tensors (nothing is allocated) and micro-batches of
train.max_length tokens go through forward, backward and two optimizer steps as training runs
them (dtype, autocast, gradient checkpointing, optimizer from the configs), the second with
weights, gradients and optimizer states all held; PyTorch's MemTracker reports the peak (see
experiments/memory_tracing.py). Runs on a CPU in about 15 minutes for all models. With --gpus N, one GPU
of N under FSDP2 as distributed=fsdp shards the model (torch's FSDPMemTracker over a fake process
group of N ranks: this rank's shards, the gathered blocks, the reduce-scatter buffers).
The method (``--override method=...``, default full) is traced as it trains the Luo et al. stream's
last task: LoRA's adapters (one per task for ``adapters``) and the learned router's gate are counted,
and printed as "+adapters" (parameters added) and "trains" (parameters the optimizer updates).
Sizes come from <paths.hub_mirror>/<model.path>/config.json when the mirror holds the model,
else from SHAPES below (copied from each model's config.json on the Hub).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from transformers import AutoConfig

from forgetbench.hub_mirror import local_copy
from forgetbench.models import DTYPES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/ as a package, from any folder
from experiments.memory_tracing import traced_fsdp_peak, traced_training_peak  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"
GPU_GIB = 80e9 / 2**30  # an "80 GB" H100/A100: 74.5 GiB
HEADROOM_GIB = 3.0  # CUDA context, kernel workspaces, fragmentation: not traced

BLOOM = {"model_type": "bloom", "vocab_size": 250880}
MT5 = {"model_type": "mt5", "vocab_size": 250112, "d_kv": 64, "feed_forward_proj": "gated-gelu"}
MT5.update(tie_word_embeddings=False)
LLAMA = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008}
LLAMA.update(num_hidden_layers=32, num_attention_heads=32)
QWEN = {"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864}
QWEN.update(num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True)
SHAPES = {
    "bloomz_560m": {**BLOOM, "hidden_size": 1024, "n_layer": 24, "n_head": 16},
    "bloomz_1b1": {**BLOOM, "hidden_size": 1536, "n_layer": 24, "n_head": 16},
    "bloomz_1b7": {**BLOOM, "hidden_size": 2048, "n_layer": 24, "n_head": 16},
    "bloomz_3b": {**BLOOM, "hidden_size": 2560, "n_layer": 30, "n_head": 32},
    "bloomz_7b1": {**BLOOM, "hidden_size": 4096, "n_layer": 30, "n_head": 32},
    "mt0_small": {**MT5, "d_model": 512, "d_ff": 1024, "num_heads": 6, "num_layers": 8},
    "mt0_base": {**MT5, "d_model": 768, "d_ff": 2048, "num_heads": 12, "num_layers": 12},
    "mt0_large": {**MT5, "d_model": 1024, "d_ff": 2816, "num_heads": 16, "num_layers": 24},
    "mt0_xl": {**MT5, "d_model": 2048, "d_ff": 5120, "num_heads": 32, "num_layers": 24},
    "mt0_xxl": {**MT5, "d_model": 4096, "d_ff": 10240, "num_heads": 64, "num_layers": 24},
    "llama_7b": LLAMA,
    "alpaca_7b": LLAMA,
    "qwen2_5_0_5b": QWEN,
    "qwen2_5_0_5b_instruct": QWEN,
}


def model_config(name: str, path: str, mirror: str | None):
    local = Path(local_copy(path, mirror))
    if (local / "config.json").is_file():
        return AutoConfig.from_pretrained(local)
    shape = dict(SHAPES[name])
    return AutoConfig.for_model(shape.pop("model_type"), **shape)


def measure(name: str, overrides: list[str], fit: bool) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={name}", "train=luo2023", "stream=luo2023", *overrides])
    train, method = instantiate(cfg.train), instantiate(cfg.method)
    tasks = [task.name for task in cfg.stream.tasks]
    config = model_config(name, cfg.model.path, cfg.paths.hub_mirror)
    dtype = DTYPES[cfg.model.dtype] if cfg.model.dtype != "auto" else torch.float32
    start = time.perf_counter()
    untie = config.model_type == "mt5"  # mT0 checkpoints store their own output layer
    checkpointing = cfg.model.gradient_checkpointing
    peak = traced_training_peak(
        config, dtype, train, checkpointing, untie_output_layer=untie, method=method, stream_tasks=tasks
    )
    params = (peak.gib("Parameter") * 2**30 - 4 * peak.added_parameters) / dtype.itemsize / 1e9
    added = f" +adapters {peak.added_parameters / 1e6:.1f}M trains {peak.trainable_parameters / 1e6:.1f}M" * bool(
        peak.added_parameters
    )
    kinds = " ".join(f"{k[:5].lower()} {peak.gib(k):5.1f}" for k in ("Parameter", "Gradient", "Optstate"))
    other = peak.gib() - sum(peak.gib(k) for k in ("Parameter", "Gradient", "Optstate"))
    fits = "yes" if peak.gib() + HEADROOM_GIB <= GPU_GIB else "NO"
    print(
        f"{name:22} {params:5.2f}B{added} {cfg.model.dtype:8} ckpt={str(cfg.model.gradient_checkpointing):5} "
        f"batch {train.batch_size:2}x{train.grad_accum:<3} peak {peak.gib():5.1f} GiB ({kinds} act+tmp {other:5.1f}) "
        f"fits 80GB: {fits}  [{time.perf_counter() - start:.0f}s]",
        flush=True,
    )
    if fit:
        fitting = largest_batch(config, dtype, train, cfg, untie, method, tasks)
        print(f"{'':22} largest power-of-2 batch that fits: {fitting}")


def measure_fsdp(name: str, overrides: list[str], gpus: int) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        overrides = [f"model={name}", "train=luo2023", "distributed=fsdp", *overrides]
        cfg = compose(config_name="config", overrides=overrides)
    train, sharding = instantiate(cfg.train), instantiate(cfg.distributed)
    config = model_config(name, cfg.model.path, cfg.paths.hub_mirror)
    dtype = DTYPES[cfg.model.dtype] if cfg.model.dtype != "auto" else torch.float32
    param_dtype = getattr(torch, sharding.param_dtype) if sharding.param_dtype else None
    start = time.perf_counter()
    untie = config.model_type == "mt5"
    peak = traced_fsdp_peak(
        config, dtype, train, gpus, param_dtype, sharding.activation_checkpointing, untie_output_layer=untie
    )
    shards = sum(peak.gib(k) for k in ("Sharded Param", "Sharded Grad", "OptState"))
    gathered = sum(peak.gib(k) for k in ("Unsharded Param", "Unsharded Grad", "All Gather", "Reduce Scatter"))
    fits = "yes" if peak.gib() + HEADROOM_GIB <= GPU_GIB else "NO"
    print(
        f"{name:22} {gpus} GPUs fsdp {cfg.model.dtype:8} compute {sharding.param_dtype} "
        f"batch {train.batch_size:2}x{train.grad_accum // gpus:<3} per GPU peak {peak.gib():5.1f} GiB "
        f"(shards {shards:5.1f} gathered {gathered:5.1f} act+tmp {peak.gib() - shards - gathered:5.1f}) "
        f"fits 80GB: {fits}  [{time.perf_counter() - start:.0f}s]",
        flush=True,
    )


def largest_batch(config, dtype, train, cfg, untie: bool, method, tasks: list[str]) -> int:
    best, batch = 0, 1
    while batch <= train.effective_batch_size:
        train.batch_size = batch
        checkpointing = cfg.model.gradient_checkpointing
        peak = traced_training_peak(
            config, dtype, train, checkpointing, untie_output_layer=untie, method=method, stream_tasks=tasks
        )
        if peak.gib() + HEADROOM_GIB > GPU_GIB:
            break
        best, batch = batch, batch * 2
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(SHAPES), help="model config names")
    parser.add_argument("--fit", action="store_true", help="also search the largest batch that fits")
    parser.add_argument("--override", action="append", default=[], help="a Hydra override, e.g. train.max_length=1024")
    parser.add_argument("--gpus", type=int, action="append", default=[], help="trace one GPU of N under FSDP")
    args = parser.parse_args()
    print(f"train=luo2023 (max_length 512), steady state traced; fits = peak + {HEADROOM_GIB} GiB <= 80 GB")
    for name in args.models:
        for gpus in args.gpus:
            measure_fsdp(name, args.override, gpus)
        if not args.gpus:
            measure(name, args.override, args.fit)


if __name__ == "__main__":
    main()
