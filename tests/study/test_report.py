"""flarelib.study.report: the paper's tables filled from metrics.json files, and their verdicts."""

import json
import math

import pytest

from flarelib.study import paper, report
from flarelib.study.flow import link_shared

PROFILE = "smoke"


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("FLARE_OUTPUTS", str(tmp_path))
    return tmp_path / PROFILE


def _write(outputs, run, stage, metrics):
    folder = outputs / run / stage
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "DONE").write_text("{}")
    return folder


def _evaluated(outputs, run, dsc, nsd=None, **extra):
    nsd = dsc if nsd is None else nsd
    m = {"mean_dsc": dsc, "std_dsc": 0.01, "mean_nsd": nsd, "std_nsd": 0.02, "n_cases": 4, **extra}
    return _write(outputs, run, "05_evaluate", m)


def test_table5_reads_each_run_and_states_the_ordering(outputs):
    _evaluated(outputs, "baseline", 0.50)
    _evaluated(outputs, "semi_all_mr", 0.55)
    _evaluated(outputs, "proposed", 0.70, 0.8)
    t5 = report.table5(report.run_scores(PROFILE, "phantom"))
    assert list(t5.index) == list(paper.TABLE5)
    assert t5.loc["proposed", "DSC"] == pytest.approx(70.0)
    assert t5.loc["proposed", "NSD diff"] == pytest.approx(80.0 - 89.83)
    assert "holds" in report.table5_verdict(t5) and "NOT" not in report.table5_verdict(t5)


def test_table5_verdict_says_when_the_ordering_fails_or_is_undecided(outputs):
    _evaluated(outputs, "baseline", 0.60)
    _evaluated(outputs, "semi_all_mr", 0.55)
    t5 = report.table5(report.run_scores(PROFILE, "phantom"))
    assert "not evaluated yet: proposed" in report.table5_verdict(t5)
    _evaluated(outputs, "proposed", 0.70)
    t5 = report.table5(report.run_scores(PROFILE, "phantom"))
    assert "does NOT hold" in report.table5_verdict(t5)


def test_table6_counts_adjacent_orderings_against_the_paper(outputs):
    # ours rise everywhere but between semi and semi_wo_amos (a tie in the paper: matches anyway)
    # and between supervised and a_semi_iter1 (a drop where the paper rises)
    values = dict(zip(paper.TABLE6_ORDER, [0.50, 0.52, 0.51, 0.55, 0.60, 0.58, 0.62], strict=True))
    for run, v in values.items():
        _evaluated(outputs, run, v)
    t6 = report.table6(report.run_scores(PROFILE, "phantom"))
    assert list(t6["stage"]) == ["stage 2"] * 4 + ["stage 3"] * 3
    table, summary = report.table6_orderings(t6)
    assert list(table["same direction"]) == [True, True, True, True, False, True]
    assert summary.startswith("5 of 6 adjacent orderings")


def test_table6_orderings_undecided_without_runs(outputs):
    _, summary = report.table6_orderings(report.table6(report.run_scores(PROFILE, "phantom")))
    assert summary.startswith("0 of 0") and "6 not decided" in summary


def test_a_shared_stage_is_followed_and_tracks_are_kept_apart(outputs):
    target = _evaluated(outputs, "semi", 0.4)
    link_shared(outputs / "semi_wo_amos" / "05_evaluate", target)
    _evaluated(outputs, "semi_real", 0.9)
    scores = report.run_scores(PROFILE, "phantom")
    assert scores.loc["semi_wo_amos", "dsc"] == pytest.approx(40.0)
    assert report.run_scores(PROFILE, "real").loc["semi", "dsc"] == pytest.approx(90.0)
    assert report.report_run_id("phantom") != report.report_run_id("real")


def test_table4_per_organ_and_missing_organs_are_nan(outputs):
    per_organ = {"liver": {"dsc": 0.9, "dsc_std": 0.05, "nsd": 0.95, "nsd_std": 0.01}}
    _evaluated(outputs, "proposed", 0.7, per_organ=per_organ)
    t4 = report.table4(PROFILE, "phantom")
    assert list(t4.index) == list(paper.TABLE4)
    assert t4.loc["liver", "DSC"] == pytest.approx(90.0)
    assert t4.loc["liver", "DSC diff"] == pytest.approx(90.0 - 96.56)
    assert math.isnan(t4.loc["spleen", "DSC"])


def test_fig6_from_stage2_and_stage3_and_its_peak(outputs):
    _write(outputs, "proposed", "03_stage2", {"val_mean_dsc": 0.3, "val_mean_nsd": 0.4})
    its = [
        {"iteration": i, "val_mean_dsc": d, "val_mean_nsd": d, "kept": 5, "dropped": 1}
        for i, d in [(1, 0.4), (2, 0.5), (3, 0.45)]
    ]
    _write(outputs, "proposed", "04_stage3", {"iterations": its, "final_iteration": 3})
    f6 = report.fig6_table(PROFILE, "phantom")
    assert list(f6["iteration"]) == [0, 1, 2, 3]
    assert f6["dsc"].tolist() == pytest.approx([30, 40, 50, 45])
    assert "peaks at iteration 2" in report.fig6_verdict(f6)


def test_phantom_diagnostics_and_the_oracle_ceiling(outputs):
    _write(
        outputs,
        "proposed",
        "01_stage1",
        {"pseudo_label_true_dsc": 0.3, "val_mean_dsc": 0.2, "translation_refined_organ_mae": 25.0},
    )
    _write(outputs, "proposed", "02_transfer", {"precision": 0.8, "recall": 0.4})
    _evaluated(outputs, "oracle_mr", 0.8)
    _evaluated(outputs, "proposed", 0.4)
    d = report.phantom_diagnostics(PROFILE, "phantom", report.run_scores(PROFILE, "phantom"))
    values = dict(zip(d["quantity"], d["value"], strict=True))
    assert values["proposed: fraction of the ceiling"] == pytest.approx(0.5)
    assert any(q.startswith("kidney filter precision") and v == 0.8 for q, v in values.items())
    assert values["stage 1: refined organ mae"] == 25.0


def test_stage_status_marks_done_shared_failed(outputs):
    target = _evaluated(outputs, "semi", 0.4)
    link_shared(outputs / "semi_wo_amos" / "05_evaluate", target)
    failed = outputs / "proposed" / "04_stage3"
    failed.mkdir(parents=True)
    (failed / "04_stage3.failed.ipynb").write_text("{}")
    _evaluated(outputs, "semi_real", 0.9)
    s = report.stage_status(PROFILE, "phantom")
    assert s.loc["semi", "05_evaluate"] == "done"
    assert s.loc["semi_wo_amos", "05_evaluate"] == "shared"
    assert s.loc["proposed", "04_stage3"] == "failed"
    assert "semi_real" not in s.index
    assert list(report.stage_status(PROFILE, "real").index) == ["semi"]


def test_stale_stages_are_named_and_marked(outputs):
    from flarelib.config import compose_params, params_hash
    from flarelib.notebook_runner import find_notebook, notebook_hash
    from flarelib.paths import project_root

    params = compose_params(project_root() / "params" / "runs" / "baseline.yaml", PROFILE, "phantom")

    def now(stage):
        return {"params_hash": params_hash(params), "notebook_hash": notebook_hash(find_notebook(stage))}

    stage2 = _write(outputs, "baseline", "03_stage2", {})
    (stage2 / "DONE").write_text(json.dumps(now("03_stage2")))
    evaluate = _evaluated(outputs, "baseline", 0.4)
    (evaluate / "DONE").write_text(json.dumps({**now("05_evaluate"), "params_hash": "0123456789ab"}))
    assert report.stale_stages(PROFILE, "phantom") == {"baseline": ["05_evaluate"]}  # older params
    s = report.stage_status(PROFILE, "phantom")
    assert s.loc["baseline", "03_stage2"] == "done" and s.loc["baseline", "05_evaluate"] == "stale"
    assert "baseline (05_evaluate)" in report.stale_note(report.stale_stages(PROFILE, "phantom"))
    (stage2 / "DONE").write_text(json.dumps({**now("03_stage2"), "notebook_hash": "another"}))
    (evaluate / "DONE").write_text(json.dumps({"params_hash": params_hash(params)}))  # no notebook hash
    assert report.stale_stages(PROFILE, "phantom") == {"baseline": ["03_stage2"]}  # notebook changed
    (stage2 / "DONE").write_text(json.dumps(now("03_stage2")))
    assert report.stale_stages(PROFILE, "phantom") == {} and report.stale_note({}) == ""
    # other params, but none its result depends on (the stage key is the current one): current
    from flarelib.study.flow import stage_key

    same_key = {
        **now("05_evaluate"),
        "params_hash": "0123456789ab",
        "stage_key": stage_key(params, "05_evaluate"),
    }
    (evaluate / "DONE").write_text(json.dumps(same_key))
    assert report.stale_stages(PROFILE, "phantom") == {}
    (evaluate / "DONE").write_text(json.dumps({**same_key, "stage_key": "another"}))
    assert report.stale_stages(PROFILE, "phantom") == {"baseline": ["05_evaluate"]}


def test_real_track_table_per_organ_beside_the_anchors_and_its_verdict(outputs):
    organs = {o: {"dsc": 0.5, "nsd": 0.5} for o in report.REAL_ORGANS}
    _evaluated(outputs, "baseline_real", 0.40, per_organ=organs)
    _evaluated(outputs, "proposed_real", 0.80, per_organ={**organs, "liver": {"dsc": 0.9, "nsd": 0.9}})
    _evaluated(outputs, "proposed", 0.10)  # the phantom's run: not read on the real track
    t = report.real_track_table(PROFILE)
    assert t.loc["proposed", "mean DSC"] == pytest.approx(80.0)
    assert t.loc["proposed", "liver"] == pytest.approx(90.0)
    assert t.loc["proposed", "anchor"] == "SIFA"
    assert t.loc["proposed", "diff"] == pytest.approx(80.0 - 85.4)
    assert math.isnan(t.loc["cyclegan_semi", "mean DSC"])
    assert t.loc["published: DAR-UNet", "mean DSC"] == 91.1
    verdict = report.real_track_verdict(t)
    assert "+40.0 points (meets" in verdict and "proposed meets the 75 target" in verdict
    _evaluated(outputs, "proposed_real", 0.50, per_organ=organs)
    verdict = report.real_track_verdict(report.real_track_table(PROFILE))
    assert "does NOT meet the +15" in verdict and "does NOT meet the 75" in verdict


def test_real_track_limits_reads_each_link_of_the_chain(outputs):
    assert report.real_track_limits(PROFILE, report.real_track_table(PROFILE)) == []  # nothing measured
    _evaluated(outputs, "baseline_real", 0.10)
    _evaluated(outputs, "baseline_randaug_real", 0.29)
    _evaluated(outputs, "proposed_real", 0.03)
    _write(
        outputs,
        "proposed_real",
        "01_stage1",
        {
            "val_mean_dsc": 0.02,
            "translation_fake_organ_error": 94.8,
            "translation_ct_organ_error": 49.6,
            "translation_fake_order_fraction": 0.33,
            "translation_ct_order_fraction": 0.5,
        },
    )
    _write(outputs, "proposed_real", "03_stage2", {"val_mean_dsc": 0.05})
    its = [{"kept": 0, "dropped": 10, "val_mean_dsc": 0.048}, {"kept": 2, "dropped": 8, "val_mean_dsc": 0.03}]
    _write(outputs, "proposed_real", "04_stage3", {"iterations": its})
    lines = report.real_track_limits(PROFILE, report.real_track_table(PROFILE))
    assert lines[0].startswith("translation: the fake T2W's organs are 94.8")
    assert "worse than the CT" in lines[0]
    assert "(49.6)" in lines[0] and "order 0.33 (CT 0.50)" in lines[0]
    assert "scores 2.0 mean Dice" in lines[1]
    assert lines[2] == "stage 2 (CT + stage-1 pseudo-labels): 5.0 mean Dice"
    assert "kept 0/10, 2/10 pseudo-labels in iterations 1-2" in lines[3] and "4.8, 3.0" in lines[3]
    assert lines[4] == "best row: baseline_randaug 29.0 mean Dice (proposed 3.0)"


def test_run_checkpoints_per_track(outputs):
    _evaluated(outputs, "baseline", 0.4, model="smoke/baseline/03_stage2/model/model_best.pt")
    _evaluated(outputs, "baseline_real", 0.4, model="smoke/baseline_real/03_stage2/model/model_best.pt")
    assert report.run_checkpoints(PROFILE, "real")["checkpoint"].to_dict() == {
        "baseline": "smoke/baseline_real/03_stage2/model/model_best.pt"
    }
    assert list(report.run_checkpoints(PROFILE, "phantom").index) == ["baseline"]


def test_translation_evidence_phantom_pools_cases_and_reads_the_targets(outputs):
    folder = _write(outputs, "proposed", "01_stage1", {"pseudo_label_true_dsc": 0.2, "val_mean_dsc": 0.1})
    rows = [
        "case,input,sequence,organ_mae,order_fraction,ssim_body,err_liver",
        "a,fake,T1W,40,0.5,0.1,-30",
        "a,ct,T1W,90,0.4,-0.2,50",
        "b,fake,T1W,60,0.7,0.3,-10",
        "b,ct,T1W,90,0.6,-0.2,50",
    ]
    (folder / "translation.csv").write_text("\n".join(rows) + "\n")
    table, line = report.translation_evidence(PROFILE, "phantom")
    assert table.loc["fake", "organ_mae"] == pytest.approx(50.0)
    assert table.loc["fake", "err_liver"] == pytest.approx(-20.0)
    assert table.loc["ct", "order_fraction"] == pytest.approx(0.5)
    assert "organ error 50.0" in line and "CT as it is 90.0" in line and "DSC 20.0" in line
    assert "refined" not in line
    # with a refinement round (cyclegan.refine_rounds) the refined fakes' figures follow
    rows += ["a,refined,T1W,20,0.9,0.2,-5", "b,refined,T1W,30,0.8,0.3,-5"]
    (folder / "translation.csv").write_text("\n".join(rows) + "\n")
    table, line = report.translation_evidence(PROFILE, "phantom")
    assert table.loc["refined", "organ_mae"] == pytest.approx(25.0)
    assert "refined organ by organ from stage 1's pseudo-labels: 25.0, pairs 0.85" in line


def test_translation_evidence_real_per_organ_and_when_missing(outputs):
    table, line = report.translation_evidence(PROFILE, "real")
    assert table.empty and "no finished stage 1" in line
    folder = _write(outputs, "proposed_real", "01_stage1", {"val_mean_dsc": 0.0})
    table, line = report.translation_evidence(PROFILE, "real")
    assert table.empty and "predates" in line
    _write(
        outputs,
        "proposed_real",
        "01_stage1",
        {"translation_fake_organ_error": 94.8, "translation_ct_organ_error": 49.6, "val_mean_dsc": 0.0},
    )
    (folder / "translation.csv").write_text("organ,fake,ct,real\nliver,60,160,100\nspleen,50,165,190\n")
    table, line = report.translation_evidence(PROFILE, "real")
    assert list(table.index) == ["liver", "spleen"] and table.loc["spleen", "real"] == 190
    assert "error 94.8" in line and "CT as it is 49.6" in line
