"""The docs cannot drift: every forgetbench command in the README and docs/ composes, and the README's
offline commands run (smoke-sized).

A command is a line of a fenced block that starts with the program (``.venv/bin/python -m forgetbench``,
``python -m forgetbench``, ``.venv/bin/forgetbench`` or ``forgetbench``), with its continuation lines
(a trailing backslash, or a quoted string still open). One that cannot run here says so in its comment,
``# needs: GPU, Hub``, and sits beside an offline command of the same block or page; it is composed,
not run (its Hub mirror path, which only exists where it runs, left out).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from forgetbench.cli import eval_overrides
from forgetbench.preflight import _first_of_each_sweep, command_line_error
from forgetbench.results import read_results
from tests.conftest import ROOT, SMALL, SMALL_MODEL, compose

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGRAM = re.compile(
    r"^(\.venv/bin/python -m forgetbench|python -m forgetbench|\.venv/bin/forgetbench|forgetbench)(\s|$)"
)


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line
    args: tuple[str, ...]  # after the program: a subcommand and/or overrides
    needs: str  # what it needs that this machine lacks ("" when it runs offline)


def _complete(text: str) -> bool:
    """Whether ``text`` is a whole shell command (no open quote, no trailing backslash)."""
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:  # an open quote: the string goes on to the next line
        return False
    return True


def doc_commands(path: Path) -> list[DocCommand]:
    commands, fenced, lines = [], False, path.read_text().split("\n")
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = PROGRAM.match(line.strip())
        if not fenced or not match:
            continue
        start, text = number, line.strip()
        while not _complete(text) and number < len(lines):
            text = text.rstrip().removesuffix("\\") + "\n" + lines[number]
            number += 1
        tokens = shlex.split(text, comments=True)
        program = len(match.group(1).split())
        needs = re.search(r"#\s*needs:\s*([^;(\n]*)", text)
        commands.append(
            DocCommand(f"{path.relative_to(ROOT)}:{start}", tuple(tokens[program:]), needs[1].strip() if needs else "")
        )
    return commands


COMMANDS = [command for path in DOCS for command in doc_commands(path)]
README_OFFLINE = [c for c in COMMANDS if c.where.startswith("README.md") and not c.needs]
# README commands another test already runs smoke-sized, and checks more closely (not run twice)
RUN_ELSEWHERE = {
    ("-m", "experiment=tiny_world_ladder"): ("tests/test_tiny_ladder.py", "test_the_ladder_multirun_draws_both_axes"),
}


def test_the_docs_commands_are_found() -> None:
    """The checks below would pass vacuously on no commands."""
    assert len(COMMANDS) >= 40 and len(README_OFFLINE) >= 6
    assert any(c.needs for c in COMMANDS) and all(c.args is not None for c in COMMANDS)
    pages = {c.where.split(":")[0] for c in COMMANDS}
    for page in {c.where.split(":")[0] for c in COMMANDS if c.needs}:  # an offline counterpart on its page
        assert any(not c.needs for c in COMMANDS if c.where.startswith(page + ":")), page
    assert "README.md" in pages and len(pages) >= 8


def _overrides(command: DocCommand) -> list[str] | None:
    """The overrides the command composes (None: a report, which takes paths)."""
    args = list(command.args)
    if args[:1] == ["report"]:
        return None
    if args[:1] == ["analyze"]:  # analyze RUN_DIR: the run's own overrides come from the run, then these
        return args[2:]
    if args[:1] == ["data-check"]:
        args = args[1:]
    elif args[:1] == ["eval"]:
        rest = args[1:]
        if rest and "=" not in rest[0]:  # eval RUN_DIR: the run's own overrides come from the run
            rest = rest[1:]
        args = eval_overrides(rest)
    if command.needs:  # a Hub mirror exists only where the command runs
        args = [a for a in args if not a.startswith("paths.hub_mirror=")]
    return args


@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_every_docs_command_composes(command: DocCommand) -> None:
    overrides = _overrides(command)
    if overrides is None:
        return
    assert command_line_error(overrides) is None, f"{command.where}: {shlex.join(command.args)}"


def _smoke_sized(args: list[str], root: Path, cache: Path) -> list[str]:
    """The command's overrides shrunk as ``debug=smoke`` shrinks any experiment (and the tiny model
    made small, where the command's model is the tiny one), results and cache under the test's folders."""
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    first = _first_of_each_sweep(overrides)  # a sweep's first value decides
    tiny = compose(first).model._target_.startswith("forgetbench.tiny.")
    small = SMALL if tiny else ["debug=smoke"]
    return [*flags, f"paths.root_dir={root}", f"paths.cache_dir={cache}", *overrides, *small]


def _run_smoke_sized(command: DocCommand, root: Path, cache: Path) -> None:
    """``command`` through the console script, smoke-sized, from the project's root (``report``'s
    paths taken under ``root``, where the runs wrote)."""
    import subprocess
    import sys

    program = str(Path(sys.executable).parent / "forgetbench")
    args = list(command.args)
    if args[:1] == ["report"]:
        full = [program, "report", *[str(root / p) if not p.startswith("-") else p for p in args[1:]]]
    elif args[:1] == ["analyze"]:  # the run directory under root; the run recorded its own sizes
        full = [program, "analyze", str(root / args[1]), *args[2:]]
    elif args[:1] in (["eval"], ["data-check"]):
        full = [program, args[0], *_smoke_sized(args[1:], root, cache)]
    else:
        full = [program, *_smoke_sized(args, root, cache)]
    done = subprocess.run(full, cwd=ROOT, capture_output=True, text=True, timeout=900)  # commands run from the root
    assert done.returncode == 0, f"{command.where}: {shlex.join(full)}\n{done.stderr[-3000:]}"


def test_the_readmes_offline_commands_run(tmp_path, cache_dir) -> None:
    """Each of the README's offline commands, smoke-sized, through the console script; ``analyze`` and
    ``report`` after the runs, over what they wrote."""
    after = [c for c in README_OFFLINE if c.args[:1] in (("analyze",), ("report",))]  # args: a tuple
    runs = [c for c in README_OFFLINE if c not in after and c.args not in RUN_ELSEWHERE]
    for command in [*runs, *after]:
        _run_smoke_sized(command, tmp_path, cache_dir)
    # the runs wrote results where the README says (results/<experiment>/...), and the report read them
    assert len(read_results(tmp_path / "results" / "tiny_world")) > 0
    assert (tmp_path / "results" / "tiny_world" / "report" / "report.md").exists()
    analysed = [c for c in after if c.args[:1] == ("analyze",)]
    assert analysed and all((tmp_path / c.args[1] / "report" / "analysis" / "analysis.md").exists() for c in analysed)


@pytest.mark.parametrize("args", list(RUN_ELSEWHERE))
def test_a_readme_command_run_elsewhere_is_run_there(args: tuple[str, ...]) -> None:
    """The test named for it exists and runs that command (its arguments, in order, in its source)."""
    path, name = RUN_ELSEWHERE[args]
    source = (ROOT / path).read_text()
    body = source[source.index(f"def {name}(") :]
    assert ", ".join(f'"{a}"' for a in args) in body.split("\ndef ", 1)[0]
    assert any(c.args == args for c in README_OFFLINE)


def test_smoke_sizing_keeps_the_model_of_a_real_model_command() -> None:
    """The tiny model's size overrides go only to commands whose model is the tiny one."""
    sized = _smoke_sized(["model=smollm2_135m_instruct"], Path("/r"), Path("/c"))
    assert "debug=smoke" in sized and not set(SMALL_MODEL) & set(sized)


def _one_seed(command: DocCommand) -> tuple[str, ...]:
    """A seed sweep reduced to its first seed: smoke-sized, five seeds run what one does."""
    return tuple(a.split(",")[0] if a.startswith("seed=") else a for a in command.args)


DOCS_OFFLINE = list(
    {
        _one_seed(c): DocCommand(c.where, _one_seed(c), "")
        for c in COMMANDS
        if not c.needs and not c.where.startswith("README.md")
    }.values()
)


@pytest.mark.skipif(
    os.environ.get("FORGETBENCH_TEST_DOCS") != "1",
    reason="every docs page's offline command, smoke-sized: make test-docs (17 minutes on 2 cores)",
)
@pytest.mark.parametrize("command", DOCS_OFFLINE, ids=[c.where for c in DOCS_OFFLINE])
def test_every_docs_offline_command_runs(command: DocCommand, tmp_path, cache_dir) -> None:
    _run_smoke_sized(command, tmp_path, cache_dir)
