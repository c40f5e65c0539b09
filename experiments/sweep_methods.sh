#!/usr/bin/env bash
# Every method against forgetting on the tiny world, one multirun (CPU, about 6 minutes with the base
# model cached); the comparison report lands in results/tiny_world/multirun/report.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m forgetbench -m method=full,lora,adapters,replay,ewc,l2sp,olora,wise "$@"
