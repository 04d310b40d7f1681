"""flarelib.study: stage lists per run, stage keys that decide sharing, run selection and its checks."""

import pytest

from flarelib.config import compose_params
from flarelib.errors import FlareInputError
from flarelib.paths import project_root
from flarelib.study.flow import stage_key, stages_of
from flarelib.study.reproduce import select_runs

RUNS = project_root() / "params" / "runs"


def _p(name):
    return compose_params(RUNS / f"{name}.yaml", "smoke", "phantom")


def test_stages_follow_the_recipe():
    assert stages_of(_p("baseline")) == ["00_data", "03_stage2", "05_evaluate"]
    assert stages_of(_p("semi")) == ["00_data", "01_stage1", "03_stage2", "05_evaluate"]
    assert stages_of(_p("proposed")) == [
        "00_data",
        "01_stage1",
        "02_transfer",
        "03_stage2",
        "04_stage3",
        "05_evaluate",
        "06_efficiency",
    ]


def test_runs_share_exactly_the_stages_they_have_in_common():
    proposed, t_semi, semi, baseline = _p("proposed"), _p("t_semi_wo_amos"), _p("semi"), _p("baseline")
    # stage 1 and the transfer are the same computation for every run that has them
    assert stage_key(proposed, "01_stage1") == stage_key(semi, "01_stage1")
    assert stage_key(proposed, "02_transfer") == stage_key(t_semi, "02_transfer")
    # T+Semi (w/o AMOS) is the proposed run's stage 2; Semi's differs (other sources)
    assert stage_key(proposed, "03_stage2") == stage_key(t_semi, "03_stage2")
    assert stage_key(proposed, "03_stage2") != stage_key(semi, "03_stage2")
    assert stage_key(proposed, "00_data") == stage_key(baseline, "00_data")
    # a different training setting is a different computation
    randaug = _p("baseline_randaug")
    assert stage_key(randaug, "03_stage2") != stage_key(baseline, "03_stage2")


def test_efficiency_settings_are_in_the_key_of_notebook_06_alone():
    import dataclasses

    proposed = _p("proposed")
    other = dataclasses.replace(proposed, efficiency=dataclasses.replace(proposed.efficiency, cases=1))
    for stage in ("00_data", "01_stage1", "02_transfer", "03_stage2", "04_stage3", "05_evaluate"):
        assert stage_key(other, stage) == stage_key(proposed, stage), stage
    assert stage_key(other, "06_efficiency") != stage_key(proposed, "06_efficiency")


def test_groups_select_their_runs():
    names = [r.params.run.name for r in select_runs(["table5"], "smoke", "phantom")]
    assert names == ["baseline", "semi_all_mr", "proposed"]
    t6 = {r.params.run.name for r in select_runs(["table6"], "smoke", "phantom")}
    assert t6 == {
        "semi_wo_ct",
        "semi",
        "semi_wo_amos",
        "t_semi_wo_amos",
        "supervised",
        "a_semi_iter1",
        "proposed",
    }


def test_misspelled_key_stops_before_any_compute(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("run:\n  name: typo\nstudy:\n  stage2:\n    labeled: [ct]\n")
    with pytest.raises(FlareInputError) as err:
        select_runs([str(bad)], "smoke", "phantom")
    assert "typo.yaml" in str(err.value) and "study.stage2.labeled" in str(err.value)


def test_unknown_run_name_is_one_clear_error():
    with pytest.raises(FlareInputError, match="unknown run or group"):
        select_runs(["tabel5"], "smoke", "phantom")
