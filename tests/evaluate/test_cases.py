"""predict_and_score: a stage's validation, scored FLARE-exactly per case and organ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flarelib.data.layout import Case
from flarelib.errors import FlareInputError
from flarelib.evaluate.cases import per_case_table, predict_and_score, score_file
from flarelib.infer.pipeline import CaseResult
from flarelib.io import Volume, read_image, write_image


class _Echo:
    """A predictor stand-in: writes a fixed function of the ground truth as the prediction."""

    def __init__(self, make):
        self.make = make

    def predict_file(self, in_path, out_path):
        gt = read_image(Path(str(in_path).replace("img", "lab")))
        write_image(gt.with_array(self.make(gt.array).astype(np.uint8)), out_path)
        return CaseResult(Path(in_path), Path(out_path), True, seconds={"read": 5.0, "predict": 0.25})


def _cases(tmp_path):
    lab = np.zeros((12, 24, 24), np.uint8)
    lab[2:10, 3:12, 3:12] = 1  # liver
    lab[4:8, 14:20, 14:20] = 3  # spleen
    vol = Volume(lab.astype(np.float32), (3.0, 1.5, 1.5), (0.0, 0.0, 0.0), np.eye(3))
    cases = []
    for i in range(2):
        write_image(vol, tmp_path / f"img_{i}.nii.gz")
        write_image(vol.with_array(lab), tmp_path / f"lab_{i}.nii.gz")
        cases.append(
            Case("val", "mr_val", f"c{i}", tmp_path / f"img_{i}.nii.gz", tmp_path / f"lab_{i}.nii.gz", "MR")
        )
    return cases


def test_perfect_and_missing_organ_scores(tmp_path):
    cases = _cases(tmp_path)
    perfect = predict_and_score(_Echo(lambda a: a), cases, tmp_path / "p1", sequences={"c0": "T1W"})
    # all 13 organs are scored (FLARE: absent from both = 1.0); none is missing from the table
    assert len(perfect) == 2 * 13 and np.allclose(perfect[["dsc", "nsd"]], 1.0)
    assert list(perfect["sequence"].unique()) == ["T1W", "MR"]  # given, else the case's modality
    assert np.allclose(perfect["seconds"], 0.25)  # read and write are not the case's pipeline time
    assert (tmp_path / "p1" / "img_0.nii.gz").is_file()

    no_spleen = predict_and_score(_Echo(lambda a: np.where(a == 3, 0, a)), cases, tmp_path / "p2")
    spleen = no_spleen[no_spleen["organ"] == 3]
    assert np.allclose(spleen["dsc"], 0.0) and np.allclose(no_spleen[no_spleen["organ"] == 1]["dsc"], 1.0)
    table = per_case_table(no_spleen)
    assert list(table["case"]) == ["c0", "c1", "all"]
    assert table["dsc"].tolist() == pytest.approx([12 / 13] * 3)


def test_unlabelled_case_is_refused(tmp_path):
    (case, _) = _cases(tmp_path)
    unlabelled = Case("mr", "mr_unlabeled", "u", case.image, None, "MR")
    with pytest.raises(FlareInputError, match="no label"):
        predict_and_score(_Echo(lambda a: a), [unlabelled], tmp_path / "p")


def test_score_file_against_a_truth_file(tmp_path):
    (case, _) = _cases(tmp_path)
    rows = score_file(case.label, case.label, case="c0", sequence="T2W")
    assert len(rows) == 13 and all(r["dsc"] == 1.0 and r["sequence"] == "T2W" for r in rows)
    empty = tmp_path / "empty.nii.gz"
    truth = read_image(case.label)
    write_image(truth.with_array(np.zeros(truth.shape, np.uint8)), empty)
    rows = {r["organ"]: r["dsc"] for r in score_file(empty, case.label)}
    assert rows[1] == 0.0 and rows[3] == 0.0 and rows[2] == 1.0  # absent in both scores 1
