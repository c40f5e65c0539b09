"""Pretrain the tiny base models and copy them into the package (forgetbench/tiny/pretrained/).

    python experiments/ship_tiny_base.py                  # the size ladder: 3 decoders, 3 encoder-decoders
    python experiments/ship_tiny_base.py --models tiny_decoder tiny_encdec     # some of them
    python experiments/ship_tiny_base.py --models tiny_decoder --experiment tiny_world_safety  # and its stages
    python experiments/ship_tiny_base.py --models tiny_encdec --overrides model.input_eos=false  # a variant, kept beside

Run it after changing the default world, a tiny model's shape, its pretraining or its post-training
stages (``--experiment``: the stages that experiment gives the model, each shipped): the shipped copy is
keyed by the same hash as the cache, so a stale one is never used (it is pretrained instead), and
tests/test_tiny_ladder.py fails until the copy is shipped again. Pretraining runs on the default
device (a GPU when torch finds one, else the CPU); the copy then gives every machine the same base
weights. The decoders' copies were pretrained on 2 CPU cores; the encoder-decoders' (4000 steps each)
on an H200 GPU, five pretrainings side by side in 2 minutes (docs/tiny-world.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # before datasets imports tqdm: no progress bars between the step lines

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from forgetbench.tiny.model import SHIPPED_DIR  # noqa: E402

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
LADDER = [f"tiny_{arch}{size}" for arch in ("decoder", "encdec") for size in ("_small", "", "_large")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=LADDER, help="model group options")
    parser.add_argument("--experiment", help="an experiment whose model.stages to ship as well")
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="a variant's model overrides (its copy joins the others)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # pretraining's step lines
    with tempfile.TemporaryDirectory() as cache:
        for name in args.models:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                overrides = [f"model={name}", f"paths.cache_dir={cache}", *args.overrides]
                cfg = compose(
                    config_name="config",
                    overrides=overrides + [f"experiment={args.experiment}"] * bool(args.experiment),
                )
            model = instantiate(cfg.model, _convert_="all")
            model.resolve_path()
            for stage, folder in zip(model.stages, model.stage_dirs(), strict=True):
                label = name if stage == "pretrain" else f"{name}-{stage}"
                _ship(Path(cache) / "models" / folder, label, replace=not args.overrides)


def _ship(built: Path, label: str, replace: bool = True) -> None:
    """Copy ``built`` into the package, in place of the copies of the same label (older keys) if ``replace``."""
    for stale in SHIPPED_DIR.glob(f"{label}-*") if replace else []:
        if re.fullmatch(
            rf"{re.escape(label)}-[0-9a-f]{{12}}", stale.name
        ):  # not a stage's folder: tiny_decoder-safety-…
            shutil.rmtree(stale)
    shutil.copytree(built, SHIPPED_DIR / built.name)
    size = sum(f.stat().st_size for f in (SHIPPED_DIR / built.name).iterdir())
    print(f"{label}: shipped {SHIPPED_DIR / built.name} ({size / 1e6:.1f} MB)", flush=True)


if __name__ == "__main__":
    main()
