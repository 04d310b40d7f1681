"""Tests for flarelib.evaluate.report: folders of NIfTI files, the Table-4 summary, the CLI.

End to end on NIfTI files, with the official FLARE24 script's loop (tests/evaluate/flare_reference.py)
reading the same files with nibabel, as the script does. Volumes are (z, y, x) in memory.
"""

from __future__ import annotations

import argparse

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from flarelib.errors import FlareInputError
from flarelib.evaluate.report import (
    add_cli,
    evaluate_folder,
    format_table_markdown,
    main_evaluate,
    summary_table,
)
from flarelib.labels import ORGAN_IDS, LabelMap
from tests.evaluate.support import (
    assert_scores_close,
    cube,
    labels_from,
    official_scores,
    random_case,
    write_nifti,
)

# surface-distance calls scipy.ndimage.filters / .morphology (deprecated namespaces).
pytestmark = pytest.mark.filterwarnings("ignore:Please import:DeprecationWarning")


# --- tables -------------------------------------------------------------------------------------
def test_summary_table_average_is_over_per_case_means():
    df = pd.DataFrame(
        [
            ("a", 1, "Liver", 0.9, 0.8),
            ("a", 2, "RK", 0.7, 0.6),
            ("b", 1, "Liver", 0.5, 1.0),
            ("b", 2, "RK", 0.3, 0.2),
        ],
        columns=["case", "organ", "organ_name", "dsc", "nsd"],
    )
    s = summary_table(df)
    assert list(s.index) == ["Liver", "RK", "Average"]
    assert s.loc["Liver", "dsc_mean"] == pytest.approx(70.0)
    assert s.loc["Liver", "dsc_std"] == pytest.approx(np.std([90, 50], ddof=1))
    # per-case means: a 80 / 70, b 40 / 60
    assert s.loc["Average", "dsc_mean"] == pytest.approx(60.0)
    assert s.loc["Average", "dsc_std"] == pytest.approx(np.std([80, 40], ddof=1))
    assert s.loc["Average", "nsd_std"] == pytest.approx(np.std([70, 60], ddof=1))
    assert s.loc["Average", "n_cases"] == 2
    assert summary_table(df, ddof=0).loc["Average", "dsc_std"] == pytest.approx(20.0)
    md = format_table_markdown(s)
    assert md.splitlines()[0] == "| Organ | DSC (%) | NSD (%) |"
    assert "| Average | 60.00 ± 28.28 | 65.00 ± 7.07 |" in md


# --- files: folders, manifest, CLI, and the official script reading the same files -----------------
def test_evaluate_folder_equals_the_official_script_on_files(tmp_path):
    rng = np.random.default_rng(11)
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    for case in ("case_a", "case_b"):
        gt, pred = random_case(rng, shape=(16, 40, 40))
        write_nifti(tmp_path / "gt" / f"{case}.nii.gz", gt)
        write_nifti(tmp_path / "pred" / f"{case}.nii.gz", pred)
    df = evaluate_folder(tmp_path / "pred", tmp_path / "gt", progress=False)
    assert list(df.columns) == ["case", "organ", "organ_name", "dsc", "nsd"]
    assert len(df) == 2 * 13
    for case in ("case_a", "case_b"):
        # exactly what the script does with the files
        gt_nii = nib.load(tmp_path / "gt" / f"{case}.nii.gz")
        case_spacing = gt_nii.header.get_zooms()
        gt_data = np.uint8(gt_nii.get_fdata())
        seg_data = np.uint8(nib.load(tmp_path / "pred" / f"{case}.nii.gz").get_fdata())
        ref = official_scores(gt_data, seg_data, case_spacing)
        rows = df[df["case"] == case]
        ours = {int(r.organ): (r.dsc, r.nsd) for r in rows.itertuples()}
        assert_scores_close(ours, ref)


def test_missing_predictions_are_listed(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    lab = labels_from({1: cube((4, 6, 6), (1, 1, 1), (3, 4, 4))})
    for case in ("c1", "c2", "c3"):
        write_nifti(tmp_path / "gt" / f"{case}.nii.gz", lab)
    write_nifti(tmp_path / "pred" / "c2.nii.gz", lab)
    with pytest.raises(FlareInputError, match=r"2 of 3 cases have no prediction: c1.nii.gz, c3.nii.gz"):
        evaluate_folder(tmp_path / "pred", tmp_path / "gt", progress=False)


def test_cli_with_manifest_maps_gt_ids_and_omits_unannotated(tmp_path, capsys):
    # the GT uses the dataset's own ids: 6 = liver, 3 = left kidney; the dataset lacks duodenum (12)
    shape = (10, 20, 20)
    liver, lk = cube(shape, (2, 2, 2), (8, 9, 9)), cube(shape, (2, 12, 12), (8, 17, 17))
    gt_src = np.zeros(shape, np.uint8)
    gt_src[liver], gt_src[lk] = 6, 3
    pred = labels_from({1: liver, 13: np.roll(lk, 1, axis=2), 12: cube(shape, (2, 12, 2), (4, 16, 6))})
    write_nifti(tmp_path / "gt.nii.gz", gt_src)
    write_nifti(tmp_path / "pred.nii.gz", pred)
    manifest = tmp_path / "dataset.json"
    manifest.write_text(
        '{"datasets": {"mini": {"label_to_flare": {"0": 0, "6": 1, "3": 13}, "flare_not_annotated": [12]},'
        ' "other": {"label_to_flare": {"0": 0}}}}'
    )
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    out = tmp_path / "res" / "results.csv"
    pred_path, gt_path = str(tmp_path / "pred.nii.gz"), str(tmp_path / "gt.nii.gz")
    argv = [
        "evaluate",
        pred_path,
        gt_path,
        "--out",
        str(out),
        "--manifest",
        str(manifest),
        "--dataset",
        "mini",
    ]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    df = pd.read_csv(out)
    assert set(df["organ"]) == set(ORGAN_IDS) - {12}
    liver_row = df[df["organ"] == 1].iloc[0]
    assert (liver_row.dsc, liver_row.nsd) == (1.0, 1.0)
    assert df[df["organ"] == 13].iloc[0].dsc == pytest.approx(4 / 5)  # 5 voxels wide, shifted 1
    printed = capsys.readouterr().out
    assert "| Liver | 100.00 | 100.00 |" in printed and "Duodenum" not in printed
    assert not list(out.parent.glob(".*tmp"))  # atomic write left no temp file
    with pytest.raises(FlareInputError, match="holds datasets"):
        main_evaluate(tmp_path / "pred.nii.gz", tmp_path / "gt.nii.gz", out, manifest=manifest)
    with pytest.raises(FlareInputError, match="needs --manifest"):
        main_evaluate(tmp_path / "pred.nii.gz", tmp_path / "gt.nii.gz", out, dataset="mini")


def test_prediction_with_non_flare_ids_is_rejected(tmp_path):
    lab = labels_from({1: cube((4, 6, 6), (1, 1, 1), (3, 4, 4))})
    write_nifti(tmp_path / "gt.nii.gz", lab)
    write_nifti(tmp_path / "pred.nii.gz", np.where(lab == 1, 20, 0).astype(np.uint8))
    with pytest.raises(FlareInputError, match=r"label ids \[20\]"):
        evaluate_folder(tmp_path / "pred.nii.gz", tmp_path / "gt.nii.gz", progress=False)


def test_label_map_identity_keeps_ids(tmp_path):
    lab = labels_from({2: cube((4, 6, 6), (1, 1, 1), (3, 4, 4))})
    write_nifti(tmp_path / "gt.nii.gz", lab)
    write_nifti(tmp_path / "pred.nii.gz", lab)
    df = evaluate_folder(
        tmp_path / "pred.nii.gz", tmp_path / "gt.nii.gz", label_map=LabelMap.identity(), progress=False
    )
    assert (df["dsc"] == 1.0).all() and len(df) == 13


def test_manifest_errors_name_the_file_and_the_option(tmp_path):
    lab = labels_from({1: cube((4, 6, 6), (1, 1, 1), (3, 4, 4))})
    write_nifti(tmp_path / "gt.nii.gz", np.where(lab == 1, 5, 0).astype(np.uint8))  # source id 5 = liver
    write_nifti(tmp_path / "pred.nii.gz", lab)
    manifest = tmp_path / "dataset.json"
    manifest.write_text(
        '{"datasets": {"ts": {"label_to_flare": {"total": {"5": 1}, "total_mr": {"5": 1, "3": 13}}}}}'
    )
    args = (tmp_path / "pred.nii.gz", tmp_path / "gt.nii.gz", tmp_path / "out.csv")
    with pytest.raises(FlareInputError, match="manifest not found"):
        main_evaluate(*args, manifest=tmp_path / "missing.json")
    with pytest.raises(FlareInputError, match=r"no dataset 'mini' \(has \['ts'\]\)"):
        main_evaluate(*args, manifest=manifest, dataset="mini")
    with pytest.raises(FlareInputError, match=r"label sets \['total', 'total_mr'\].*--dataset ts:VARIANT"):
        main_evaluate(*args, manifest=manifest)
    with pytest.raises(FlareInputError, match="not 'mr'"):
        main_evaluate(*args, manifest=manifest, dataset="ts:mr")
    df = main_evaluate(*args, manifest=manifest, dataset="ts:total_mr")
    assert (df["dsc"] == 1.0).all() and len(df) == 13
