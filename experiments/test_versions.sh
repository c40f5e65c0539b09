#!/usr/bin/env bash
# The library versions pyproject.toml allows, tested at both ends (`make test-versions`; not part of `make test`).
#
#   bash experiments/test_versions.sh            # ~12 minutes on 2 cores, network to PyPI needed
#   ENDS=newest bash experiments/test_versions.sh   # one end only
#
# Builds two fresh venvs with uv: `lowest` (uv's lowest-direct resolution: every dependency
# pyproject.toml names at its lower bound) and `newest` (the newest releases the pins allow). In each
# it runs the engine agreement, packing, chat-template, method, output and tracker tests, and one
# smoke run of `python -m forgetbench` whose output must hold no deprecation warning. Prints one
# Markdown table: versions × tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
# torch varies like the rest: the floor and the newest from PyPI, whose Linux wheels are CUDA builds
# (about 4 GB with their libraries; they run these tests on the CPU). TORCH_SPEC pins it instead, e.g.
# TORCH_SPEC=torch==2.13.0+cpu FIND_LINKS=/opt/wheels for the CPU wheel this machine has on disk.
TORCH_SPEC=${TORCH_SPEC:-}
FIND_LINKS=${FIND_LINKS:-}
TESTS=(tests/test_fast_engine.py tests/test_packing.py tests/test_chat.py tests/test_methods.py tests/test_output.py
  tests/test_loggers.py)
PACKAGES=(transformers peft datasets lm_eval accelerate pandas pyarrow numpy matplotlib hydra-core pydantic
  safetensors wandb mlflow-skinny tensorboard torch)
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

"$PYTHON" -m pip install -q uv
uv() { "$PYTHON" -m uv "$@"; }
links=(); [ -n "$FIND_LINKS" ] && links=(--find-links "$FIND_LINKS")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
pins=(); [ -n "$TORCH_SPEC" ] && echo "$TORCH_SPEC" > "$work/torch.txt" && pins=(--constraint "$work/torch.txt")

declare -A cell
for end in ${ENDS:-lowest newest}; do
  venv=.venv-$end
  resolution=$([ $end = lowest ] && echo lowest-direct || echo highest)
  rm -rf "$venv"
  uv venv -q -p "$PYTHON" "$venv"
  uv pip install -q --python "$venv/bin/python" "${links[@]}" "${pins[@]}" --resolution "$resolution" -e ".[dev]"
  for package in "${PACKAGES[@]}"; do
    cell[$end,$package]=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('$package'))")
  done
  for test in "${TESTS[@]}"; do
    echo "[$end] $test" >&2
    summary=$("$venv/bin/python" -m pytest -q -n 2 --dist loadfile -p no:cacheprovider "$test" 2>&1 | tail -1) || true
    cell[$end,$test]=$(echo "$summary" | grep -oE "[0-9]+ (passed|failed|skipped|error|errors)" | paste -sd, - | sed 's/,/, /g') || true
  done
  # a whole run's output: no deprecation warning from what forgetbench calls
  "$venv/bin/python" -m forgetbench debug=smoke paths.root_dir="$work/$end" paths.cache_dir="$work/cache" \
    >"$work/$end.out" 2>&1 && status=ok || status="exit $?"
  warnings=$(grep -ciE "deprecat|FutureWarning" "$work/$end.out" || true)
  cell[$end,smoke]="$status, $warnings deprecation lines"
  grep -iE "deprecat|FutureWarning" "$work/$end.out" | head -5 >&2 || true
done

echo "| | lowest (uv --resolution lowest-direct) | newest allowed |"
echo "|---|---|---|"
for package in "${PACKAGES[@]}"; do echo "| $package | ${cell[lowest,$package]:-} | ${cell[newest,$package]:-} |"; done
for test in "${TESTS[@]}"; do echo "| \`$test\` | ${cell[lowest,$test]:-} | ${cell[newest,$test]:-} |"; done
echo "| \`python -m forgetbench debug=smoke\` | ${cell[lowest,smoke]:-} | ${cell[newest,smoke]:-} |"
