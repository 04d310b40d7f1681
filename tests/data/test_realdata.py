"""Real data (../shared/data or $FLARE_DATA): manifest label maps, loading, anatomy in world space.

Every real file is read once, in the module fixture: ``check_dataset`` on params/data/real.yaml reads
the 44 BTCV / CHAOS files and hands each case to a visitor that records organ voxel counts and organ
centroids in LPS world mm (x to the patient's Left, y Posterior, z Superior); the two
TotalSegmentator pairs are read directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from flarelib.config import load_params
from flarelib.data.check import check_dataset
from flarelib.data.layout import Case
from flarelib.data.manifest import load_manifest
from flarelib.io import Volume, read_case, read_label

pytestmark = pytest.mark.realdata

REPO = Path(__file__).resolve().parents[2]
LIVER, RIGHT_KIDNEY, SPLEEN, DUODENUM, LEFT_KIDNEY = 1, 2, 3, 12, 13


@dataclass
class Seen:
    """What one read case looked like: FLARE id -> voxel count, FLARE id -> LPS centroid (x, y, z) mm."""

    shape_zyx: tuple[int, int, int]
    label_dtype: np.dtype | None
    counts: dict[int, int]
    centroids: dict[int, np.ndarray]


def centroids_zyx(label: np.ndarray) -> np.ndarray:
    """(256, 3) mean voxel index (z, y, x) of every id 0..255 (NaN where absent).

    Per-slice bincounts along each axis: about 8x faster than scipy.ndimage.center_of_mass here.
    """
    sums = []
    for axis in range(3):
        per_slice = np.stack([np.bincount(s.ravel(), minlength=256) for s in np.moveaxis(label, axis, 0)])
        sums.append(np.arange(len(per_slice)) @ per_slice)
    total = per_slice.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack(sums, axis=1) / total[:, None]


def summarise(label: Volume | None, shape_zyx) -> Seen:
    if label is None:
        return Seen(shape_zyx, None, {}, {})
    counts = np.bincount(label.array.ravel(), minlength=256)
    ids = [int(i) for i in np.flatnonzero(counts) if i != 0]
    world = label.world_coords(centroids_zyx(label.array)[ids]) if ids else np.zeros((0, 3))
    return Seen(
        shape_zyx, label.array.dtype, {i: int(counts[i]) for i in ids}, dict(zip(ids, world, strict=True))
    )


@pytest.fixture(scope="module")
def real(shared_data: Path):
    """Read everything once: (report, manifest, {(subset, case_id): Seen}, {case id: Seen} totalseg, raw)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLARE_DATA", str(shared_data))
        params = load_params(REPO / "params/data/real.yaml")
        seen: dict[tuple[str, str], Seen] = {}
        cases: dict[tuple[str, str], Case] = {}
        raw_btcv0 = {}

        def visit(case: Case, image: Volume, label: Volume | None) -> None:
            key = (case.subset, case.case_id)
            seen[key], cases[key] = summarise(label, image.shape), case
            if key == ("ct_labeled", "0"):  # keep the raw BTCV ids of one case to check the remap
                raw = read_label(case.label).array
                raw_btcv0.update(raw=raw, mapped=label.array)

        report = check_dataset(params, progress=False, visit=visit)
    manifest = load_manifest(shared_data / "dataset.json")
    totalseg = {}
    for mc in manifest.cases("totalseg"):
        image, label = read_case(mc.image, mc.label, mc.label_map)
        totalseg[mc.id] = summarise(label, image.shape)
    return report, manifest, seen, cases, totalseg, raw_btcv0


def test_check_real_yaml_passes(real) -> None:
    report = real[0]
    assert report.ok, "\n".join(report.problems)
    s = report.summary.set_index("subset")
    assert (s.loc["ct_labeled", "cases"], s.loc["ct_labeled", "with labels"]) == (30, 30)
    assert (s.loc["mr_unlabeled", "cases"], s.loc["mr_unlabeled", "with labels"]) == (10, 0)
    assert (s.loc["mr_val", "cases"], s.loc["mr_val", "with labels"]) == (4, 4)
    assert s.loc["ct_labeled", "organs present"] == "1-11, 13"
    assert s.loc["ct_labeled", "not annotated"] == "12"
    assert s.loc["mr_val", "organs present"] == "1-3, 13"
    assert s.loc["mr_val", "not annotated"] == "4-12"
    assert s.loc["mr_val", "sequences"] == "T2W"


def test_every_manifest_case_was_read(real) -> None:
    _, manifest, seen, cases, totalseg, _ = real
    read_images = {c.image.resolve() for c in cases.values()}
    listed = {c.image.resolve() for ds in ("btcv_ct", "chaos_t2") for c in manifest.cases(ds)}
    assert len(listed) == 44 and read_images == listed
    labeled = [k for k, c in cases.items() if c.label is not None]
    assert len(labeled) == 34
    assert all(seen[k].label_dtype == np.uint8 for k in labeled)
    assert all(set(seen[k].counts) <= cases[k].label_map.annotated for k in labeled)
    assert set(totalseg) == {"example_ct_sm", "example_mr_sm"}


def test_btcv_remap(real) -> None:
    _, manifest, seen, _, _, raw = real
    lm = manifest.label_map("btcv_ct")
    assert lm.to_flare[6] == LIVER and lm.to_flare[10] == 0 and lm.to_flare[1] == SPLEEN
    assert lm.not_annotated == frozenset({DUODENUM})
    r, m = raw["raw"], raw["mapped"]
    assert (r == 10).any() and (r == 6).any()
    assert (m[r == 6] == LIVER).all() and (m[r == 10] == 0).all() and (m[r == 3] == LEFT_KIDNEY).all()
    btcv = {c["id"]: c for c in manifest.raw["datasets"]["btcv_ct"]["cases"]}
    for cid, case in btcv.items():
        organs = set(seen["ct_labeled", str(cid)].counts)
        assert DUODENUM not in organs
        assert organs == set(case["flare_present"]), cid  # gallbladder absent in 12, 24


def test_chaos_labels(real) -> None:
    _, manifest, seen, _, _, _ = real
    lm = manifest.label_map("chaos_t2")
    assert lm.annotated == frozenset({LIVER, RIGHT_KIDNEY, SPLEEN, LEFT_KIDNEY})
    assert lm.not_annotated == frozenset(range(4, 13))
    src_to_flare = {1: LIVER, 2: RIGHT_KIDNEY, 3: LEFT_KIDNEY, 4: SPLEEN}
    for case in manifest.raw["datasets"]["chaos_t2"]["cases"]:
        if "label" not in case:
            assert seen["mr_unlabeled", str(case["id"])].counts == {}
            continue
        expected = {src_to_flare[int(k)]: v for k, v in case["label_voxels"].items()}
        assert seen["mr_val", str(case["id"])].counts == expected


def test_totalseg_both_variants(real) -> None:
    _, manifest, _, _, totalseg, _ = real
    by_id = {c.id: c for c in manifest.cases("totalseg")}
    assert by_id["example_ct_sm"].variant == "total" and by_id["example_mr_sm"].variant == "total_mr"
    files = manifest.raw["datasets"]["totalseg"]["files"]
    for case_id, seg in (("example_ct_sm", "example_seg"), ("example_mr_sm", "example_seg_mr")):
        expected = {int(k): v for k, v in files[seg]["flare_voxels"].items() if v}
        assert totalseg[case_id].counts == expected
        assert totalseg[case_id].label_dtype == np.uint8


def anatomy_cases(real):
    _, _, seen, cases, totalseg, _ = real
    out = {f"{k[0]}/{k[1]}": s for k, s in seen.items() if cases[k].label is not None}
    out.update({f"totalseg/{k}": s for k, s in totalseg.items()})
    return out


def test_anatomy_sides_in_world_space(real) -> None:
    """LPS world: +x is the patient's Left, +y Posterior. Liver right of spleen, right kidney right of
    left kidney, both kidneys posterior to the liver centroid: on every labelled real case."""
    checked = anatomy_cases(real)
    assert len(checked) == 30 + 4 + 2
    failures = []
    for name, s in checked.items():
        c = s.centroids
        if not c[LIVER][0] < c[SPLEEN][0]:
            failures.append(f"{name}: liver x {c[LIVER][0]:.1f} not < spleen x {c[SPLEEN][0]:.1f}")
        if not c[RIGHT_KIDNEY][0] < c[LEFT_KIDNEY][0]:
            failures.append(f"{name}: right kidney x not < left kidney x")
        for kidney in (RIGHT_KIDNEY, LEFT_KIDNEY):
            if not c[kidney][1] > c[LIVER][1]:
                failures.append(
                    f"{name}: kidney {kidney} y {c[kidney][1]:.1f} not > liver y {c[LIVER][1]:.1f}"
                )
    assert not failures, "\n".join(failures)


def test_centroid_helper_known_answer() -> None:
    lab = np.zeros((4, 5, 6), np.uint8)
    lab[1:3, 0, 4] = 7  # voxels (1, 0, 4) and (2, 0, 4)
    lab[3, 4, 5] = 2
    c = centroids_zyx(lab)
    np.testing.assert_allclose(c[7], [1.5, 0, 4])
    np.testing.assert_allclose(c[2], [3, 4, 5])
    assert np.isnan(c[5]).all()
