#!/usr/bin/env bash
# The Luo et al. 2023 size ladders (GPU + Hub access): BLOOMZ 560m-7b1, then mT0 small-xl, then
# LLaMA-7B vs Alpaca-7B. Each is one Hydra multirun; every experiment file states its memory and an
# estimated time. Reports: results/<experiment>/multirun/report.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m forgetbench -m experiment=bloomz_ladder "$@"
python -m forgetbench -m experiment=mt0_ladder "$@"
python -m forgetbench -m experiment=llama_vs_alpaca "$@"
