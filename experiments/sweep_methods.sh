#!/usr/bin/env bash
# Every method against forgetting on the tiny world, each with the learning rate and knob that
# experiments/tune_methods.py chose on the stream's validation items (conf/experiment/tiny_world_methods/),
# over seeds 0-2: one multirun (CPU, about 12 minutes with the base model cached); the comparison
# report, with the seeds pooled into means and intervals, lands in results/tiny_world_methods/multirun/report.
set -euo pipefail
cd "$(dirname "$0")/.."
methods=full,lora,adapters,replay,ewc,l2sp,olora,wise
# experiment_name on the command line too: the multirun folder (and its report) is named before any
# experiment file is read
python -m forgetbench -m "experiment=$(echo "tiny_world_methods/${methods//,/,tiny_world_methods/}")" \
  experiment_name=tiny_world_methods seed=0,1,2 "$@"
