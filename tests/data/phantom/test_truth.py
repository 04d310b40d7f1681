"""The phantom's truth through the library: truth.json records and the true label files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flarelib.config import compose_params
from flarelib.data.layout import discover
from flarelib.data.phantom import load_truth, read_truth_label, truth_case, truth_label_path
from flarelib.data.phantom.generate import generate
from flarelib.errors import FlareInputError
from flarelib.io import read_image, read_label, same_grid
from flarelib.paths import project_root

TINY = {
    "n_ct_manual": 1,
    "n_ct_pseudo": 1,
    "n_lld_patients": 1,
    "n_amos": 1,
    "n_mr_val": 2,
    "ct_spacing_zyx": [10.0, 8.0, 8.0],
    "mr_spacing_zyx": [10.0, 8.0, 8.0],
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(params pointing at it, folder) of a tiny phantom in the layout of params/data/phantom.yaml."""
    out = tmp_path_factory.mktemp("truth") / "phantom"
    params = compose_params(
        project_root() / "params" / "runs" / "default.yaml", "smoke", "phantom", overrides={"phantom": TINY}
    )
    params = dataclasses.replace(params, data=dataclasses.replace(params.data, root=str(out)))
    generate(params, out, progress=False)
    return params, out


def test_every_discovered_case_has_its_truth(tiny):
    params, out = tiny
    truth = load_truth(out)
    cases = [c for subset in discover(params).values() for c in subset]
    assert len(cases) == len(truth["cases"]) == 1 + 1 + 8 + 1 + 2
    for case in cases:
        rec = truth_case(truth, case.subset, case.case_id)
        assert rec == truth["cases"][f"{case.subset}/{case.case_id}"]
        if case.sequence is not None:  # LLD-MMR: from the file tag
            assert rec["sequence"] == case.sequence
        path = truth_label_path(out, case.subset, case.case_id)
        assert path == out / "diagnostics" / "labels" / case.subset / f"{case.case_id}.nii.gz"
        assert path == out / rec["true_label"]
        label = read_truth_label(params.data.root, case.subset, case.case_id)
        assert label.array.dtype == np.uint8 and label.array.shape == tuple(rec["shape_zyx"])
        assert same_grid(label, read_image(case.image))


def test_true_labels_are_the_written_labels_of_the_manual_sets(tiny):
    _, out = tiny
    truth = load_truth(out)
    for subset in ("ct_manual", "mr_val"):
        for rec in (r for r in truth["cases"].values() if r["subset"] == subset):
            written = read_label(out / rec["label"]).array
            assert np.array_equal(read_truth_label(out, subset, rec["case"]).array, written)
            assert written.max() > 0


def test_a_missing_volume_says_which(tiny):
    _, out = tiny
    truth = load_truth(out)
    with pytest.raises(FlareInputError, match="no volume 'MRval_0099' in subset 'mr_val'"):
        truth_case(truth, "mr_val", "MRval_0099")
    with pytest.raises(FlareInputError, match="true label of case 'MRval_0099' \\(subset 'mr_val'\\)") as err:
        truth_label_path(out, "mr_val", "MRval_0099")
    assert "no such volume" in str(err.value) and err.value.fix
    with pytest.raises(FlareInputError, match="true label of case 'MRval_0001'"):
        read_truth_label(out, "amos_mr", "MRval_0001")


def test_a_folder_without_diagnostics_says_so(tmp_path):
    with pytest.raises(FlareInputError, match="no phantom diagnostics there") as err:
        truth_label_path(tmp_path, "ct_manual", "FLARE22_Tr_0001")
    assert "flarelib generate" in err.value.fix
    with pytest.raises(FlareInputError, match="phantom diagnostics not found"):
        load_truth(tmp_path)
