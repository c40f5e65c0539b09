#!/usr/bin/env bash
# Every method against forgetting on the tiny world, each with the learning rate and knob that
# experiments/tune_methods.py chose on the stream's validation items (conf/experiment/tiny_world_methods/),
# over seeds 0-2: one multirun (CPU, about 10 minutes for the 13 methods with the base model cached); the comparison
# report, with the seeds pooled into means and intervals, lands in results/tiny_world_methods/multirun/report.
#   bash experiments/sweep_methods.sh            # the base model, eval=tiny_world
#   bash experiments/sweep_methods.sh --safety   # the model through the safety stage, eval=tiny_world_safety:
#       which method keeps refusing (and replay_safety: replay of the safety stage's rows); the report
#       lands in results/tiny_world_methods_safety/multirun/report (about 15 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
methods=full,lora,adapters,replay,ewc,l2sp,olora,wise,merge,lwf,agem,ilora,sdft
name=tiny_world_methods
extra=()
if [[ "${1:-}" == "--safety" ]]; then
  shift
  methods="$methods,replay_safety"
  name=tiny_world_methods_safety
  extra=(eval=tiny_world_safety "model.stages=[pretrain,instruct,safety]")
fi
# experiment_name on the command line too: the multirun folder (and its report) is named before any
# experiment file is read
python -m forgetbench -m "experiment=$(echo "tiny_world_methods/${methods//,/,tiny_world_methods/}")" \
  "experiment_name=$name" seed=0,1,2 "${extra[@]}" "$@"
