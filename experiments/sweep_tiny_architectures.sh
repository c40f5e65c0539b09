#!/usr/bin/env bash
# The tiny world on both architectures in one Hydra multirun (CPU, a few minutes the first time):
# results/tiny_world/multirun/model=tiny_decoder and .../model=tiny_encdec
set -euo pipefail
cd "$(dirname "$0")/.."
python -m forgetbench -m model=tiny_decoder,tiny_encdec "$@"
