"""flarelib.data.check: check_dataset on tiny synthetic datasets, and the check-data command."""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

from flarelib.config import params_from_dict
from flarelib.data.check import (
    SUMMARY_COLUMNS,
    add_cli,
    check_dataset,
    format_ids,
    markdown_table,
    run,
)
from flarelib.data.layout import lld_case_id
from flarelib.data.manifest import write_manifest
from flarelib.errors import FlareInputError
from flarelib.labels import SEQUENCES

SHAPE_ZYX = (3, 4, 5)
REPO = Path(__file__).resolve().parents[2]

SUBSETS = {
    "ct": {
        "role": "ct_labeled",
        "modality": "CT",
        "dataset": "toy",
        "images": "imagesTr/{case}_0000.nii.gz",
        "labels": "labelsTr/{case}.nii.gz",
    },
    "lld": {"role": "mr_lld", "modality": "MR", "images": "LLD/{case}_0000.nii.gz"},
}


def write_nifti(path: Path, array: np.ndarray, spacing_xyz=(1.5, 1.5, 3.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing_xyz)
    sitk.WriteImage(img, str(path), True)
    return path


def label_array(ids=(1, 2)) -> np.ndarray:
    lab = np.zeros(SHAPE_ZYX, np.uint8)
    lab[0, :2, :2] = ids[0]
    lab[1:, 2:, 3:] = ids[1]
    return lab


def make_dataset(root: Path, lld_patients=("P_1", "P-2")) -> dict:
    """2 labeled CT cases (source ids 1 -> spleen 3, 2 -> liver 1) and complete LLD patients."""
    img = np.zeros(SHAPE_ZYX, np.int16)
    for cid in ("c2", "c10"):
        write_nifti(root / f"imagesTr/{cid}_0000.nii.gz", img)
        write_nifti(root / f"labelsTr/{cid}.nii.gz", label_array())
    for patient in lld_patients:
        for seq in SEQUENCES:
            write_nifti(root / f"LLD/{lld_case_id(patient, seq)}_0000.nii.gz", img, (2.0, 2.0, 6.0))
    write_manifest(
        root / "dataset.json",
        {
            "toy": {
                "label_to_flare": {"0": 0, "1": 3, "2": 1},
                "flare_not_annotated": [12, 13],
                "cases": [
                    {"id": c, "image": f"imagesTr/{c}_0000.nii.gz", "label": f"labelsTr/{c}.nii.gz"}
                    for c in ("c2", "c10")
                ],
            }
        },
    )
    return {"data": {"track": "phantom", "root": str(root), "subsets": SUBSETS}}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_dataset(tmp_path)
    return tmp_path


def params_at(root: Path, subsets=SUBSETS):
    return params_from_dict({"data": {"track": "phantom", "root": str(root), "subsets": subsets}})


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_good_dataset(root: Path) -> None:
    report = check_dataset(params_at(root), progress=False)
    assert report.ok and report.problems == []
    s = report.summary.set_index("subset")
    assert list(report.summary.columns) == list(SUMMARY_COLUMNS)
    assert s.loc["ct", "cases"] == 2 and s.loc["ct", "with labels"] == 2
    assert s.loc["ct", "organs present"] == "1, 3" and s.loc["ct", "not annotated"] == "12-13"
    assert s.loc["ct", "shape range (z,y,x)"] == "3 x 4 x 5"
    assert s.loc["ct", "spacing range mm (z,y,x)"] == "3 x 1.5 x 1.5"
    assert pd.isna(s.loc["ct", "patients (LLD)"])
    assert s.loc["lld", "cases"] == 16 and s.loc["lld", "patients (LLD)"] == 2
    assert s.loc["lld", "sequences"] == "T1W, EAP, PVP, DP, T2W, DWI, IP, OP"
    assert s.loc["lld", "with labels"] == 0 and s.loc["lld", "spacing range mm (z,y,x)"] == "6 x 2 x 2"
    assert list(report.per_case["case_id"][:2]) == ["c2", "c10"]  # natural order
    assert report.per_case["ok"].all()
    md = report.to_markdown()
    assert "| subset" in md and "No problems found." in md


def test_header_only_mode(root: Path) -> None:
    report = check_dataset(params_at(root), read_voxels=False, progress=False)
    assert report.ok
    assert report.summary.set_index("subset").loc["ct", "organs present"] == ""  # no voxels read


def test_truncated_gzip_is_named(root: Path) -> None:
    bad = root / "imagesTr/c10_0000.nii.gz"
    truncate(bad)
    with pytest.raises(EOFError):  # really broken
        gzip.decompress(bad.read_bytes())
    report = check_dataset(params_at(root), progress=False)
    assert not report.ok
    assert len(report.problems) == 1 and str(bad) in report.problems[0]
    assert "gzip" in report.problems[0]
    row = report.per_case.set_index("case_id").loc["c10"]
    assert not row["ok"]
    assert f"- {report.problems[0]}" in report.to_markdown()


def test_missing_label(root: Path) -> None:
    (root / "labelsTr/c2.nii.gz").unlink()
    report = check_dataset(params_at(root), progress=False)
    assert report.summary.set_index("subset").loc["ct", "with labels"] == 1
    (problem,) = report.problems
    assert problem.startswith(f"{root / 'labelsTr/c2.nii.gz'}: label file missing")


def test_grid_mismatch(root: Path) -> None:
    write_nifti(root / "labelsTr/c2.nii.gz", label_array(), spacing_xyz=(1.5, 1.5, 5.0))
    for read_voxels in (True, False):
        (problem,) = check_dataset(params_at(root), read_voxels=read_voxels, progress=False).problems
        assert str(root / "labelsTr/c2.nii.gz") in problem and "grid" in problem and "spacing" in problem


def test_unknown_label_id(root: Path) -> None:
    write_nifti(root / "labelsTr/c10.nii.gz", label_array(ids=(1, 7)))
    (problem,) = check_dataset(params_at(root), progress=False).problems
    assert str(root / "labelsTr/c10.nii.gz") in problem and "[7]" in problem


def test_not_annotated_organ_in_label(root: Path) -> None:
    """A label holding an organ its map calls 'not annotated' contradicts the manifest."""
    write_manifest(
        root / "dataset.json",
        {"toy": {"label_to_flare": {"0": 0, "1": 3, "2": 12}, "flare_not_annotated": [12], "cases": []}},
    )
    problems = check_dataset(params_at(root), progress=False).problems
    assert len(problems) == 2 and all("not annotated" in p and "12" in p for p in problems)


def test_lld_missing_sequences(root: Path) -> None:
    for seq in ("DWI", "OP"):
        (root / f"LLD/{lld_case_id('P-2', seq)}_0000.nii.gz").unlink()
    (root / "LLD/P-3_C-pre_0000.nii.gz").write_bytes((root / "LLD/P_1_C-pre_0000.nii.gz").read_bytes())
    report = check_dataset(params_at(root), progress=False)
    problems = sorted(report.problems)
    assert len(problems) == 2
    assert "'P-2'" in problems[0] and "lacks sequence(s) DWI, OP" in problems[0]
    assert "P-2_DWI_0000.nii.gz, P-2_OutPhase_0000.nii.gz" in problems[0]
    assert "'P-3'" in problems[1] and "EAP, PVP, DP, T2W, DWI, IP, OP" in problems[1]
    assert report.summary.set_index("subset").loc["lld", "patients (LLD)"] == 3
    # a shorter requirement list passes
    raw = {"data": {"track": "phantom", "root": str(root), "subsets": SUBSETS, "sequences_required": ["T1W"]}}
    assert check_dataset(params_from_dict(raw), progress=False).ok


def test_lld_unknown_tag(root: Path) -> None:
    odd = root / "LLD/P_1_C+A_0000.nii.gz"
    odd.write_bytes((root / "LLD/P_1_C-pre_0000.nii.gz").read_bytes())
    (problem,) = check_dataset(params_at(root), progress=False).problems
    assert problem.startswith(str(odd)) and "sequence tag" in problem


def test_unknown_required_sequence(root: Path) -> None:
    raw = {"data": {"track": "phantom", "root": str(root), "subsets": SUBSETS, "sequences_required": ["T3"]}}
    with pytest.raises(FlareInputError, match=r"sequences_required.*T3"):
        check_dataset(params_from_dict(raw), progress=False)


def test_empty_subset_and_manifest_listing(root: Path) -> None:
    (root / "imagesTr/c2_0000.nii.gz").unlink()
    subsets = {**SUBSETS, "amos": {"role": "mr_amos", "modality": "MR", "images": "AMOS/{case}.nii.gz"}}
    report = check_dataset(params_at(root, subsets), progress=False)
    problems = report.problems
    assert len(problems) == 2
    assert any(p.startswith(str(root / "AMOS/{case}.nii.gz")) and "'amos' is empty" in p for p in problems)
    assert any(
        p.startswith(str(root / "imagesTr/c2_0000.nii.gz")) and "listed in dataset.json" in p
        for p in problems
    )
    assert report.summary.set_index("subset").loc["amos", "cases"] == 0


def test_visit_sees_every_good_case(root: Path) -> None:
    truncate(root / "imagesTr/c10_0000.nii.gz")
    seen = {}
    check_dataset(params_at(root), progress=False, visit=lambda c, im, lab: seen.setdefault(c.case_id, lab))
    assert "c10" not in seen and len(seen) == 1 + 16
    assert set(np.unique(seen["c2"].array)) == {0, 1, 3}  # mapped to FLARE ids
    assert seen[lld_case_id("P_1", "DWI")] is None


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FlareInputError, match="flarelib generate"):
        check_dataset(params_at(tmp_path / "nope"), progress=False)


def test_format_helpers() -> None:
    assert format_ids([13, 1, 2, 3, 5, 4, 9]) == "1-5, 9, 13"
    assert format_ids([]) == "" and format_ids([7]) == "7"
    df = pd.DataFrame({"a": [1, None], "b|c": ["x", "y|z"]})
    assert markdown_table(df).splitlines() == [
        "| a   | b\\|c |",
        "|-----|------|",
        "| 1.0 | x    |",
        "|     | y\\|z |",
    ]


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def write_params(root: Path, path: Path) -> Path:
    path.write_text(yaml.safe_dump({"data": {"track": "phantom", "root": str(root), "subsets": SUBSETS}}))
    return path


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flarelib.data.check", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_cli_problems_exit_1_without_traceback(root: Path, tmp_path: Path) -> None:
    bad = root / "imagesTr/c2_0000.nii.gz"
    truncate(bad)
    params = write_params(root, tmp_path / "p.yaml")
    proc = run_module("--params", str(params), "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert str(bad) in proc.stdout and "1 problem(s)" in proc.stdout
    assert "| subset" in proc.stdout


def test_cli_cannot_run_exit_2_one_line(tmp_path: Path) -> None:
    params = write_params(tmp_path / "absent", tmp_path / "p.yaml")
    proc = run_module("--params", str(params))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert str(tmp_path / "absent") in line and "Fix:" in line


def test_run_handler_in_process(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(prog="flarelib")
    sub = parser.add_subparsers(dest="command")
    add_cli(sub)
    params = write_params(root, tmp_path / "p.yaml")
    args = parser.parse_args(["check-data", "--params", str(params), "--no-progress"])
    assert args.func is run and args.func(args) == 0
    assert "No problems found." in capsys.readouterr().out
    args = parser.parse_args(["check-data", "--params", str(tmp_path / "missing.yaml")])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "missing.yaml" in err and "Traceback" not in err
