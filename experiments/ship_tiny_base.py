"""Pretrain the default tiny base models and copy them into the package (forgetbench/tiny/pretrained/).

    python experiments/ship_tiny_base.py                  # tiny_decoder (the default) and tiny_encdec
    python experiments/ship_tiny_base.py --models tiny_decoder     # one of them

Run it after changing the default world, a tiny model's shape or its pretraining: the shipped copy is
keyed by the same hash as the cache, so a stale one is never used (it is pretrained instead), and
tests/test_world.py fails until the default's copy is shipped again. Pretraining uses the CPU
(deterministic on one machine); the copy then gives every machine the same base weights.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from forgetbench.tiny.model import SHIPPED_DIR

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny_decoder", "tiny_encdec"], help="model group options")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        for name in args.models:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                cfg = compose(config_name="config", overrides=[f"model={name}", f"paths.cache_dir={cache}"])
            model = instantiate(cfg.model, _convert_="all")
            built = Path(model.resolve_path())
            for stale in SHIPPED_DIR.glob(f"{name}-*"):
                shutil.rmtree(stale)
            shutil.copytree(built, SHIPPED_DIR / built.name)
            size = sum(f.stat().st_size for f in (SHIPPED_DIR / built.name).iterdir())
            print(f"{name}: shipped {SHIPPED_DIR / built.name} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
