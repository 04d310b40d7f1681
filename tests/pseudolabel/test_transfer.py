"""flarelib.pseudolabel.transfer: decisions, coarse kidneys, registration wiring, one patient end to end."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from flarelib.config import RegistrationParams, TransferParams
from flarelib.evaluate.dice import dice
from flarelib.io import write_image
from flarelib.pseudolabel import transfer as T

from .conftest import body_phantom, ellipsoid

P = TransferParams()
REG = RegistrationParams(levels=2)


# --------------------------------------------------------------------------------------------------
# decisions (STUDY.md "Stage 2" 2)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seq", ["EAP", "PVP", "DP"])
@pytest.mark.parametrize(
    ("right", "left", "accepted"),
    [
        (0.86, 0.10, True),  # one kidney above 0.85 is enough
        (0.10, 0.90, True),
        (0.85, 0.85, False),  # strictly above
        (0.84, 0.84, False),
        (math.nan, 0.95, True),
        (math.nan, math.nan, False),
        (None, 0.5, False),
    ],
)
def test_dce_phases_need_one_kidney_above_085(seq, right, left, accepted):
    assert T.decide(seq, right, left, P).accepted is accepted


@pytest.mark.parametrize("seq", ["T2W", "DWI", "IP"])
@pytest.mark.parametrize(
    ("right", "left", "accepted"),
    [
        (0.81, 0.86, True),  # both > 0.8, one > 0.85
        (0.86, 0.81, True),
        (0.86, 0.80, False),  # one kidney not above 0.8
        (0.79, 0.99, False),
        (0.84, 0.84, False),  # both > 0.8 but none > 0.85
        (0.95, math.nan, False),
        (0.90, 0.90, True),
    ],
)
def test_other_sequences_need_both_above_08_and_one_above_085(seq, right, left, accepted):
    d = T.decide(seq, right, left, P)
    assert d.accepted is accepted
    assert d.reason


def test_op_follows_ip_and_t1w_is_the_reference():
    ip_ok = T.decide("IP", 0.9, 0.9, P)
    ip_bad = T.decide("IP", 0.9, 0.7, P)
    assert T.decide("OP", 0.0, 0.0, P, ip=ip_ok).accepted  # OP's own numbers do not count
    assert not T.decide("OP", 1.0, 1.0, P, ip=ip_bad).accepted
    assert "with IP" in T.decide("OP", None, None, P, ip=ip_ok).reason
    assert not T.decide("OP", None, None, P).accepted  # no IP: not accepted
    assert T.decide("T1W", None, None, P).accepted
    with pytest.raises(ValueError, match="unknown sequence"):
        T.decide("FLAIR", 0.9, 0.9, P)


def test_thresholds_come_from_params():
    strict = dataclasses.replace(P, dce_accept_one=0.95, other_accept_both=0.9, other_accept_one=0.95)
    assert T.decide("PVP", 0.9, 0.9, P).accepted and not T.decide("PVP", 0.9, 0.9, strict).accepted
    assert T.decide("DWI", 0.86, 0.86, P).accepted and not T.decide("DWI", 0.86, 0.86, strict).accepted


# --------------------------------------------------------------------------------------------------
# coarse kidney
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dark", [False, True])
def test_coarse_kidney_recovers_a_kidney(dark):
    rng = np.random.default_rng(0)
    shape = (30, 50, 50)
    kidney = ellipsoid(shape, (15, 25, 25), (7, 8, 5))
    liver = ellipsoid(shape, (15, 12, 25), (8, 6, 12)) & ~kidney
    img = np.full(shape, 300.0, np.float32)
    img[kidney] = 80.0 if dark else 900.0
    img[liver] = 80.0 if dark else 900.0  # as bright (dark) as the kidney: the exclusion must cut it
    img += rng.normal(0, 20, shape).astype(np.float32)
    # the "T1W pseudo-label": the kidney shifted by 2 voxels (an imperfect registration / label)
    label = np.zeros(shape, np.uint8)
    label[np.roll(kidney, 2, axis=2)] = 2
    label[liver & (label == 0)] = 1
    coarse = T.coarse_kidney(img, label, 2, dark=dark)
    assert dice(coarse, kidney) > 0.95
    assert not (coarse & liver).any()
    # the wrong side is asked for the wrong contrast: the dark/bright side of the region is not the kidney
    wrong = T.coarse_kidney(img, label, 2, dark=not dark)
    assert dice(wrong, kidney) < 0.3
    assert not T.coarse_kidney(img, label, 13).any()  # no such kidney in the label: empty


def test_kidney_dscs_both_sides_and_missing_side():
    img, lab = body_phantom()
    coarse, d = T.kidney_dscs(img.array, lab.array, P)
    assert d["right"] > 0.9 and d["left"] > 0.9
    assert set(np.unique(coarse)) <= {0, 2, 13}
    no_left = np.where(lab.array == 13, 0, lab.array)
    _, d = T.kidney_dscs(img.array, no_left, P)
    assert math.isnan(d["left"]) and d["right"] > 0.9
    assert not T.decide("DWI", d["right"], d["left"], P).accepted


# --------------------------------------------------------------------------------------------------
# registration wiring and one patient
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def patient():
    t1w, label = body_phantom(seed=1)
    shifts = {
        "EAP": (6.0, -4.0, 4.0),
        "PVP": (-5.0, 3.0, 0.0),
        "DP": (0.0, 5.0, -4.0),
        "IP": (4.0, 4.0, 0.0),
        "T2W": (-4.0, 0.0, 4.0),
        "DWI": (3.0, -3.0, 0.0),
    }
    vols, truth = {"T1W": t1w}, {"T1W": label}
    for i, (seq, s) in enumerate(shifts.items()):
        vols[seq], truth[seq] = body_phantom(s, contrast="dark" if seq == "IP" else "bright", seed=2 + i)
    vols["OP"], truth["OP"] = vols["IP"].with_array(vols["IP"].array * 0.8), truth["IP"]
    return vols, truth


def test_op_inherits_ip_transform(patient):
    vols, _ = patient
    regs, masks = T.register_sequences({s: vols[s] for s in ("T1W", "IP", "OP")}, P, REG)
    assert regs["OP"].method == "as IP"
    assert regs["OP"].transform.GetParameters() == regs["IP"].transform.GetParameters()
    assert regs["OP"].transform.GetFixedParameters() == regs["IP"].transform.GetFixedParameters()
    assert "OP" not in masks  # OP is never registered on its own
    regs, _ = T.register_sequences({s: vols[s] for s in ("T1W", "OP")}, P, REG)
    assert "OP" not in regs  # no IP: OP cannot be registered


def test_transfer_patient_accepts_aligned_sequences_and_transfers_labels(patient, tmp_path):
    vols, truth = patient
    res = T.transfer_patient(vols, truth["T1W"], P, REG, patient="P1", fix_zflip=False, keep_views=True)
    recs = {r.sequence: r for r in res.records}
    assert [r.sequence for r in res.records] == list(T._ORDER)
    assert recs["T1W"].decision == "reference"
    for seq in ("EAP", "PVP", "DP", "DWI", "IP", "T2W"):
        assert recs[seq].decision == "accept", (seq, recs[seq].reason)
        lab = res.labels[seq]
        assert lab.shape == vols[seq].shape
        assert dice(lab.array == 1, truth[seq].array == 1) > 0.85
    assert recs["OP"].decision == recs["IP"].decision and "with IP" in recs["OP"].reason
    assert recs["IP"].registration == "masks" and recs["T2W"].registration == "intensities"
    assert recs["T2W"].registered_to == "registered EAP"
    assert set(res.views) == set(T._ORDER)
    # the record's transform round-trips through JSON
    tx = recs["EAP"].get_transform()
    assert tx.GetParameters() == pytest.approx(recs["EAP"].transform["parameters"])
    table = T.TransferTable(res.records, {"P1": res.seconds})
    csv, js = table.save(tmp_path)
    back = T.TransferTable.load(js)
    assert [r.decision for r in back.records] == [r.decision for r in res.records]
    assert csv.read_text().count("\n") == len(res.records) + 1


def test_transfer_patient_rejects_a_misregistered_sequence(patient):
    vols, truth = patient
    # a DP whose kidneys are elsewhere: the body registers, the kidneys do not match
    dp = vols["DP"].array.copy()
    kid = np.isin(truth["DP"].array, (2, 13))
    dp[kid] = 300.0
    dp[np.roll(kid, 6, axis=2)] = 900.0
    bad = {"T1W": vols["T1W"], "DP": vols["DP"].with_array(dp)}
    res = T.transfer_patient(bad, truth["T1W"], P, REG, fix_zflip=False, label_rejected=True)
    rec = {r.sequence: r for r in res.records}
    assert rec["DP"].decision == "reject"
    assert "DP" not in res.labels and "DP" in res.rejected_labels
    assert rec["EAP"].decision == "missing"


def test_transfer_patients_parallel_writes_labels_and_table(patient, tmp_path):
    vols, truth = patient
    files = {}
    for pid in ("A", "B"):
        files[pid] = {}
        for seq in ("T1W", "PVP"):
            files[pid][seq] = write_image(vols[seq], tmp_path / "in" / f"{pid}_{seq}.nii.gz")
        write_image(truth["T1W"], tmp_path / "in" / f"{pid}_label.nii.gz")
    labels = {pid: tmp_path / "in" / f"{pid}_label.nii.gz" for pid in files}
    table = T.transfer_patients(files, labels, P, REG, tmp_path / "out", workers=2, progress=False)
    assert [r.patient for r in table.records[:8]] == ["A"] * 8
    pvp = [r for r in table.records if r.sequence == "PVP"]
    assert all(r.decision == "accept" and r.label for r in pvp)
    assert (tmp_path / "out" / "labels" / "A_PVP.nii.gz").is_file()
    assert (tmp_path / "out" / "transfer.csv").is_file() and (tmp_path / "out" / "transfer.json").is_file()
    assert set(table.seconds) == {"A", "B"}
