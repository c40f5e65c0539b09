"""Where forgetting lives: each module group's share of the general suite's loss, per method.

    python experiments/forgetting_by_layer.py [--variant NAME=OVERRIDES ...] [--keep DIR]

Runs each variant through the stream (``python -m forgetbench keep_checkpoint=true``, the tiny
world's default otherwise), loads its final weights (a LoRA adapter merged into the base through
peft), and splits the fine-tuned model into module groups: the embeddings (tied with the output
layer), each layer's attention (q, k, v, o), each layer's MLP (gate, up, down) and the norms. For
each group it prints:
  - the relative change of its weights, ||W_ft - W_base|| / ||W_base|| (Frobenius, over the group);
  - ``alone``: the general score of the base model with only this group fine-tuned
    (how much this group's change costs by itself);
  - ``restored``: the general score of the fine-tuned model with only this group put back to the
    base weights (how much of the loss this group carries).
The general score is the mean acc over the suite's tasks (knowledge, continuation, reading).
About 40 s a variant on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# lm-eval's progress bars, dozens per variant: only the table is wanted (read when torch imports tqdm)
os.environ.setdefault("TQDM_DISABLE", "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forgetbench.assembly import build  # noqa: E402
from forgetbench.checkpoint import load_checkpoint  # noqa: E402
from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge  # noqa: E402
from forgetbench.preflight import compose_config  # noqa: E402

QV = "method=lora train.lr=3e-4"
ALL_LINEAR = QV + " method.lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"
VARIANTS = {  # docs/methods.md's LoRA comparison: full and LoRA at the same lr, q/v and every linear layer
    "full": "method=full train.lr=3e-4",
    "lora_qv": QV,
    "lora_all": ALL_LINEAR,
}


def module_group(name: str) -> str:
    """The group a base-model weight belongs to (names of transformers' Llama)."""
    parts = name.split(".")
    if "embed_tokens" in parts or "lm_head" in parts:
        return "embeddings"
    if "layers" in parts:
        layer = parts[parts.index("layers") + 1]
        kind = "attention" if "self_attn" in parts else "mlp" if "mlp" in parts else "norms"
        return f"layer {layer} {kind}"
    return "final norm"


def run_variant(name: str, overrides: str, root: Path) -> Path:
    """Fine-tune through the stream, keeping the final weights; returns the run directory."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    args = [*overrides.split(), "keep_checkpoint=true", f"run_name={name}"]
    args += [f"paths.root_dir={root}", f"paths.cache_dir={root / 'cache'}"]
    done = subprocess.run([sys.executable, "-m", "forgetbench", *args], env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{name}: forgetbench failed:\n{done.stderr[-2000:]}")
    return next((root / "results").glob(f"*/{name}"))


def fine_tuned_weights(overrides: str, run_dir: Path, root: Path):
    """The base weights, the final weights (adapters merged) and the bridge scoring the general suite."""
    cfg = compose_config([*overrides.split(), f"paths.root_dir={root}", f"paths.cache_dir={root / 'cache'}"])
    source = build(cfg.model, "model")
    suite = build(cfg.eval, "eval")
    loaded = source.load(torch.device("cpu"))
    base = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    method = build(cfg.method, "method")
    stream_names = list(cfg.stream.tasks)
    model = method.prepare_model(source.load(torch.device("cpu")).model, stream_names)
    load_checkpoint(run_dir, model)
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    tuned = {k: v.clone() for k, v in merged.state_dict().items()}
    return loaded, base, tuned, LmEvalBridge(suite, [], loaded.tokenizer)


def general_score(bridge: LmEvalBridge, loaded, weights: dict[str, torch.Tensor]) -> float:
    loaded.model.load_state_dict(weights)
    scores = [s.value for s in bridge.evaluate(loaded).scores if s.metric == "acc"]
    return sum(scores) / len(scores)


def layer_table(name: str, overrides: str, run_dir: Path, root: Path) -> pd.DataFrame:
    loaded, base, tuned, bridge = fine_tuned_weights(overrides, run_dir, root)
    groups: dict[str, list[str]] = {}
    for key in base:
        groups.setdefault(module_group(key), []).append(key)
    # first row: nothing fine-tuned (alone: the base model) and nothing restored (the fine-tuned model)
    ends = {"alone": general_score(bridge, loaded, base), "restored": general_score(bridge, loaded, tuned)}

    def relative_change(keys: list[str]) -> float:
        change = sum((tuned[k] - base[k]).pow(2).sum() for k in keys) ** 0.5
        return float(change / sum(base[k].pow(2).sum() for k in keys) ** 0.5)

    rows = [{"variant": name, "group": "(whole model)", "rel. change": relative_change(list(base)), **ends}]
    for group, keys in groups.items():
        alone = general_score(bridge, loaded, {**base, **{k: tuned[k] for k in keys}})
        restored = general_score(bridge, loaded, {**tuned, **{k: base[k] for k in keys}})
        change = relative_change(keys)
        rows.append({"variant": name, "group": group, "rel. change": change, "alone": alone, "restored": restored})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--variant", action="append", default=[], help="NAME=OVERRIDES (default: docs/methods.md's three)"
    )
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # lm-eval's notes on every evaluation
    variants = dict(v.split("=", 1) for v in args.variant) if args.variant else VARIANTS
    with tempfile.TemporaryDirectory(prefix="forgetbench-layers-") as tmp:
        root = args.keep or Path(tmp)
        tables = []
        for name, overrides in variants.items():
            print(f"{name}: {overrides}", flush=True)
            tables.append(layer_table(name, overrides, run_variant(name, overrides, root), root))
    table = pd.concat(tables)
    print("general score = mean acc of the general suite; alone: the base with only this group fine-tuned;")
    print("restored: the fine-tuned model with only this group put back to the base weights")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
