"""flarelib.data.manifest: reading, validating and writing dataset.json manifests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flarelib.data.manifest import SCHEMA_VERSION, load_manifest, write_manifest
from flarelib.errors import FlareInputError

CT_ENTRY = {
    "folder": "ct",
    "modality": "CT",
    "label_to_flare": {"0": 0, "1": 3, "2": 1, "3": 0},
    "flare_not_annotated": [12],
    "splits": {"train": [0, 1], "dev": [2]},
    "cases": [
        {"id": 0, "image": "ct/image_0.nii.gz", "label": "ct/label_0.nii.gz"},
        {"id": 1, "image": "ct/image_1.nii.gz", "label": "ct/label_1.nii.gz"},
        {"id": 2, "image": "ct/image_2.nii.gz", "label": "ct/label_2.nii.gz", "split": "special"},
    ],
}
MR_ENTRY = {
    "folder": "mr",
    "modality": "MR",
    "label_to_flare": {"0": 0, "1": 1, "2": 2, "3": 13, "4": 3},
    "flare_not_annotated": [4, 5, 6, 7, 8, 9, 10, 11, 12],
    "cases": [
        {"id": 7, "split": "unlabeled", "image": "mr/u/image_7.nii.gz"},
        {"id": 5, "split": "dev", "image": "mr/d/image_5.nii.gz", "label": "mr/d/label_5.nii.gz"},
    ],
}
TS_ENTRY = {  # TotalSegmentator-like: a "files" mapping, two label sets
    "label_to_flare": {"total": {"5": 1, "2": 2}, "total_mr": {"5": 1, "3": 13}},
    "flare_not_annotated": [],
    "files": {
        "ct": {"file": "ts/ct.nii.gz"},
        "mr": {"file": "ts/mr.nii.gz"},
        "extra": {"file": "ts/extra.nii.gz"},
        "seg": {"file": "ts/seg.nii.gz", "task": "total", "image": "ts/ct.nii.gz"},
        "seg_mr": {"file": "ts/seg_mr.nii.gz", "task": "total_mr", "image": "ts/mr.nii.gz"},
    },
}


@pytest.fixture
def manifest_file(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "dataset.json", {"toy_ct": CT_ENTRY, "toy_mr": MR_ENTRY, "ts": TS_ENTRY})


def test_write_then_load_round_trip(manifest_file: Path) -> None:
    raw = json.loads(manifest_file.read_text())
    assert raw["schema_version"] == SCHEMA_VERSION == 1
    assert raw["flare24_labels"]["1"] == "liver" and raw["flare24_labels"]["13"] == "left kidney"
    assert "label_to_flare" in raw["conventions"]
    assert list(raw["datasets"]) == ["toy_ct", "toy_mr", "ts"]
    m = load_manifest(manifest_file)
    assert m.root == manifest_file.parent.resolve()
    assert list(m.datasets) == ["toy_ct", "toy_mr", "ts"]
    # no temporary files left beside it
    assert sorted(p.name for p in manifest_file.parent.iterdir()) == ["dataset.json"]


def test_label_map(manifest_file: Path) -> None:
    m = load_manifest(manifest_file)
    lm = m.label_map("toy_ct")
    assert dict(lm.to_flare) == {0: 0, 1: 3, 2: 1, 3: 0}
    assert lm.not_annotated == frozenset({12})
    np.testing.assert_array_equal(lm.apply(np.array([0, 1, 2, 3])), [0, 3, 1, 0])
    assert m.label_map("toy_mr").annotated == frozenset({1, 2, 3, 13})
    assert m.label_map("toy_ct", variant="ignored") == lm  # single-map datasets ignore the variant


def test_label_map_variants(manifest_file: Path) -> None:
    m = load_manifest(manifest_file)
    assert m.variants("ts") == ["total", "total_mr"]
    total = m.label_map("ts", "total")
    assert total.to_flare[5] == 1 and total.to_flare[2] == 2 and total.to_flare[3] == 0  # unlisted -> 0
    assert m.label_map("ts", "total_mr").to_flare[3] == 13
    with pytest.raises(FlareInputError, match="several label sets"):
        m.label_map("ts")
    with pytest.raises(FlareInputError, match="no label set 'bogus'"):
        m.label_map("ts", "bogus")
    with pytest.raises(FlareInputError, match=r"no dataset 'nope'.*toy_ct"):
        m.label_map("nope")


def test_cases_lists(manifest_file: Path) -> None:
    m = load_manifest(manifest_file)
    ct = m.cases("toy_ct")
    assert [c.id for c in ct] == ["0", "1", "2"]
    assert [c.split for c in ct] == ["train", "train", "special"]  # case "split" beats "splits"
    assert ct[0].image == m.root / "ct/image_0.nii.gz" and ct[0].label == m.root / "ct/label_0.nii.gz"
    assert ct[0].label_map.to_flare[2] == 1
    mr = m.cases("toy_mr")
    assert [(c.id, c.split, c.label is None, c.label_map is None) for c in mr] == [
        ("7", "unlabeled", True, True),
        ("5", "dev", False, False),
    ]


def test_cases_files_mapping(manifest_file: Path) -> None:
    m = load_manifest(manifest_file)
    ts = {c.id: c for c in m.cases("ts")}
    assert set(ts) == {"ct", "mr", "extra"}
    assert ts["ct"].label == m.root / "ts/seg.nii.gz" and ts["ct"].variant == "total"
    assert ts["ct"].label_map.name == "ts:total"
    assert ts["mr"].image == m.root / "ts/mr.nii.gz" and ts["mr"].variant == "total_mr"
    assert ts["extra"].label is None and ts["extra"].label_map is None
    assert len(m.all_cases()) == 3 + 2 + 3


def test_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nothing.json"
    with pytest.raises(FlareInputError, match=r"nothing\.json: manifest not found"):
        load_manifest(path)


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n "datasets": {,\n}')
    with pytest.raises(FlareInputError, match=r"bad\.json: not valid JSON at line 2"):
        load_manifest(path)


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ([], "must be a JSON object"),
        ({"schema_version": 1}, "missing key 'datasets'"),
        ({"schema_version": 2, "datasets": {}}, "schema_version 2"),
        ({"datasets": {"a": {"cases": []}}}, "missing key 'label_to_flare'"),
        ({"datasets": {"a": {"label_to_flare": {"0": 0}}}}, "neither 'cases' nor 'files'"),
        ({"datasets": {"a": {"label_to_flare": {"1": 20}, "cases": []}}}, "not FLARE ids"),
    ],
)
def test_invalid_manifests(tmp_path: Path, doc, problem: str) -> None:
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FlareInputError, match=problem) as info:
        load_manifest(path)
    assert str(path) in str(info.value)


def test_write_manifest_validates_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "dataset.json"
    with pytest.raises(FlareInputError, match="not FLARE ids"):
        write_manifest(path, {"x": {"label_to_flare": {"0": 0, "1": 99}, "cases": []}})
    assert not path.exists()


def test_write_manifest_plain_types(tmp_path: Path) -> None:
    """Paths become POSIX strings, numpy scalars/arrays plain numbers/lists (the phantom passes them)."""
    entry = {
        "folder": Path("ph"),
        "modality": "CT",
        "label_to_flare": {str(i): i for i in range(14)},
        "flare_not_annotated": [],
        "cases": [
            {
                "id": np.int64(3),
                "image": Path("ph/imagesTr/c_0000.nii.gz"),
                "label": Path("ph/labelsTr/c.nii.gz"),
                "spacing_mm": np.array([1.5, 1.5, 3.0]),
            }
        ],
    }
    path = write_manifest(tmp_path / "sub" / "dataset.json", {"phantom_ct_manual": entry})
    raw = json.loads(path.read_text())
    case = raw["datasets"]["phantom_ct_manual"]["cases"][0]
    assert case == {
        "id": 3,
        "image": "ph/imagesTr/c_0000.nii.gz",
        "label": "ph/labelsTr/c.nii.gz",
        "spacing_mm": [1.5, 1.5, 3.0],
    }
    m = load_manifest(path)
    assert m.label_map("phantom_ct_manual").to_flare == {i: i for i in range(14)}
    (c,) = m.cases("phantom_ct_manual")
    assert c.id == "3" and c.label == m.root / "ph/labelsTr/c.nii.gz"


def test_label_only_manifest_loads_when_files_are_not_required(tmp_path: Path) -> None:
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"datasets": {"a": {"label_to_flare": {"0": 0, "6": 1}}}}))
    with pytest.raises(FlareInputError, match="neither 'cases' nor 'files'"):
        load_manifest(path)
    manifest = load_manifest(path, files_required=False)
    assert dict(manifest.label_map("a").to_flare) == {0: 0, 6: 1}
    # label maps are still checked
    path.write_text(json.dumps({"datasets": {"a": {"label_to_flare": {"1": 20}}}}))
    with pytest.raises(FlareInputError, match="not FLARE ids"):
        load_manifest(path, files_required=False)
