#!/usr/bin/env bash
# How much of the oracle's advantage survives a real router? full, lora, replay and adapters (oracle: told
# each item's task) against adapters routed by keyword rules, a linear-probe classifier and a learned
# gate (forgetbench/routing/), each method with the learning rate experiments/tune_methods.py chose
# (conf/experiment/tiny_world_methods/), seeds 0-2. Then docs/styles-and-routers.md's table:
#   bash experiments/sweep_routes.sh              # the style stream (about 15 minutes on 2 cores)
#   bash experiments/sweep_routes.sh --default    # the default stream (about 20 minutes)
#   python experiments/routes_table.py results/tiny_world_routes_styles/multirun results/tiny_world_routes/multirun
set -euo pipefail
cd "$(dirname "$0")/.."
name=tiny_world_routes_styles
stream=(stream=tiny_world_styles)
if [[ "${1:-}" == "--default" ]]; then
  shift
  name=tiny_world_routes
  stream=()
fi
methods=tiny_world_methods/full,tiny_world_methods/lora,tiny_world_methods/replay,tiny_world_methods/adapters
# experiment_name on the command line: the multirun folder is named before any experiment file is read;
# both multiruns write into it, and the second one's report covers every run there
python -m forgetbench -m "experiment=$methods" "experiment_name=$name" seed=0,1,2 "${stream[@]}" "$@"
python -m forgetbench -m experiment=tiny_world_methods/adapters method.route=keyword,classifier,learned \
  "experiment_name=$name" seed=0,1,2 "${stream[@]}" "$@"
# the probe with a class of its own for the stream's general text, routed to the base
python -m forgetbench -m experiment=tiny_world_methods/adapters method.route=classifier method.classifier.base_class=true \
  method.name=adapters-classifier-base "experiment_name=$name" seed=0,1,2 "${stream[@]}" "$@"
