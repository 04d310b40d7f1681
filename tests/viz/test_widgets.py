"""The ipywidgets viewers without a browser: drawing helpers with known answers, each viewer builds
and redraws its PNG when its slice slider moves, the static twins, and the lazy import."""

from __future__ import annotations

import math
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import ipywidgets as W
import numpy as np
import pytest
from matplotlib.figure import Figure

from flarelib.viz import widgets as V

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def examples():
    return V.synthetic_examples(shape=(8, 40, 40), seed=1)


def walk(root: W.Widget):
    yield root
    for child in getattr(root, "children", ()):
        yield from walk(child)


def find(root: W.Widget, cls: type, description: str | None = None) -> W.Widget:
    """The first widget of ``cls`` (and ``description``) under ``root``, depth first."""
    for w in walk(root):
        if isinstance(w, cls) and (description is None or w.description == description):
            return w
    raise AssertionError(f"no {cls.__name__} {description or ''} in the viewer")


def png(viewer: W.VBox) -> bytes:
    """The PNG bytes the viewer shows now."""
    return bytes(find(viewer, W.Image).value)


def moved(viewer: W.VBox) -> tuple[bytes, bytes]:
    """The viewer's PNG before and after its slice slider moves one step."""
    z = find(viewer, W.IntSlider, "slice")
    before = png(viewer)
    z.value = z.value + 1 if z.value < z.max else z.value - 1
    return before, png(viewer)


def test_checkerboard_tiles():
    a, b = np.zeros((4, 6)), np.ones((4, 6))
    expected = np.array(
        [
            [0, 0, 1, 1, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [1, 1, 0, 0, 1, 1],
            [1, 1, 0, 0, 1, 1],
        ]
    )
    np.testing.assert_array_equal(V.checkerboard(a, b, tile=2), expected)
    np.testing.assert_array_equal(V.checkerboard(a, b, tile=1)[0, :3], [0, 1, 0])
    with pytest.raises(ValueError, match="one shape"):
        V.checkerboard(a, np.ones((4, 5)))


def test_normalise_and_overlay():
    np.testing.assert_allclose(V.normalise(np.array([[0.0, 5.0, 20.0]]), (0, 10)), [[0.0, 0.5, 1.0]])
    rgb = V.overlay_rgb(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    np.testing.assert_array_equal(rgb[0, 0], [1, 0, 1])  # fixed only: magenta
    np.testing.assert_array_equal(rgb[0, 1], [0, 1, 0])  # moving only: green


def test_render_png_closes_the_figure():
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots(figsize=(1, 1))
    data = V.render_png(fig, dpi=20)
    assert data.startswith(PNG)
    assert not plt.fignum_exists(fig.number)


def test_organ_dscs_known_answer():
    truth = np.zeros((1, 2, 4), np.uint8)
    pred = np.zeros_like(truth)
    truth[0, 0, :2] = 1  # liver: 2 voxels, prediction 1 of them + 1 outside -> 2*1/4
    pred[0, 0, 1:3] = 1
    truth[0, 1, 0] = 2  # right kidney missed -> 0
    d = V.organ_dscs(truth, pred, organs=(1, 2, 3))
    assert d[1] == 0.5 and d[2] == 0.0 and math.isnan(d[3])
    html = V.dsc_table_html(d, [1, 3])
    assert "liver" in html and "0.500" in html and "absent" in html and "kidney" not in html


def test_registration_viewer_redraws_on_slice_and_mode(examples):
    fixed, pairs = examples["registration"]
    viewer = V.registration_viewer(fixed, pairs)
    assert isinstance(viewer, W.VBox) and "flare-viewer-registration" in viewer._dom_classes
    before, after = moved(viewer)
    assert before.startswith(PNG) and after.startswith(PNG) and before != after
    mode = find(viewer, W.ToggleButtons)
    assert list(mode.options) == ["checkerboard", "overlay"]
    mode.value = "overlay"
    assert png(viewer) != after
    seq = find(viewer, W.Dropdown, "sequence")
    assert list(seq.options) == ["EAP", "T2W"]


def test_registration_viewer_single_pair_and_bad_shapes(examples):
    fixed, pairs = examples["registration"]
    before, after = pairs["EAP"]
    viewer = V.registration_viewer(fixed, before, after)
    assert find(viewer, W.Dropdown, "sequence").layout.display == "none"
    with pytest.raises(ValueError, match="one grid"):
        V.registration_viewer(fixed, before[:-1], after)


def test_kidney_filter_viewer(examples):
    viewer = V.kidney_filter_viewer(examples["kidney"])
    before, after = moved(viewer)
    assert before != after
    table = find(viewer, W.HTML)
    assert "accept" in table.value and "T2W" in table.value
    patient = find(viewer, W.Dropdown, "patient")
    assert list(patient.options) == ["demo_01", "demo_02"]
    first_table = table.value
    patient.value = "demo_02"  # its T2W is shifted: rejected
    assert table.value != first_table and "reject" in table.value


def test_kidney_filter_viewer_needs_views(examples):
    import dataclasses

    res = dataclasses.replace(examples["kidney"][0], views=None)
    with pytest.raises(ValueError, match="keep_views"):
        V.kidney_filter_viewer(res)


def test_segmentation_viewer(examples):
    viewer = V.segmentation_viewer(examples["segmentation"])
    before, after = moved(viewer)
    assert before != after
    organs = find(viewer, W.SelectMultiple, "organs")
    assert len(organs.options) == 13 and "liver" in organs.options[0][0]
    table = find(viewer, W.HTML)
    assert "gallbladder" in table.value
    shown = png(viewer)
    organs.value = (1, 2)
    assert "gallbladder" not in table.value and "liver" in table.value
    assert png(viewer) != shown
    find(viewer, W.Dropdown, "case").value = "case_b"  # prediction == truth
    assert "0.669" not in table.value and "1.000" in table.value


def test_static_twins_return_figures(examples):
    fixed, pairs = examples["registration"]
    for mode in V.MODES:
        assert isinstance(V.registration_figure(fixed, *pairs["T2W"], mode=mode, z=3), Figure)
    c = examples["segmentation"]["case_a"]
    fig = V.segmentation_figure(c.image, c.truth, c.prediction, organs=[1, 2])
    assert isinstance(fig, Figure)
    assert isinstance(V.kidney_filter_figure(examples["kidney"][1], z=4), Figure)
    with pytest.raises(ValueError, match="display mode"):
        V.registration_figure(fixed, *pairs["T2W"], mode="blend")


def test_registration_pairs_identity_and_shift():
    import SimpleITK as sitk

    from flarelib.io import Volume

    rng = np.random.default_rng(0)
    arr = ndi_smooth(rng.normal(size=(6, 10, 12)).astype(np.float32))
    fixed = Volume(arr, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    shift = sitk.TranslationTransform(3, (1.0, 0.0, 0.0))  # fixed -> moving: x + 1 mm = one voxel
    pairs = V.registration_pairs(fixed, {"A": fixed, "B": fixed}, {"A": shift})
    assert list(pairs) == ["A"]
    before, after = pairs["A"]
    np.testing.assert_allclose(before, arr, atol=1e-4)
    np.testing.assert_allclose(after[:, :, :-1], arr[:, :, 1:], atol=1e-4)


@pytest.mark.parametrize("zflip", [False, True])
def test_transfer_registration_pairs_reads_records(tmp_path, zflip):
    import SimpleITK as sitk

    from flarelib.io import Volume, write_image
    from flarelib.pseudolabel.transfer import PatientTransfer, SequenceRecord
    from flarelib.registration import transform_to_dict

    rng = np.random.default_rng(1)
    arr = ndi_smooth(rng.normal(size=(5, 8, 9)).astype(np.float32))
    vol = Volume(arr, (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    files = {s: str(write_image(vol, tmp_path / f"p_{s}.nii.gz")) for s in ("T1W", "EAP", "PVP")}
    shift = transform_to_dict(sitk.TranslationTransform(3, (1.0, 0.0, 0.0)))  # one voxel along x
    ident = transform_to_dict(sitk.Euler3DTransform())
    records = [
        SequenceRecord("p", "T1W", "p_T1W", "reference", "", transform=ident, image=files["T1W"]),
        SequenceRecord("p", "EAP", "p_EAP", "accept", "", transform=shift, image=files["EAP"]),
        SequenceRecord("p", "PVP", "p_PVP", "reject", "", transform=ident, image=files["PVP"]),
        SequenceRecord("p", "DP", "p_DP", "missing", "no volume"),
    ]
    result = PatientTransfer("p", records, 0.0, zflip=zflip)
    fixed, pairs = V.transfer_registration_pairs(result)
    want = arr[::-1] if zflip else arr
    assert fixed.spacing_zyx == (2.0, 1.0, 1.0)
    np.testing.assert_allclose(fixed.array, want, atol=1e-4)
    assert list(pairs) == ["EAP", "PVP"]
    before, after = pairs["EAP"]
    np.testing.assert_allclose(before, want, atol=1e-4)
    np.testing.assert_allclose(after[:, :, :-1], want[:, :, 1:], atol=1e-4)
    assert list(V.transfer_registration_pairs(result, sequences=["PVP"])[1]) == ["PVP"]
    with pytest.raises(ValueError, match="no T1W"):
        V.transfer_registration_pairs(PatientTransfer("p", records[1:], 0.0))


def ndi_smooth(a: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.gaussian_filter(a, 1.0)


def test_importing_flarelib_viz_does_not_import_ipywidgets():
    code = (
        "import sys, flarelib, flarelib.viz, flarelib.viz.figures, flarelib.viz.pseudolabel_figures,"
        " flarelib.viz.montage, flarelib.viz.colours\n"
        "assert 'ipywidgets' not in sys.modules, 'ipywidgets imported'\n"
        "assert 'flarelib.viz.widgets' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
