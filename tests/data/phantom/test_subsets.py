"""Where the phantom generator writes each subset: the params' data.subsets templates."""

from __future__ import annotations

import dataclasses
import json

import pytest

from flarelib.config import compose_params, params_from_dict
from flarelib.data.layout import discover, fill
from flarelib.data.manifest import load_manifest
from flarelib.data.phantom.generate import LAYOUT, generate
from flarelib.data.phantom.marker import MARKER, write_marker
from flarelib.data.phantom.subsets import (
    SUBSETS,
    case_ids,
    default_layouts,
    phantom_layouts,
    top_folders,
)
from flarelib.errors import FlareInputError
from flarelib.paths import project_root

ROOT = project_root()
TINY = {
    "n_ct_manual": 1,
    "n_ct_pseudo": 1,
    "n_lld_patients": 1,
    "n_amos": 1,
    "n_mr_val": 1,
    "ct_spacing_zyx": [10.0, 8.0, 8.0],
    "mr_spacing_zyx": [10.0, 8.0, 8.0],
}
#: A layout unlike params/data/phantom.yaml's: other folders, other file names.
CUSTOM = {
    "ct_manual": {"images": "ct/gt/img/{case}.nii.gz", "labels": "ct/gt/seg/{case}_seg.nii.gz"},
    "ct_pseudo": {"images": "ct/ps/img/{case}.nii.gz", "labels": "ct/ps/seg/{case}_seg.nii.gz"},
    "lld_mmr": {"images": "mr_lld/{case}.nii.gz"},
    "amos_mr": {"images": "mr_amos/{case}_t.nii.gz"},
    "mr_val": {"images": "val/img/{case}.nii.gz", "labels": "val/seg/{case}.nii.gz"},
}


def _params(subsets=None, **phantom):
    overrides = {"phantom": {**TINY, **phantom}}
    if subsets is not None:
        overrides["data"] = {"subsets": subsets}
    return compose_params(ROOT / "params" / "runs" / "default.yaml", "smoke", "phantom", overrides=overrides)


def test_layouts_are_the_params_subsets():
    params = _params()
    assert phantom_layouts(params) == {name: params.data.subsets[name] for name in SUBSETS}
    assert list(phantom_layouts(params)) == list(SUBSETS)


def test_layouts_default_to_the_phantom_data_track_file():
    """Params composed without params/data/phantom.yaml (no phantom subset) get that file's layout."""
    expected = compose_params(ROOT / "params" / "runs" / "default.yaml", "smoke", "phantom").data.subsets
    assert phantom_layouts(params_from_dict({})) == expected == default_layouts()
    assert LAYOUT == {k: {"images": v.images, "labels": v.labels} for k, v in expected.items()}
    assert top_folders(default_layouts()) == [
        "train_CT_gt_label",
        "train_CT_pseudolabel",
        "train_MRI_unlabeled",
        "val_MRI",
    ]


def test_some_but_not_all_phantom_subsets_are_refused():
    layout = {"role": "ct_labeled", "images": "a/{case}.nii.gz", "labels": "b/{case}.nii.gz"}
    with pytest.raises(FlareInputError) as err:
        phantom_layouts(params_from_dict({"data": {"subsets": {"ct_manual": layout}}}))
    assert err.value.where == "data.subsets"
    assert "not ['ct_pseudo', 'lld_mmr', 'amos_mr', 'mr_val']" in str(err.value)


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"lld_mmr": {"labels": "lld/{case}_seg.nii.gz"}}, "data.subsets.lld_mmr.labels", "writes no labels"),
        ({"mr_val": {"images": "val/img.nii.gz"}}, "data.subsets.mr_val.images", "{case}"),
        ({"amos_mr": {"modality": "CT"}}, "data.subsets.amos_mr.modality", "writes MR"),
    ],
)
def test_layouts_that_the_generator_cannot_follow_are_refused(change, where, says):
    with pytest.raises(FlareInputError) as err:
        phantom_layouts(_params(change))
    assert err.value.where == where and says in str(err.value)


def test_labelled_subset_without_labels_template_is_refused():
    params = _params()
    layouts = dict(params.data.subsets)
    layouts["ct_pseudo"] = dataclasses.replace(layouts["ct_pseudo"], labels=None)
    bare = dataclasses.replace(params, data=dataclasses.replace(params.data, subsets=layouts))
    with pytest.raises(FlareInputError, match="add a labels template"):
        phantom_layouts(bare)


def test_generator_writes_where_the_params_templates_say(tmp_path):
    out = tmp_path / "custom"
    params = _params(CUSTOM)
    params = dataclasses.replace(params, data=dataclasses.replace(params.data, root=str(out)))
    out.mkdir()
    write_marker(params, out)  # a stale marker: generate removes it before writing anything
    generate(params, out, progress=False)
    assert not (out / MARKER).exists()
    truth = json.loads((out / "diagnostics" / "truth.json").read_text())
    for rec in truth["cases"].values():
        layout = params.data.subsets[rec["subset"]]
        assert rec["image"] == fill(layout.images, rec["case"]) and (out / rec["image"]).is_file()
        if layout.labels is None:
            assert rec["label"] is None
        else:
            assert rec["label"] == fill(layout.labels, rec["case"]) and (out / rec["label"]).is_file()
    assert sorted(p.name for p in out.iterdir()) == [
        "ct",
        "dataset.json",
        "diagnostics",
        "mr_amos",
        "mr_lld",
        "val",
    ]
    found = discover(params)
    assert {k: [c.case_id for c in v] for k, v in found.items()} == {
        "ct_manual": case_ids("ct_manual", 1),
        "ct_pseudo": case_ids("ct_pseudo", 1),
        "lld_mmr": sorted(r["case"] for r in truth["cases"].values() if r["subset"] == "lld_mmr"),
        "amos_mr": case_ids("amos_mr", 1),
        "mr_val": case_ids("mr_val", 1),
    }
    manifest = load_manifest(out / "dataset.json")
    assert {n: manifest.datasets[n]["folder"] for n in manifest.datasets} == {
        "phantom_ct_manual": "ct",
        "phantom_ct_pseudo": "ct",
        "phantom_mr_val": "val",
    }
    # regenerating replaces the earlier phantom in its own folders
    stale = out / "val" / "img" / "old_case.nii.gz"
    stale.write_bytes(b"x")
    generate(params, out, progress=False)
    assert not stale.exists()
