"""flarelib.data.layout: case discovery in a tiny synthetic FLARE24-style tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from flarelib.config import params_from_dict
from flarelib.data.layout import (
    Case,
    discover,
    lld_case_id,
    lld_patients,
    load_case,
    natural_key,
    parse_lld_case_id,
)
from flarelib.data.manifest import write_manifest
from flarelib.errors import FlareInputError
from flarelib.labels import SEQUENCES

SHAPE_ZYX = (3, 4, 5)
SPACING_XYZ = (1.5, 1.5, 3.0)


def write_nifti(path: Path, array: np.ndarray, spacing_xyz=SPACING_XYZ) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing_xyz)
    sitk.WriteImage(img, str(path), True)
    return path


SUBSETS = {
    "ct_manual": {
        "role": "ct_labeled",
        "modality": "CT",
        "dataset": "toy_ct",
        "images": "train_CT_gt_label/imagesTr/{case}_0000.nii.gz",
        "labels": "train_CT_gt_label/labelsTr/{case}.nii.gz",
    },
    "lld_mmr": {
        "role": "mr_lld",
        "modality": "MR",
        "images": "train_MRI_unlabeled/LLD-MMRI/{case}_0000.nii.gz",
    },
    "amos_mr": {"role": "mr_amos", "modality": "MR", "images": "train_MRI_unlabeled/AMOS/{case}_0000.nii.gz"},
    "mr_val": {
        "role": "mr_val",
        "modality": "MR",
        "sequence": "T2W",
        "images": "val_MRI/imagesVal/{case}_0000.nii.gz",
        "labels": "val_MRI/labelsVal/{case}.nii.gz",
    },
}
CT_IDS = ["FLARE22_10", "FLARE22_2", "FLARE22_1"]  # written out of order on purpose
PATIENT_A = "MR-100_a-b"  # patient ids may hold '_' and '-'
PATIENT_B = "MR-9"


def make_tree(root: Path, *, missing_label: str | None = None) -> dict:
    """A FLARE24-style tree: 3 labeled CT (source ids 0..2), 2 LLD patients (B lacks DWI and OP),
    2 AMOS volumes, 1 labeled MR val case (FLARE ids). Returns the params mapping."""
    lab = np.zeros(SHAPE_ZYX, np.uint8)
    lab[0, :2, :2] = 1  # source 1 -> FLARE 3 (spleen)
    lab[1:, 2:, 3:] = 2  # source 2 -> FLARE 1 (liver)
    img = np.arange(np.prod(SHAPE_ZYX), dtype=np.int16).reshape(SHAPE_ZYX)
    for cid in CT_IDS:
        write_nifti(root / f"train_CT_gt_label/imagesTr/{cid}_0000.nii.gz", img)
        if cid != missing_label:
            write_nifti(root / f"train_CT_gt_label/labelsTr/{cid}.nii.gz", lab)
    for patient, sequences in (
        (PATIENT_A, list(SEQUENCES)),
        (PATIENT_B, ["T1W", "EAP", "PVP", "DP", "T2W", "IP"]),
    ):
        for seq in sequences:
            write_nifti(root / f"train_MRI_unlabeled/LLD-MMRI/{lld_case_id(patient, seq)}_0000.nii.gz", img)
    for cid in ("amos_0507", "amos_0031"):
        write_nifti(root / f"train_MRI_unlabeled/AMOS/{cid}_0000.nii.gz", img)
    write_nifti(root / "val_MRI/imagesVal/val_1_0000.nii.gz", img)
    write_nifti(root / "val_MRI/labelsVal/val_1.nii.gz", (lab * 6).astype(np.uint8))  # FLARE ids 6, 12
    write_manifest(
        root / "dataset.json",
        {
            "toy_ct": {
                "folder": "train_CT_gt_label",
                "modality": "CT",
                "label_to_flare": {"0": 0, "1": 3, "2": 1},
                "flare_not_annotated": [12],
                "cases": [
                    {
                        "id": c,
                        "image": f"train_CT_gt_label/imagesTr/{c}_0000.nii.gz",
                        "label": f"train_CT_gt_label/labelsTr/{c}.nii.gz",
                    }
                    for c in CT_IDS
                ],
            }
        },
    )
    return {"data": {"track": "phantom", "root": str(root), "subsets": SUBSETS}}


@pytest.fixture
def tree(tmp_path: Path):
    return params_from_dict(make_tree(tmp_path / "data"))


def test_natural_sort() -> None:
    names = ["image_10", "image_2", "image_1", "image_b", "image_a"]
    assert sorted(names, key=natural_key) == ["image_1", "image_2", "image_10", "image_a", "image_b"]
    assert natural_key("a2b") < natural_key("a10")


@pytest.mark.parametrize(("short", "tag"), list(SEQUENCES.items()))
def test_parse_lld_every_tag(short: str, tag: str) -> None:
    for patient in ("MR-100_a-b", "P", "x_C", "MR_C--", "a-DWI"):
        assert parse_lld_case_id(f"{patient}_{tag}") == (patient, short)
        assert lld_case_id(patient, short) == f"{patient}_{tag}"


def test_parse_lld_unknown() -> None:
    assert parse_lld_case_id("MR-1_T1") is None
    assert parse_lld_case_id("DWI") is None  # a tag alone has no patient
    assert parse_lld_case_id("MR-1-DWI") is None  # the separator is '_'


def test_discover_ct_natural_order_and_labels(tree) -> None:
    cases = discover(tree)
    assert list(cases) == ["ct_manual", "lld_mmr", "amos_mr", "mr_val"]
    ct = cases["ct_manual"]
    assert [c.case_id for c in ct] == ["FLARE22_1", "FLARE22_2", "FLARE22_10"]
    root = Path(tree.data.root)
    c = ct[0]
    assert c.image == root / "train_CT_gt_label/imagesTr/FLARE22_1_0000.nii.gz"
    assert c.label == root / "train_CT_gt_label/labelsTr/FLARE22_1.nii.gz"
    assert (c.subset, c.role, c.modality, c.sequence, c.patient) == (
        "ct_manual",
        "ct_labeled",
        "CT",
        None,
        None,
    )
    assert c.label_map.name == "toy_ct" and c.not_annotated == frozenset({12})


def test_discover_missing_label_is_recorded(tmp_path: Path) -> None:
    params = params_from_dict(make_tree(tmp_path, missing_label="FLARE22_2"))
    ct = discover(params)["ct_manual"]
    case = next(c for c in ct if c.case_id == "FLARE22_2")
    assert case.label == tmp_path / "train_CT_gt_label/labelsTr/FLARE22_2.nii.gz"
    assert not case.label.exists()
    with pytest.raises(FlareInputError, match=r"FLARE22_2\.nii\.gz: label of case 'FLARE22_2'.*not found"):
        load_case(case)


def test_discover_lld(tree) -> None:
    lld = discover(tree)["lld_mmr"]
    assert len(lld) == 8 + 6
    assert {c.patient for c in lld} == {PATIENT_A, PATIENT_B}
    assert all(c.label is None and c.label_map is None and c.modality == "MR" for c in lld)
    patients = lld_patients(lld)
    assert list(patients) == [PATIENT_B, PATIENT_A]  # natural order: MR-9 < MR-100
    assert list(patients[PATIENT_A]) == list(SEQUENCES)  # SEQUENCES order
    assert list(patients[PATIENT_B]) == ["T1W", "EAP", "PVP", "DP", "T2W", "IP"]
    dp = patients[PATIENT_A]["DP"]
    assert dp.case_id == f"{PATIENT_A}_C--Delay" and dp.sequence == "DP"
    assert dp.image.name == f"{PATIENT_A}_C--Delay_0000.nii.gz"


def test_lld_unknown_tag_has_no_sequence(tree) -> None:
    root = Path(tree.data.root)
    write_nifti(root / "train_MRI_unlabeled/LLD-MMRI/MR-5_C+A_0000.nii.gz", np.zeros(SHAPE_ZYX, np.int16))
    lld = discover(tree)["lld_mmr"]
    odd = next(c for c in lld if c.case_id == "MR-5_C+A")
    assert odd.sequence is None and odd.patient is None
    assert "MR-5" not in lld_patients(lld)


def test_mr_subsets_take_sequence_from_layout(tree) -> None:
    cases = discover(tree)
    assert [c.case_id for c in cases["amos_mr"]] == ["amos_0031", "amos_0507"]
    assert all(c.sequence is None and c.label is None for c in cases["amos_mr"])
    (val,) = cases["mr_val"]
    assert val.sequence == "T2W" and val.patient is None
    assert val.label_map.name == "mr_val" and dict(val.label_map.to_flare) == {i: i for i in range(14)}


def test_load_case_maps_to_flare(tree) -> None:
    cases = discover(tree)
    image, label = load_case(cases["ct_manual"][0])
    assert image.shape == label.shape == SHAPE_ZYX
    assert image.spacing_zyx == (3.0, 1.5, 1.5)
    assert label.array.dtype == np.uint8
    assert label.array[0, 0, 0] == 3 and label.array[2, 3, 4] == 1
    assert set(np.unique(label.array)) == {0, 1, 3}
    image, label = load_case(cases["amos_mr"][0])
    assert label is None and image.shape == SHAPE_ZYX
    _, label = load_case(cases["mr_val"][0])  # identity map: FLARE ids kept
    assert set(np.unique(label.array)) == {0, 6, 12}


def test_case_is_hashable(tree) -> None:
    case = discover(tree)["ct_manual"][0]
    assert isinstance(case, Case) and hash(case) == hash(discover(tree)["ct_manual"][0])


def test_empty_subset_is_empty_list(tmp_path: Path) -> None:
    raw = make_tree(tmp_path)
    raw["data"]["subsets"] = {
        **SUBSETS,
        "none": {"role": "mr_amos", "modality": "MR", "images": "nope/{case}.nii.gz"},
    }
    assert discover(params_from_dict(raw))["none"] == []


def test_missing_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "absent"
    params = params_from_dict({"data": {"track": "phantom", "root": str(root), "subsets": SUBSETS}})
    with pytest.raises(FlareInputError, match=r"absent: data root .* Fix: run `flarelib generate`"):
        discover(params)
    monkeypatch.delenv("FLARE_DATA", raising=False)
    params = params_from_dict({"data": {"track": "real", "root": str(root), "subsets": SUBSETS}})
    with pytest.raises(FlareInputError, match=r"absent: data root .*FLARE_DATA"):
        discover(params)


def test_template_without_case(tmp_path: Path) -> None:
    raw = make_tree(tmp_path)
    raw["data"]["subsets"] = {"bad": {"role": "mr_amos", "modality": "MR", "images": "AMOS/x_0000.nii.gz"}}
    with pytest.raises(FlareInputError, match=r"data\.subsets\.bad\.images.*\{case\}"):
        discover(params_from_dict(raw))


def test_missing_manifest_for_labeled_subset(tmp_path: Path) -> None:
    raw = make_tree(tmp_path)
    (tmp_path / "dataset.json").unlink()
    with pytest.raises(FlareInputError, match=r"dataset\.json: manifest not found"):
        discover(params_from_dict(raw))
