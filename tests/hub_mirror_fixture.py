"""A Hub mirror for offline tests: tiny random-init models and hand-written rows under the real
Hub IDs, each repo in its own layout, so that configs naming Hub IDs run unchanged.

Models: every ``PretrainedModel`` config's ``path`` gets a 2-layer model of its real class,
wider for larger sizes. Data: the five Luo et al. 2023 stream data sets (laid out as the Hub's
parquet export), MMLU (one config per subject, as cais/mmlu), RACE-high, RACE-middle and
HellaSwag, in their Hub columns.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, group_option
from tests.helpers import save_tiny_model

# a few hand-written rows per stream task, in each Hub dataset's own columns
STREAM_ROWS = {
    "wiki_auto": lambda i: {
        "source": f"The council , which was founded in {1900 + i} , convened often .",
        "target": f"The council met often after {1900 + i} .",
    },
    "empathetic_dialogues": lambda i: {
        "context": "sad",
        "prompt": f"My dog {i} ran away .",
        "utterance": "I am so sorry , I hope you find him .",
    },
    "eli5": lambda i: {"question": f"Why is the sky blue {i} ?", "answer": "Air scatters blue light more ."},
    "esnli": lambda i: {
        "premise": f"A man {i} plays a guitar .",
        "hypothesis": "A man makes music .",
        "label": 0,
        "explanation_1": "Playing a guitar makes music .",
    },
    "gigaword": lambda i: {
        "document": f"police arrested {i} men after the robbery on friday .",
        "summary": f"police arrest {i} men over robbery",
    },
}
N_STREAM_ROWS = 16  # 12 train + 4 held out

KINDS = {"bloomz": "bloom", "mt0": "mt5", "llama": "llama", "alpaca": "llama", "qwen": "llama"}
WORDS = "Article Question Answer A B C D the a is of what which does he play guitar dog sky music".split()


def build_hub_mirror(root: Path) -> Path:
    """Write the mirror under ``root``; return ``root`` (for ``paths.hub_mirror``)."""
    texts = [*WORDS, *_stream_datasets(root), *_mmlu(root), *_race(root), *_hellaswag(root)]
    texts += [_template_words(spec) for spec in OmegaConf.load(CONF_DIR / "stream" / "luo2023.yaml").tasks]
    for config in sorted((CONF_DIR / "model").glob("*.yaml")):
        model = group_option("model", config.stem)
        if model._target_.endswith("PretrainedModel") and not str(model.path).startswith("package:"):  # a Hub repo
            kind = next(k for prefix, k in KINDS.items() if config.stem.startswith(prefix))
            save_tiny_model(kind, texts, root / model.path, width=_width(config.stem))
    return root


def _width(size_name: str) -> int:
    """Wider stand-ins for larger sizes, so size ladders keep their order in reports."""
    order = ["560m", "small", "1b1", "base", "1b7", "large", "3b", "xl", "7b1", "7b", "xxl"]
    rank = next((i for i, tag in enumerate(order) if size_name.endswith(f"_{tag}")), 2)
    return 16 + 8 * (rank // 2)


def _template_words(spec) -> str:
    prompts = [spec.prompt] if isinstance(spec.prompt, str) else list(spec.prompt)
    return re.sub(r"[{}]", " ", " ".join(prompts))


def _write(folder: Path, split: str, rows: list[dict], layout: str = "parquet_export") -> None:
    """One split as the Hub lays it out: the parquet export (<config>/<split>/0000.parquet) or
    a data repo's file naming (<folder>/<split>-00000-of-00001.parquet)."""
    path = (
        folder / "default" / split / "0000.parquet"
        if layout == "parquet_export"
        else folder / f"{split}-00000-of-00001.parquet"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path)


def _readme(repo: Path, configs: dict[str, list[str]]) -> None:
    """The dataset card's ``configs`` block, which tells ``datasets`` which files make which config."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {name}/{split}-*" for split in splits]
    (repo / "README.md").write_text("\n".join([*lines, "---", ""]))


def _stream_datasets(root: Path) -> list[str]:
    texts = []
    for spec in OmegaConf.load(CONF_DIR / "stream" / "luo2023.yaml").tasks:
        rows = [STREAM_ROWS[spec.name](i) for i in range(N_STREAM_ROWS)]
        test_split = spec.get("test_split", "test")
        splits = {"train": rows} if test_split == "train" else {"train": rows[:12], test_split: rows[12:]}
        for split, part in splits.items():
            _write(root / spec.path, split, part)
        texts += [str(v) for row in rows for v in row.values()]
    return texts


def _mmlu(root: Path) -> list[str]:
    """cais/mmlu: a config per subject (the subjects lm-eval's MMLU YAMLs name), test and dev."""
    folder = Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks" / "mmlu" / "default"
    subjects = sorted(p.stem.removeprefix("mmlu_") for p in folder.glob("mmlu_*.yaml"))
    repo = root / "cais" / "mmlu"
    for i, subject in enumerate(subjects):
        rows = [
            {
                "question": f"what is {subject} {j} ?",
                "subject": subject,
                "choices": ["guitar", "dog", "sky", "music"],
                "answer": (i + j) % 4,
            }
            for j in range(7)
        ]
        _write(repo / subject, "test", rows[:2], layout="data_files")
        _write(repo / subject, "dev", rows[2:], layout="data_files")
    _readme(repo, {subject: ["test", "dev"] for subject in subjects})
    return ["what", "is", *subjects]


def _race(root: Path) -> list[str]:
    """RACE-high as lm-eval's EleutherAI/race (problems as a string), RACE-middle as ehovy/race."""
    article = "a man plays a guitar and a dog is in the sky ."
    problems = [{"question": "what does he play ?", "options": ["guitar", "dog", "sky", "music"], "answer": "A"}]
    _write(
        root / "EleutherAI" / "race" / "high",
        "test",
        [{"article": article, "problems": str(problems)}] * 3,
        "data_files",
    )
    _readme(root / "EleutherAI" / "race", {"high": ["test"]})
    middle = [{"example_id": f"m{i}", "article": article, **problems[0]} for i in range(3)]
    _write(root / "ehovy" / "race" / "middle", "test", middle, "data_files")
    _readme(root / "ehovy" / "race", {"middle": ["test"]})
    return article.split()


def _hellaswag(root: Path) -> list[str]:
    row = {
        "ind": 0,
        "activity_label": "Music",
        "ctx_a": "a man holds a guitar .",
        "ctx_b": "he",
        "ctx": "a man holds a guitar . he",
        "endings": ["plays the guitar .", "is a dog .", "is the sky .", "does music ."],
        "source_id": "fixture",
        "split": "val",
        "split_type": "indomain",
        "label": "0",
    }
    for split in ("train", "validation"):
        _write(root / "Rowan" / "hellaswag" / "data", split, [row] * 3, layout="data_files")
    return [row["activity_label"], row["ctx"], *row["endings"]]
