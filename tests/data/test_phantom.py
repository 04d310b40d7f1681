"""The procedural phantom (flarelib.data.phantom): layout, geometry, anatomy, contrasts, truth.

One smoke-profile set is generated once per module (``phantom`` fixture) and every test reads the
files it wrote; the determinism test generates the same params a second time (with two worker
processes) and compares SHA-256 of every file. Connectivity is checked with 26-connectivity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from flarelib.config import compose_params
from flarelib.data.phantom import anatomy as A
from flarelib.data.phantom import generate
from flarelib.data.phantom.generate import LAYOUT, add_cli, load_truth, pseudo_label_errors
from flarelib.io import orientation_code, read_image, read_label, same_grid
from flarelib.labels import ORGANS, SEQUENCES
from flarelib.paths import project_root

ROOT = project_root()
LIVER, RK, SPLEEN, AORTA, IVC, RAG, LAG, GB, LK = 1, 2, 3, 5, 6, 7, 8, 9, 13
T = A.Tissue


def _params(**phantom):
    overrides = {"phantom": phantom} if phantom else None
    return compose_params(ROOT / "params" / "runs" / "default.yaml", "smoke", "phantom", overrides=overrides)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """(params, output folder, report, truth) of one smoke-profile phantom."""
    params = _params()
    out = tmp_path_factory.mktemp("phantom") / "smoke"
    state = np.random.get_state()[1].copy()  # noqa: NPY002 - checking that nobody uses it
    report = generate(params, out, progress=False)
    after = np.random.get_state()[1]  # noqa: NPY002
    assert np.array_equal(after, state), "generate() must not touch numpy's global RNG"
    return params, out, report, load_truth(out)


def _cases(truth, subset=None, modality=None):
    return [
        r
        for r in truth["cases"].values()
        if (subset is None or r["subset"] == subset) and (modality is None or r["modality"] == modality)
    ]


def _true_label(out: Path, rec, unflip: bool = False):
    vol = read_label(out / rec["true_label"])
    arr = vol.array[::-1] if unflip and rec["zflip"] else vol.array
    return vol.with_array(np.ascontiguousarray(arr))


def _centroid_world(vol, organ: int) -> np.ndarray:
    idx = np.argwhere(vol.array == organ)
    assert len(idx), f"organ {organ} missing in {vol.path}"
    return vol.world_coords(idx.mean(axis=0))


def _sha(root: Path) -> dict[str, str]:
    return {
        f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


# --------------------------------------------------------------------------------------------------
# Layout, manifest, geometry, determinism
# --------------------------------------------------------------------------------------------------


def test_layout_counts_and_manifest(phantom):
    params, out, report, truth = phantom
    ph = params.phantom
    assert report.counts == {
        "ct_manual": ph.n_ct_manual,
        "ct_pseudo": ph.n_ct_pseudo,
        "lld_mmr": 8 * ph.n_lld_patients,
        "amos_mr": ph.n_amos,
        "mr_val": ph.n_mr_val,
    }
    for rec in truth["cases"].values():
        assert (out / rec["image"]).is_file(), rec["image"]
        assert (out / rec["true_label"]).is_file() and (out / rec["tissue"]).is_file()
        if LAYOUT[rec["subset"]]["labels"] is not None:
            assert (out / rec["label"]).is_file()
    lld = sorted(p.name for p in (out / "train_MRI_unlabeled" / "LLD-MMRI").iterdir())
    assert lld == sorted(
        f"{pid}_{tag}_0000.nii.gz" for pid in truth["lld_mmr"]["patients"] for tag in SEQUENCES.values()
    )

    from flarelib.data.layout import discover
    from flarelib.data.manifest import load_manifest

    manifest = load_manifest(out / "dataset.json")
    assert set(manifest.datasets) == {"phantom_ct_manual", "phantom_ct_pseudo", "phantom_mr_val"}
    for name in manifest.datasets:
        lmap = manifest.label_map(name)
        assert dict(lmap.to_flare) == {i: i for i in range(14)} and not lmap.not_annotated
    val = manifest.datasets["phantom_mr_val"]["cases"]
    assert [c["sequence"] for c in val] == [r["sequence"] for r in _cases(truth, "mr_val")]
    assert len(manifest.cases("phantom_ct_pseudo")) == ph.n_ct_pseudo
    assert all(c["shape"] == r["shape_zyx"][::-1] for c, r in zip(val, _cases(truth, "mr_val"), strict=True))

    # the data layer finds every subset through params/data/phantom.yaml templates
    import dataclasses

    moved = dataclasses.replace(params, data=dataclasses.replace(params.data, root=str(out)))
    found = discover(moved)
    assert {k: len(v) for k, v in found.items()} == {
        "ct_manual": ph.n_ct_manual,
        "ct_pseudo": ph.n_ct_pseudo,
        "lld_mmr": 8 * ph.n_lld_patients,
        "amos_mr": ph.n_amos,
        "mr_val": ph.n_mr_val,
    }


def test_geometry_is_lps_and_labels_share_the_grid(phantom):
    params, out, _, truth = phantom
    for rec in truth["cases"].values():
        img = read_image(out / rec["image"])
        assert orientation_code(img) == "LPS" and np.array_equal(img.direction, np.eye(3))
        assert img.shape == tuple(rec["shape_zyx"])
        assert np.allclose(img.spacing_zyx, rec["spacing_zyx"]) and np.allclose(
            img.origin_xyz, rec["origin_xyz"]
        )
        assert same_grid(img, read_label(out / rec["true_label"]))
        if rec["label"] is not None:
            assert same_grid(img, read_label(out / rec["label"]))
        if rec["modality"] == "CT":
            assert img.spacing_zyx == tuple(params.phantom.ct_spacing_zyx)
            assert img.array.dtype == np.float32 and img.array.min() >= -1024
    # sequences of one patient: their own spacing; T2W/DWI thicker slices, DWI coarse in-plane
    p0 = truth["lld_mmr"]["patients"][0]
    sp = {s: truth["cases"][f"lld_mmr/{p0}_{t}"]["spacing_zyx"] for s, t in SEQUENCES.items()}
    assert sp["T2W"][0] > sp["T1W"][0] and sp["DWI"][0] > sp["T1W"][0] and sp["DWI"][1] > sp["T1W"][1]
    assert sp["EAP"] == sp["PVP"] == sp["DP"] == sp["T1W"] and sp["IP"] == sp["OP"]


def test_same_seed_same_bytes(phantom, tmp_path):
    params, out, _, _ = phantom
    again = tmp_path / "again"
    generate(params, again, progress=False, workers=2)
    first, second = _sha(out), _sha(again)
    assert first.keys() == second.keys()
    differ = [k for k in first if first[k] != second[k]]
    assert not differ, f"files differ between two generations: {differ[:5]}"


# --------------------------------------------------------------------------------------------------
# Anatomy
# --------------------------------------------------------------------------------------------------

ADULT_ML = {
    "liver": (1000, 2500),
    "spleen": (80, 500),
    "right kidney": (100, 300),
    "left kidney": (100, 300),
    "right adrenal gland": (2, 12),
    "left adrenal gland": (2, 12),
    "gallbladder": (10, 80),
}


def test_organ_volumes_in_adult_ranges(phantom):
    _, out, report, truth = phantom
    for rec in _cases(truth, modality="CT"):
        lab = _true_label(out, rec)
        counts = np.bincount(lab.array.ravel(), minlength=14)
        vox_ml = float(np.prod(lab.spacing_zyx)) / 1000
        for organ, (lo, hi) in ADULT_ML.items():
            oid = next(k for k, v in ORGANS.items() if v == organ)
            ml = counts[oid] * vox_ml
            assert lo <= ml <= hi, f"{rec['case']}: {organ} {ml:.1f} mL outside {lo}-{hi}"
            assert ml == pytest.approx(rec["organ_volumes_ml"][organ], abs=0.02)
        if rec["subset"] == "ct_manual":  # the written label is the true label
            assert np.array_equal(read_label(out / rec["label"]).array, lab.array)
    assert set(report.organ_volume_ranges_ml) == set(ORGANS.values())


def test_each_organ_is_one_component(phantom):
    """Every organ is present and one 26-connected component in the true label of every volume
    (CT, all 8 MR sequences, AMOS, validation); esophagus + stomach + duodenum form one component."""
    _, out, _, truth = phantom
    for rec in truth["cases"].values():
        lab = _true_label(out, rec).array
        comp = cc3d.connected_components(lab, connectivity=26)
        for organ in ORGANS:
            n = len(np.unique(comp[lab == organ]))
            assert n == 1, f"{rec['case']}: {ORGANS[organ]} has {n} components (26-connectivity)"
        upper_gi = np.isin(lab, (10, 11, 12)).astype(np.uint8)
        assert cc3d.connected_components(upper_gi, connectivity=26).max() == 1, rec["case"]


def test_left_right_and_positions_in_world_space(phantom):
    _, out, _, truth = phantom
    recs = _cases(truth, modality="CT") + _cases(truth, "mr_val")
    recs += [r for r in _cases(truth, "lld_mmr") if not r["motion"]["misaligned"]]  # (a 10 deg tilt may not)
    for rec in recs:
        lab = _true_label(out, rec, unflip=True)
        c = {o: _centroid_world(lab, o) for o in (LIVER, SPLEEN, RK, LK, AORTA, IVC)}
        name = rec["case"]
        assert c[LIVER][0] < c[SPLEEN][0], f"{name}: liver must be right (smaller x in LPS) of the spleen"
        assert c[RK][0] < c[LK][0], f"{name}: right kidney must have smaller x than the left"
        assert c[RK][2] < c[LK][2], f"{name}: right kidney must be lower than the left"
        assert min(c[RK][1], c[LK][1]) > c[LIVER][1], f"{name}: kidneys must be posterior to the liver"
        assert c[AORTA][0] > c[IVC][0], f"{name}: aorta must be left of the IVC"
        assert c[LIVER][2] > max(c[RK][2], c[LK][2]), f"{name}: liver above the kidneys"


def test_zflipped_patients_are_exactly_those_recorded(phantom):
    params, out, _, truth = phantom
    recorded = set(truth["lld_mmr"]["zflip_patients"])
    assert len(recorded) >= 1 and params.phantom.n_lld_patients >= 3
    seen = set()
    for rec in _cases(truth, "lld_mmr"):
        stored = _true_label(out, rec)
        undone = _true_label(out, rec, unflip=True)
        kidney_z = max(_centroid_world(undone, o)[2] for o in (RK, LK))
        assert _centroid_world(undone, LIVER)[2] > kidney_z, (
            f"{rec['case']}: flipped back, liver above kidneys"
        )
        as_stored_flipped = _centroid_world(stored, LIVER)[2] < min(
            _centroid_world(stored, o)[2] for o in (RK, LK)
        )
        assert as_stored_flipped == rec["zflip"], rec["case"]
        if rec["zflip"]:
            seen.add(rec["patient"])
            img = read_image(out / rec["image"])
            assert img.origin_xyz == tuple(rec["origin_xyz"]) and np.array_equal(img.direction, np.eye(3))
    assert seen == recorded
    by_patient = {}
    for rec in _cases(truth, "lld_mmr"):
        by_patient.setdefault(rec["patient"], set()).add(rec["zflip"])
    assert all(len(v) == 1 for v in by_patient.values()), "all sequences of a patient flip together"


def test_mr_field_of_view_has_lung_bases_and_kidneys(phantom):
    _, out, _, truth = phantom
    for rec in _cases(truth, "lld_mmr"):
        if rec["sequence"] not in ("T1W", "IP") or rec["motion"]["misaligned"]:
            continue
        tissue = read_label(out / rec["tissue"]).array
        label = read_label(out / rec["true_label"]).array
        if rec["zflip"]:
            tissue, label = tissue[::-1], label[::-1]
        top = (tissue[-2:] == T.LUNG).sum()
        bottom = (tissue[:2] == T.LUNG).sum()
        assert top > 20 and bottom == 0, f"{rec['case']}: lung bases belong in the top slices"
        kz = np.nonzero(np.isin(label, (RK, LK)))[0]
        assert kz.min() > 0, f"{rec['case']}: the kidneys' lower poles must be inside the field of view"


def test_long_ct_cases(phantom):
    _, _, report, truth = phantom
    ct = _cases(truth, modality="CT")
    longs = [r for r in ct if r["long_ct"]]
    shorts = [r for r in ct if not r["long_ct"]]
    assert any(r["subset"] == "ct_pseudo" for r in longs), "stage 2 needs long pseudo-labelled CT"
    assert min(r["n_slices"] for r in longs) > 1.5 * max(r["n_slices"] for r in shorts)
    assert sorted(report.long_ct_cases) == sorted(r["case"] for r in longs)
    assert report.ct_slices == {r["case"]: r["n_slices"] for r in ct}


def test_pseudo_labels_carry_errors_and_truth_keeps_the_true_label(phantom):
    _, out, _, truth = phantom
    kinds = set()
    for rec in _cases(truth, "ct_pseudo"):
        written = read_label(out / rec["label"]).array
        true = read_label(out / rec["true_label"]).array
        assert (written != true).sum() > 50, rec["case"]
        kinds |= {e["kind"] for e in rec["pseudo_label_errors"]}
        for e in rec["pseudo_label_errors"]:
            if e["kind"] == "missed":
                assert not np.any(written == e["organ"]) and np.any(true == e["organ"])
    assert {"missed", "island"} <= kinds and kinds & {"erosion", "dilation"}


def test_pseudo_label_errors_small_volume():
    lab = np.zeros((12, 20, 20), np.uint8)
    lab[2:10, 3:12, 3:12] = 1
    lab[4:7, 14:17, 14:17] = 7
    tissue = np.full(lab.shape, T.VISCERAL_FAT, np.uint8)
    out, errors = pseudo_label_errors(lab, tissue, np.random.default_rng(0), force_missed=True)
    assert not np.any(out == 7) and any(e["kind"] == "missed" and e["organ"] == 7 for e in errors)
    assert np.array_equal(lab[lab == 7], np.full(27, 7))  # input untouched


# --------------------------------------------------------------------------------------------------
# Rendering: contrasts, CT values, domain gap, misalignment
# --------------------------------------------------------------------------------------------------


def _series(out, truth, patient):
    """{sequence: (image array, tissue array, label array)} of an LLD patient (as stored)."""
    res = {}
    for seq, tag in SEQUENCES.items():
        rec = truth["cases"][f"lld_mmr/{patient}_{tag}"]
        res[seq] = (
            read_image(out / rec["image"]).array,
            read_label(out / rec["tissue"]).array,
            read_label(out / rec["true_label"]).array,
        )
    return res


def _mean(img, mask, erode=False):
    if erode:
        eroded = ndimage.binary_erosion(mask)
        mask = eroded if eroded.sum() >= 10 else mask
    assert mask.sum() > 0
    return float(img[mask].mean())


def test_mr_contrast_orderings(phantom):
    _, out, _, truth = phantom
    for patient in truth["lld_mmr"]["patients"]:
        s = _series(out, truth, patient)
        img, tis, lab = s["T1W"]
        assert _mean(img, tis == T.SUBCUT_FAT, True) > 1.3 * _mean(img, lab == LIVER, True), "T1W: fat bright"
        img, tis, lab = s["T2W"]
        liver = _mean(img, lab == LIVER, True)
        assert _mean(img, lab == GB) > 2 * liver, "T2W: gallbladder bright"
        assert _mean(img, tis == T.CSF) > 2 * liver, "T2W: CSF bright"
        assert _mean(img, lab == SPLEEN, True) > 1.3 * liver, "T2W: spleen brighter than liver"
        fluid = tis == T.BOWEL_FLUID
        if fluid.sum() > 20:
            assert _mean(img, fluid) > 1.5 * liver, "T2W: bowel fluid bright"
        eap, pvp, dp = s["EAP"], s["PVP"], s["DP"]
        aorta = [_mean(v[0], v[2] == AORTA, True) for v in (eap, pvp, dp)]
        assert aorta[0] > 1.3 * aorta[1] and aorta[0] > aorta[2], "EAP: aorta brightest"
        assert _mean(pvp[0], pvp[1] == T.PORTAL_VEIN) > 1.3 * _mean(eap[0], eap[1] == T.PORTAL_VEIN), (
            "PVP: portal"
        )
        assert _mean(pvp[0], pvp[2] == IVC, True) > 1.5 * _mean(eap[0], eap[2] == IVC, True), "PVP: IVC"
        cortex = [
            _mean(v[0], v[1] == T.KIDNEY_CORTEX) / _mean(v[0], v[1] == T.KIDNEY_MEDULLA) for v in (eap, pvp)
        ]
        assert cortex[0] > 1.5 > cortex[1] - 0.3, "EAP: corticomedullary differentiation"
        img, tis, lab = s["DWI"]
        liver = _mean(img, lab == LIVER, True)
        assert _mean(img, lab == SPLEEN, True) > 1.5 * liver, "DWI: spleen bright"
        assert _mean(img, np.isin(lab, (RK, LK)), True) > 1.5 * liver, "DWI: kidneys bright"
        # Dixon: opposed phase dark where fat and water mix (India ink), unlike inside pure tissue
        ip, op = s["IP"][0], s["OP"][0]
        tis = s["IP"][1]
        fat = np.isin(tis, A.FAT_TISSUES)
        water = np.isin(tis, (T.MUSCLE, T.LIVER, T.SPLEEN, T.KIDNEY_CORTEX))
        boundary = (water & ndimage.binary_dilation(fat)) | (fat & ndimage.binary_dilation(water))
        interior = ndimage.binary_erosion(tis == T.MUSCLE, iterations=1)
        ratio_b = np.median(op[boundary] / np.maximum(ip[boundary], 1))
        ratio_i = np.median(op[interior] / np.maximum(ip[interior], 1))
        assert ratio_b < 0.75 * ratio_i, (
            f"OP/IP at fat-water boundaries {ratio_b:.2f} vs muscle {ratio_i:.2f}"
        )
        assert _mean(op, boundary) < 0.8 * _mean(ip, boundary)


def test_ct_values(phantom):
    _, out, _, truth = phantom
    for rec in _cases(truth, modality="CT"):
        hu = read_image(out / rec["image"]).array
        tis = read_label(out / rec["tissue"]).array
        lab = read_label(out / rec["true_label"]).array
        assert 80 < _mean(hu, lab == LIVER, True) < 140, "portal-venous liver ~110 HU"
        assert -130 < _mean(hu, tis == T.SUBCUT_FAT, True) < -70
        assert 25 < _mean(hu, tis == T.MUSCLE, True) < 75
        assert _mean(hu, tis == T.CORTICAL_BONE) > 400
        assert _mean(hu, np.isin(lab, (RK, LK)), True) > _mean(hu, lab == LIVER, True) + 30, (
            "kidney enhancement"
        )
        assert _mean(hu, lab == AORTA, True) > 140
        assert _mean(hu, tis == T.LUNG, True) < -600
        core = ndimage.binary_erosion(lab == LIVER, iterations=2)
        assert 6 < hu[core].std() < 35, "noise ~10-20 HU"


def test_domain_gap_and_misalignment(phantom):
    _, out, _, truth = phantom
    ct = _cases(truth, "ct_manual")[0]
    hu = read_image(out / ct["image"]).array
    ct_lab = read_label(out / ct["true_label"]).array
    ct255 = np.clip((hu + 160) / 400, 0, 1) * 255
    ct_means = {o: ct255[ct_lab == o].mean() for o in ORGANS if np.any(ct_lab == o)}
    patient = truth["lld_mmr"]["patients"][0]
    for seq, (img, _, lab) in _series(out, truth, patient).items():
        lo, hi = np.percentile(img, [0.5, 99.5])
        mr255 = np.clip((img - lo) / (hi - lo), 0, 1) * 255
        differ = [o for o in ct_means if np.any(lab == o) and abs(mr255[lab == o].mean() - ct_means[o]) > 10]
        assert len(differ) >= 8, f"{seq}: CT and MR organ intensities differ on only {len(differ)} organs"

    mis = truth["lld_mmr"]["misaligned"]
    assert mis, "at least one sequence must be badly misaligned"
    for rec in _cases(truth, "lld_mmr"):
        m = rec["motion"]
        big = np.linalg.norm(m["translation_mm"]) >= 15 or max(abs(a) for a in m["rotation_deg_xyz"]) >= 5
        assert big == m["misaligned"] == (rec["case"] in mis), rec["case"]
        if rec["sequence"] == "OP":
            ip = truth["cases"][f"lld_mmr/{rec['patient']}_InPhase"]["motion"]
            assert ip == m, "OP shares the IP acquisition's transform"
        if not m["misaligned"] and rec["sequence"] in ("EAP", "PVP", "DP"):
            assert abs(m["breath_mm"]) <= 5 and np.linalg.norm(m["translation_mm"]) <= 5


def test_true_labels_follow_the_recorded_motion(phantom):
    """The world-space kidney centroid of each sequence is where the recorded transforms put it."""
    _, out, _, truth = phantom
    for patient in truth["lld_mmr"]["patients"]:
        recs = {r["sequence"]: r for r in _cases(truth, "lld_mmr") if r["patient"] == patient}
        ref = recs["T1W"]
        ref_c = _centroid_world(_true_label(out, ref, unflip=True), LK)
        w_ref = np.array(ref["world_from_body"])
        for rec in recs.values():
            lab = _true_label(out, rec, unflip=True)
            if not np.any(lab.array == LK):
                continue
            w = np.array(rec["world_from_body"])
            breath = 0.6 * (rec["motion"]["breath_mm"] - ref["motion"]["breath_mm"])  # kidney factor
            body = np.linalg.solve(w_ref, np.append(ref_c, 1.0))
            body[2] += breath
            predicted = (w @ body)[:3]
            got = _centroid_world(lab, LK)
            tol = 2.5 * max(rec["spacing_zyx"])
            assert np.linalg.norm(got - predicted) < tol, f"{rec['case']}: {got} vs predicted {predicted}"


# --------------------------------------------------------------------------------------------------
# CLI and montage
# --------------------------------------------------------------------------------------------------


def test_cli_generate(tmp_path):
    import argparse

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        f"extends: {ROOT / 'params' / 'profiles' / 'smoke.yaml'}\n"
        "phantom: {n_ct_manual: 1, n_ct_pseudo: 0, n_lld_patients: 0, n_amos: 1, n_mr_val: 0,\n"
        "          ct_spacing_zyx: [10.0, 8.0, 8.0], mr_spacing_zyx: [10.0, 8.0, 8.0]}\n"
    )
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    args = parser.parse_args(
        ["generate", "--params", str(cfg), "--out", str(tmp_path / "o"), "--no-progress"]
    )
    assert args.func(args) == 0
    assert (tmp_path / "o" / "dataset.json").is_file()
    assert (tmp_path / "o" / "train_MRI_unlabeled" / "AMOS" / "amos_0001_0000.nii.gz").is_file()
    truth = json.loads((tmp_path / "o" / "diagnostics" / "truth.json").read_text())
    assert truth["cases"]["amos_mr/amos_0001"]["sequence"] in SEQUENCES
    stale = tmp_path / "o" / "val_MRI" / "imagesVal" / "old_case_0000.nii.gz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    assert args.func(args) == 0 and not stale.exists(), "regenerating replaces an earlier phantom"
    bad = parser.parse_args(["generate", "--params", str(tmp_path / "missing.yaml"), "--no-progress"])
    assert bad.func(bad) == 2
    foreign = tmp_path / "foreign"
    (foreign / "train_CT_gt_label").mkdir(parents=True)
    refuse = parser.parse_args(["generate", "--params", str(cfg), "--out", str(foreign), "--no-progress"])
    assert refuse.func(refuse) == 2 and not (foreign / "dataset.json").exists()


def test_cli_generate_marks_the_folder_so_that_runs_use_it(tmp_path, monkeypatch):
    """`flarelib generate` then `flarelib train`: the run finds the phantom made with its params and
    does not generate it again (it did on the GPU machine); other phantom params still regenerate."""
    import argparse
    import importlib

    from flarelib import datasets as prepare
    from flarelib.config import load_params

    gen = importlib.import_module("flarelib.data.phantom.generate")

    cfg = tmp_path / "tiny.yaml"
    out = tmp_path / "o"
    cfg.write_text(
        f"extends: {ROOT / 'params' / 'profiles' / 'smoke.yaml'}\n"
        "phantom: {n_ct_manual: 1, n_ct_pseudo: 0, n_lld_patients: 0, n_amos: 0, n_mr_val: 0,\n"
        "          ct_spacing_zyx: [10.0, 8.0, 8.0], mr_spacing_zyx: [10.0, 8.0, 8.0]}\n"
        f"data: {{track: phantom, root: {out}}}\n"
    )
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    args = parser.parse_args(["generate", "--params", str(cfg), "--no-progress"])
    assert args.func(args) == 0 and (out / prepare.MARKER).is_file()
    calls = []
    monkeypatch.setattr(gen, "generate", lambda params, folder, **kw: calls.append(folder))
    assert prepare.ensure_data(load_params(cfg), log=lambda *a: None) == out
    assert calls == []
    prepare.ensure_data(load_params(cfg, {"phantom": {"n_amos": 1}}), log=lambda *a: None)
    assert len(calls) == 1, "a phantom made with other params is regenerated"


def test_montage(phantom, tmp_path):
    from flarelib.viz.montage import phantom_montage

    _, out, _, truth = phantom
    png = tmp_path / "m.png"
    fig = phantom_montage(out, out_png=png)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 9 and png.stat().st_size > 10_000
    assert truth["lld_mmr"]["patients"][0] in fig._suptitle.get_text()


def test_labelled_ct_is_rendered_as_the_true_mr_of_its_anatomy(phantom):
    """diagnostics/translation/: each labelled CT's anatomy as T1W and T2W on the CT's grid, with
    the sequences' contrasts (T1W: fat bright, bile dark; T2W: bile bright, liver dark)."""
    params, out, _, truth = phantom
    cts = _cases(truth, modality="CT")
    assert cts and all(set(r["translation_truth"]) == set(params.phantom.translation_truth) for r in cts)
    for rec in cts[:3]:
        ct = read_image(out / rec["image"])
        label = read_label(out / rec["true_label"]).array
        tissue = read_label(out / rec["tissue"]).array
        mr = {seq: read_image(out / rel) for seq, rel in rec["translation_truth"].items()}
        assert all(same_grid(v, ct) and v.shape == ct.shape for v in mr.values())
        assert all(rel.startswith("diagnostics/") for rel in rec["translation_truth"].values())
        t1, t2 = mr["T1W"].array, mr["T2W"].array
        fat = np.isin(tissue, A.FAT_TISSUES)
        assert t1[fat].mean() > t1[label == LIVER].mean()
        if (label == GB).sum() > 20:
            assert t1[label == GB].mean() < t1[label == LIVER].mean()
            assert t2[label == GB].mean() > t2[label == LIVER].mean()


def test_translation_check_scores_an_identity_generator_as_the_ct_itself(phantom):
    """flarelib.train.translation_check end to end on the smoke phantom: a generator that returns
    its input makes a fake identical to the CT, so both rows agree; CT contrast is not T1W's."""
    import torch

    from flarelib.train.translation_check import phantom_translation_table, summarise

    params, out, _, _ = phantom
    params = compose_params(
        ROOT / "params" / "runs" / "default.yaml",
        "smoke",
        "phantom",
        overrides={"data": {"root": str(out)}, "cyclegan": {"fake_background": "keep", "ct_input": "window"}},
    )
    table = phantom_translation_table(params, torch.nn.Identity(), root=out)
    assert set(table["input"]) == {"fake", "ct"} and table["sequence"].eq("T1W").all()
    s = summarise(table)
    np.testing.assert_allclose(s.loc["fake"].to_numpy(float), s.loc["ct"].to_numpy(float), atol=1e-3)
    assert s.loc["ct", "order_fraction"] < 0.9 and s.loc["ct", "organ_mae"] > 20
