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


def test_transfer_and_anatomy_settings_are_in_the_keys_of_their_stages_and_after():
    import dataclasses

    proposed, baseline = _p("proposed"), _p("baseline")
    organs = dataclasses.replace(
        proposed, anatomy=dataclasses.replace(proposed.anatomy, on_failure="drop_organs")
    )
    looser = dataclasses.replace(
        proposed, transfer=dataclasses.replace(proposed.transfer, dce_accept_one=0.7)
    )
    for stage in stages_of(proposed):
        after_stage3 = stage in ("04_stage3", "05_evaluate", "06_efficiency")
        assert (stage_key(organs, stage) != stage_key(proposed, stage)) is after_stage3, stage
        after_transfer = stage not in ("00_data", "01_stage1")
        assert (stage_key(looser, stage) != stage_key(proposed, stage)) is after_transfer, stage
    # a run without a transfer or a stage 3 reads neither section
    for section, value in (("anatomy", organs.anatomy), ("transfer", looser.transfer)):
        other = dataclasses.replace(baseline, **{section: value})
        for stage in stages_of(baseline):
            assert stage_key(other, stage) == stage_key(baseline, stage), (section, stage)


def test_stage_1_settings_are_in_the_keys_of_runs_with_stage_1_alone():
    import dataclasses

    for name in ("baseline", "proposed"):
        p = _p(name)
        gan = dataclasses.replace(p, cyclegan=dataclasses.replace(p.cyclegan, lr=p.cyclegan.lr / 2))
        gin = dataclasses.replace(p, train=dataclasses.replace(p.train, stage1_intensity_aug="randconv"))
        fg = dataclasses.replace(p, train=dataclasses.replace(p.train, stage1_foreground_oversample=0.9))
        longer = dataclasses.replace(p, train=dataclasses.replace(p.train, stage1_iterations=7))
        fewer = dataclasses.replace(p, train=dataclasses.replace(p.train, stage1_batch_unlabeled=3))
        for stage in stages_of(p)[1:]:
            changed = name == "proposed"
            for other in (gan, gin, fg, longer, fewer):
                assert (stage_key(other, stage) != stage_key(p, stage)) is changed, (name, stage)
        # settings every stage reads still count everywhere
        wider = dataclasses.replace(p, train=dataclasses.replace(p.train, lr=p.train.lr / 2))
        assert stage_key(wider, "03_stage2") != stage_key(p, "03_stage2")


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


def _real(name, profile="smoke"):
    return compose_params(RUNS / f"{name}.yaml", profile, "real")


def test_one_sequence_track_skips_the_transfer_and_learns_from_stage_1():
    from flarelib.study.flow import labelled_sources, single_sequence_note

    proposed = _real("proposed")
    assert labelled_sources(proposed) == ["ct", "t1w_pseudo"]
    assert "02_transfer" not in stages_of(proposed)
    assert stages_of(proposed)[:3] == ["00_data", "01_stage1", "03_stage2"]
    assert "one MR sequence (T2W)" in single_sequence_note(proposed)
    # the phantom keeps the transfer, and says nothing
    assert labelled_sources(_p("proposed")) == ["ct", "transferred"]
    assert single_sequence_note(_p("proposed")) is None


def test_real_track_runs_and_what_they_share():
    runs = select_runs(None, "smoke", "real")
    assert [r.params.run.name for r in runs] == [
        "baseline",
        "semi_all_mr",
        "cyclegan_semi",
        "proposed",
        "baseline_randaug",
        "baseline_synth",
    ]
    assert all(r.run_id.endswith("_real") for r in runs)
    by = {r.params.run.name: r.params for r in runs}
    # cyclegan_semi is the proposed run without stage 3: stages 1 and 2 are computed once
    for stage in ("01_stage1", "03_stage2"):
        assert stage_key(by["cyclegan_semi"], stage) == stage_key(by["proposed"], stage)
    assert "04_stage3" not in stages_of(by["cyclegan_semi"]) and not by["cyclegan_semi"].study.export
    assert by["proposed"].study.export


def test_track_profile_layer_applies_to_its_profile_only():
    # the quick profile's warm-started, shorter self-training holds on both tracks (the real track's
    # layer, params/data/real.quick.yaml, only says why 2-D suits CHAOS); full keeps the paper's
    quick = _real("proposed", "quick")
    assert quick.study.stage3.warm_start and quick.study.stage3.train_iterations == 250
    full = _real("proposed", "full")
    assert not full.study.stage3.warm_start and full.study.stage3.train_iterations == 0
    phantom = compose_params(RUNS / "proposed.yaml", "quick", "phantom")
    assert phantom.study.stage3.warm_start and phantom.study.stage3.train_iterations == 250


def test_phantom_only_runs_and_groups_are_refused_on_the_real_track():
    with pytest.raises(FlareInputError, match="table6"):
        select_runs(["table6"], "smoke", "real")
    with pytest.raises(FlareInputError, match="oracle_mr needs the phantom"):
        select_runs(["oracle_mr"], "smoke", "real")
    # the phantom's study does not run the real track's extra row
    assert "cyclegan_semi" not in {r.params.run.name for r in select_runs(None, "smoke", "phantom")}


def test_train_seed_reseeds_the_trainings_and_keeps_the_data():
    import dataclasses

    from flarelib.data.phantom.marker import phantom_key
    from flarelib.train.stages import stage_seed, training_hash, training_seed

    p = _p("proposed")
    repeat = dataclasses.replace(p, run=dataclasses.replace(p.run, train_seed=7))
    assert training_seed(p) == p.run.seed and training_seed(repeat) == 7
    assert stage_seed(training_seed(repeat), "stage1") != stage_seed(training_seed(p), "stage1")
    assert phantom_key(repeat) == phantom_key(p)  # the same data
    assert stage_key(repeat, "00_data") == stage_key(p, "00_data")
    for stage in stages_of(p)[1:]:
        assert stage_key(repeat, stage) != stage_key(p, stage), stage
    for stage in ("cyclegan", "stage1"):
        assert training_hash(repeat, stage) != training_hash(p, stage)


def test_reproduce_keeps_a_finished_stage_whose_key_is_unchanged(tmp_path, monkeypatch):
    import dataclasses
    import json

    import flarelib.study.reproduce as reproduce
    from flarelib.notebook_runner import StageResult

    monkeypatch.setenv("FLARE_OUTPUTS", str(tmp_path))
    runs = []

    def fake_run_stage(nb, file, profile, data, *, run_id, force, log):  # what papermill would leave
        from flarelib.config import params_hash
        from flarelib.notebook_runner import notebook_hash
        from flarelib.paths import stage_dir

        folder = stage_dir(profile, run_id, nb.stem)
        folder.mkdir(parents=True, exist_ok=True)
        record = {"params_hash": params_hash(current), "notebook_hash": notebook_hash(nb)}
        (folder / "DONE").write_text(json.dumps(record))
        runs.append(nb.stem)
        return StageResult(nb.stem, folder, "done", 1.0)

    monkeypatch.setattr(reproduce, "run_stage", fake_run_stage)
    current = _p("baseline")
    planned = reproduce.PlannedRun(RUNS / "baseline.yaml", current, "baseline")
    assert reproduce._run_one(planned, "03_stage2", "smoke", "phantom", False, print).status == "done"
    # a stage-1 setting: another params hash, the same stage key for a run without stage 1
    current = dataclasses.replace(current, cyclegan=dataclasses.replace(current.cyclegan, lr=1e-3))
    planned = reproduce.PlannedRun(RUNS / "baseline.yaml", current, "baseline")
    assert reproduce._run_one(planned, "03_stage2", "smoke", "phantom", False, print).status == "skipped"
    # a setting it depends on runs it again
    current = dataclasses.replace(current, train=dataclasses.replace(current.train, lr=1e-3))
    planned = reproduce.PlannedRun(RUNS / "baseline.yaml", current, "baseline")
    assert reproduce._run_one(planned, "03_stage2", "smoke", "phantom", False, print).status == "done"
    assert runs == ["03_stage2", "03_stage2"]
