"""The study's experiments through the real CLI, offline: the configs' Hub IDs resolve to tiny
stand-ins and fixture rows in a Hub mirror. The size ladders and LLaMA vs Alpaca run as the
multiruns they are (with a two-task stream and RACE only, for time); `bloomz_1b` runs as shipped,
its `core` suite scoring lm-eval's own MMLU (category groups included), HellaSwag and RACE YAMLs."""

from __future__ import annotations

import pandas as pd
import pytest

from forgetbench.results import read_results
from tests.conftest import run_cli
from tests.hub_mirror_fixture import build_hub_mirror

SMALL_STREAM = ["stream.order=[wiki_auto,gigaword]", "stream.max_new_tokens=4", "train.log_every=1"]
SMALL_EVAL = ["eval=quick", "eval.tasks=[race,race_middle]"]
MMLU_CATEGORIES = {"mmlu_stem", "mmlu_humanities", "mmlu_social_sciences", "mmlu_other"}


@pytest.fixture(scope="module")
def hub_mirror(tmp_path_factory):
    return build_hub_mirror(tmp_path_factory.mktemp("hub"))


@pytest.mark.parametrize(
    ("experiment", "models"),
    [
        ("bloomz_ladder", ["bloomz-560m", "bloomz-1b1", "bloomz-1b7", "bloomz-3b", "bloomz-7b1"]),
        ("mt0_ladder", ["mt0-small", "mt0-base", "mt0-large", "mt0-xl"]),
        ("llama_vs_alpaca", ["llama-7b", "alpaca-7b"]),
    ],
)
def test_study_multirun_runs_offline_on_stand_ins(experiment, models, hub_mirror, tmp_path, cache_dir) -> None:
    result = run_cli(
        ["-m", f"experiment={experiment}", f"paths.hub_mirror={hub_mirror}", *SMALL_STREAM, *SMALL_EVAL],
        tmp_path,
        cache_dir,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    sweep = tmp_path / "results" / experiment / "multirun"
    rows = pd.concat([read_results(run) for run in sorted(sweep.glob("*/")) if (run / "status.json").exists()])
    assert sorted(rows["model"].unique()) == sorted(models)
    sizes = rows.groupby("model")["n_params"].first()[models]
    assert sizes.is_monotonic_increasing  # the stand-ins keep the ladder's order
    for _, run in rows.groupby("model"):
        assert set(run["step"]) == {0, 1, 2}
        assert {"race", "race_middle", "stream_wiki_auto", "stream_gigaword"} <= set(run["eval_task"])
        assert set(run.loc[run["eval_task"].str.startswith("race"), "eval_category"]) == {"reading_comprehension"}
    assert (sweep / "report" / "report.md").is_file()


def test_bloomz_1b_runs_its_own_suite_from_the_mirror(hub_mirror, tmp_path, cache_dir) -> None:
    """`experiment=bloomz_1b` as shipped (the `core` suite, no eval override), two stream steps."""
    result = run_cli(["experiment=bloomz_1b", f"paths.hub_mirror={hub_mirror}", *SMALL_STREAM[:2]], tmp_path, cache_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    rows = read_results(tmp_path / "results" / "bloomz_1b" / "bloomz-1b1-full-seed0")
    assert set(rows["step"]) == {0, 1, 2} and set(rows["model"]) == {"bloomz-1b1"}
    assert {"hellaswag", "race", "race_middle"} <= set(rows["eval_task"])
    mmlu = rows[rows["eval_task"].isin(MMLU_CATEGORIES | {"mmlu"})]
    assert set(mmlu["eval_task"]) == MMLU_CATEGORIES | {"mmlu"}  # lm-eval's own category groups
    assert (mmlu["eval_category"] == "domain_knowledge").all()
    overall = mmlu[(mmlu["eval_task"] == "mmlu") & (mmlu["metric"] == "acc")]
    assert (overall["n"] == 57 * 2).all()  # every subject's fixture rows, from the mirror's cais/mmlu
    subjects = rows[rows["eval_task"].str.startswith("mmlu_") & ~rows["eval_task"].isin(MMLU_CATEGORIES)]
    assert subjects["eval_task"].nunique() == 57 and (subjects["n"] == 2).all()


def test_mirror_paths_do_not_change_the_config_hash() -> None:
    from forgetbench.assembly import config_hash
    from tests.conftest import compose

    plain = compose(["experiment=bloomz_1b"])
    mirrored = compose(["experiment=bloomz_1b", "paths.hub_mirror=/mirror", "paths.cache_dir=/elsewhere"])
    assert mirrored.model.mirror == "/mirror" and mirrored.eval.mirror == "/mirror"
    assert config_hash(plain) == config_hash(mirrored) != config_hash(compose(["experiment=bloomz_1b", "seed=1"]))
