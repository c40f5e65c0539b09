"""One home for each job: the import graph of forgetbench, read from the source (no import, no subprocess).

Layers, lowest first; a module imports only from its own layer or below, the graph has no cycle, and
neither has the graph of folders (sub-packages):

- foundation: errors, hashing, jsonl, hub_mirror, hardware (device, CPU threads), stopping (signals),
  resolvers (OmegaConf), validation (config fields), run_lock (one writer per run directory), run_log (the
  run's log file, written once the run is accepted), run_record (the command a run recorded), distributed
  (the processes of a multi-GPU run: DDP, FSDP)
- data: the results table, what a stream hands over (``stream_records``), model loading and its chat
  template (``chat``), checkpoints, streams (data only; the tiny world's streams live in ``tiny``), users'
  table files and templates
  (``data``), the tiny world's generators (its post-training stages' data among them), refusal judges
- engines: training (the loop, its chunked loss, packing and optimizer), evaluation (the one door to lm-eval), metrics
- plug-ins: methods, the tiny world's model and suite factories, experiment trackers
  (``loggers``)
- recipe and reporting: assembling a run from its config (``assembly``), the runner (one run), reporting
  (across runs), neither of those two importing the other, and the analyses of a finished run (``analysis``)
- entry points: ``python -m forgetbench``, the console script, the command-line preflight, ``data-check``
  and ``analyze`` (``analysis.command``)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "forgetbench"

LAYERS = [
    [
        "errors",
        "hashing",
        "jsonl",
        "hub_mirror",
        "hardware",
        "memory",
        "stopping",
        "resolvers",
        "validation",
        "run_lock",
        "run_log",
        "run_record",
        "distributed",
    ],
    [
        "results",
        "stream_records",
        "models",
        "chat",
        "checkpoint",
        "streams",
        "data",
        "tiny.world",
        "tiny.stream_tasks",
        "tiny.tokenizer",
        "tiny.files",
        "tiny.objectives",
        "tiny.post_training",
        "tiny.styles",
        "tiny.world_stream",
        "tiny.styles_stream",
        "judges",
    ],
    ["training", "evaluation", "metrics"],
    ["methods", "routing", "tiny.model", "tiny.suite", "loggers"],
    ["assembly", "runner", "reporting", "analysis"],
    ["__main__", "cli", "experiment", "preflight", "data_check", "analysis.command"],
]


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


MODULES = _module_names()


def _imports(path: Path) -> set[str]:
    """Every name imported anywhere in the file (also inside functions and TYPE_CHECKING blocks)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _internal(imported: set[str]) -> set[str]:
    """The forgetbench modules among ``imported`` ('from forgetbench.x import y' counts y when it is a module)."""
    names = {name.removeprefix("forgetbench.") for name in imported if name.startswith("forgetbench.")}
    return {name for name in names if name in MODULES}


GRAPH = {name: _internal(_imports(path)) - {name} for name, path in MODULES.items()}


def _layer(module: str) -> int:
    """The layer of the longest prefix of ``module`` that LAYERS names."""
    matches = [
        (len(prefix), index)
        for index, layer in enumerate(LAYERS)
        for prefix in layer
        if module == prefix or module.startswith(f"{prefix}.")
    ]
    if not matches:
        raise AssertionError(f"forgetbench.{module} is in no layer: add it to LAYERS")
    return max(matches)[1]


def _closure(module: str, graph: dict[str, set[str]] = GRAPH) -> set[str]:
    """Everything ``module`` imports, directly or not (in ``graph``: modules, or folders)."""
    seen, todo = set(), [module]
    while todo:
        for dependency in graph[todo.pop()] - seen:
            seen.add(dependency)
            todo.append(dependency)
    return seen


def test_the_graph_is_read() -> None:
    """The checks below would pass vacuously on an empty graph."""
    assert "training" in GRAPH["runner"] and "evaluation.lm_eval_bridge" in GRAPH["runner"]
    assert "methods.peft_adapters" in GRAPH["methods.adapters"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m))  # "": the package's own __init__
def test_no_import_points_up_a_layer(module: str) -> None:
    upward = sorted(d for d in GRAPH[module] if _layer(d) > _layer(module))
    assert not upward, f"forgetbench.{module} (layer {_layer(module)}) imports higher layers: {upward}"


def test_no_import_cycle() -> None:
    cycles = sorted(m for m in GRAPH if m in _closure(m))
    assert not cycles, f"modules on an import cycle: {cycles}"


def _folder(module: str) -> str:
    """The folder (sub-package) a module lives in, or the module itself at the top of the package."""
    return module.split(".")[0]


FOLDER_GRAPH = {
    folder: {_folder(d) for m, deps in GRAPH.items() if m and _folder(m) == folder for d in deps} - {folder}
    for folder in {_folder(m) for m in MODULES if m}
}


def test_no_folder_loop() -> None:
    """Folders follow the layers: no folder imports one that imports it back (directly or not), so
    each folder can be read, moved or replaced as a unit."""

    loops = {
        f"{a} -> {b}": sorted(
            f"{m} -> {d}" for m, deps in GRAPH.items() if _folder(m) == a for d in deps if _folder(d) == b
        )
        for a in FOLDER_GRAPH
        for b in FOLDER_GRAPH[a]
        if a in _closure(b, FOLDER_GRAPH)
    }
    assert not loops, f"folders importing each other: {loops}"


def test_evaluation_never_imports_the_tiny_world() -> None:
    for module in (m for m in MODULES if m.startswith("evaluation")):
        assert not {d for d in _closure(module) if d.startswith("tiny")}, module


def test_training_takes_a_loss_hook_not_a_method() -> None:
    assert not {d for d in _closure("training") if d.startswith("methods")}


def test_no_method_imports_a_sibling_method() -> None:
    helpers = {"methods.base", "methods.peft_adapters"}
    for module in (m for m in MODULES if m.startswith("methods.") and m not in helpers):
        siblings = {d for d in GRAPH[module] if d.startswith("methods.")} - helpers
        assert not siblings, f"forgetbench.{module} imports {siblings}"


def test_the_recipe_imports_no_plotting() -> None:
    """A training job stays light: neither the runner nor anything it imports pulls matplotlib or reporting."""
    for module in ["runner", *_closure("runner")]:
        third_party = {name.split(".")[0] for name in _imports(MODULES[module])}
        assert "matplotlib" not in third_party, f"forgetbench.{module} imports matplotlib"
    assert not {d for d in _closure("runner") if d.startswith("reporting")}
