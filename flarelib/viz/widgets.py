"""Interactive viewers (ipywidgets + matplotlib) and their static figure twins (house rule 9).

Import this module explicitly (``from flarelib.viz.widgets import ...``): nothing else in flarelib
imports it, so headless runs never load ipywidgets.

* :func:`registration_viewer` / :func:`registration_figure`: a moving image on the fixed grid before
  and after registration, as a checkerboard or a colour overlay (fixed magenta, moving green);
  inputs from volumes and transforms (:func:`registration_pairs`) or from a patient's label transfer
  (:func:`transfer_registration_pairs`).
* :func:`kidney_filter_viewer` / :func:`~flarelib.viz.pseudolabel_figures.kidney_filter_figure`:
  stage 2's kidney-DSC filter per patient (table of DSCs and decisions; T1W kidney pseudo-label
  against each sequence's coarse kidney).
* :func:`segmentation_viewer` / :func:`segmentation_figure`: ground truth and prediction side by
  side, per-organ DSC (:func:`flarelib.evaluate.dice.dice`), organs toggled on and off.

Every viewer returns an ``ipywidgets.VBox`` whose image is a PNG drawn by matplotlib
(:func:`render_png`) and redrawn whenever a control changes; the drawing itself is a plain function
of the controls' values, testable without a browser. Arrays are (z, y, x) as stored (LPS after
``reorient_to_lps``: x to the screen's right = patient left, y down = posterior); spacings in mm,
order (z, y, x). :func:`synthetic_examples` makes small inputs for all three (demo notebook, tests).
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage as ndi

from flarelib.evaluate.dice import dice
from flarelib.labels import ORGAN_IDS, ORGANS, SHORT_NAMES
from flarelib.pseudolabel.transfer import KidneyView, PatientTransfer, SequenceRecord, decide, kidney_dscs
from flarelib.viz.figures import LABEL_CMAP, LABEL_COLOURS, display_range, pick_slices, show_slice
from flarelib.viz.pseudolabel_figures import kidney_filter_figure

__all__ = [
    "SegmentationCase",
    "checkerboard",
    "dsc_table_html",
    "kidney_filter_figure",
    "kidney_filter_viewer",
    "normalise",
    "organ_dscs",
    "overlay_rgb",
    "registration_figure",
    "registration_pairs",
    "registration_viewer",
    "render_png",
    "segmentation_figure",
    "segmentation_viewer",
    "synthetic_examples",
    "transfer_registration_pairs",
    "transfer_table_html",
]

#: Resolution of the viewers' PNGs (small: a redraw must feel immediate).
VIEWER_DPI = 90
MODES = ("checkerboard", "overlay")


# --------------------------------------------------------------------------------------------------
# Data-independent drawing helpers
# --------------------------------------------------------------------------------------------------
def render_png(fig, dpi: int = VIEWER_DPI) -> bytes:
    """The PNG bytes of a matplotlib Figure at ``dpi``; the figure is closed afterwards."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()


def normalise(image2d: np.ndarray, vrange: tuple[float, float]) -> np.ndarray:
    """``image2d`` scaled to 0..1 (float32) by the grey-level range ``(lo, hi)``, clipped."""
    lo, hi = float(vrange[0]), float(vrange[1])
    scaled = (np.asarray(image2d, np.float32) - lo) / (hi - lo if hi > lo else 1.0)
    return np.clip(scaled, 0.0, 1.0)


def checkerboard(a: np.ndarray, b: np.ndarray, tile: int = 8) -> np.ndarray:
    """Tiles of two (y, x) images of one shape: ``a`` where ``y // tile + x // tile`` is even (the
    top-left tile), ``b`` elsewhere. ``tile`` in pixels (>= 1)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"checkerboard needs two (y, x) images of one shape, got {a.shape} and {b.shape}")
    if tile < 1:
        raise ValueError(f"checkerboard tile must be >= 1 pixel, got {tile}")
    yy, xx = np.indices(a.shape)
    return np.where((yy // tile + xx // tile) % 2 == 0, a, b)


def overlay_rgb(fixed01: np.ndarray, moving01: np.ndarray) -> np.ndarray:
    """(y, x, 3) colour overlay of two 0..1 images: fixed in magenta, moving in green, so aligned
    structures look grey and misaligned edges coloured."""
    f = np.clip(np.asarray(fixed01, np.float32), 0, 1)
    m = np.clip(np.asarray(moving01, np.float32), 0, 1)
    return np.stack([f, m, f], axis=-1)


def _aspect(spacing_zyx: Sequence[float]) -> float:
    return float(spacing_zyx[1]) / float(spacing_zyx[2])


def _clamp_z(z: int | None, depth: int, default: int) -> int:
    return int(np.clip(default if z is None else int(z), 0, depth - 1))


def _slice_slider(depth: int, value: int) -> W.IntSlider:
    return W.IntSlider(
        value=value,
        min=0,
        max=max(0, depth - 1),
        description="slice",
        continuous_update=False,
        layout=W.Layout(width="360px"),
    )


def _png_image() -> W.Image:
    """The viewers' picture: shown at the PNG's own size (a VBox would stretch it to its width)."""
    return W.Image(format="png", layout=W.Layout(align_self="flex-start", object_fit="contain"))


def _viewer_box(name: str, children: Sequence[W.Widget]) -> W.VBox:
    box = W.VBox(list(children))
    box.add_class("flare-viewer")
    box.add_class(f"flare-viewer-{name}")
    return box


def _wire(redraw: Callable[[], None], *controls: W.Widget) -> None:
    """Call ``redraw`` now and whenever one of ``controls`` changes value."""
    for c in controls:
        c.observe(lambda _change: redraw(), names="value")
    redraw()


# --------------------------------------------------------------------------------------------------
# Registration: before / after, checkerboard or overlay
# --------------------------------------------------------------------------------------------------
def registration_pairs(fixed, moving: Mapping[str, Any], transforms: Mapping[str, Any]) -> dict:
    """Before/after arrays for :func:`registration_viewer` from volumes and registration results.

    ``fixed``: the fixed :class:`~flarelib.io.Volume` (the T1W); ``moving``: name -> Volume;
    ``transforms``: name -> SimpleITK transform (fixed -> moving points, as
    :func:`~flarelib.pseudolabel.transfer.register_sequences` returns in ``.transform``) or an
    object with a ``.transform``. Returns name -> ``(before, after)``, both (z, y, x) float32 on the
    fixed grid: ``before`` by the headers' world geometry alone (identity), ``after`` through the
    transform. Names without a transform are left out.
    """
    import SimpleITK as sitk

    from flarelib.registration import apply_transform

    out = {}
    for name, vol in moving.items():
        t = transforms.get(name)
        if t is None:
            continue
        t = getattr(t, "transform", t)
        before = apply_transform(vol, sitk.Euler3DTransform(), fixed).array.astype(np.float32)
        after = apply_transform(vol, t, fixed).array.astype(np.float32)
        out[name] = (before, after)
    return out


def transfer_registration_pairs(
    result: PatientTransfer, sequences: Sequence[str] | None = None
) -> tuple[Any, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """:func:`registration_pairs` of one patient's label transfer, from its records alone.

    ``result``: a :class:`~flarelib.pseudolabel.transfer.PatientTransfer` (views not needed); the
    records' image files are read again and their T1W -> sequence transforms applied. A patient the
    transfer z-flipped (``result.zflip``) is flipped alike before resampling, since its transforms
    refer to the flipped volumes (arrays then in the z-fixed voxel order, as its kidney views).
    ``sequences``: which to return (default every registered one but the T1W; OP reuses IP's
    transform). Returns ``(fixed, pairs)``: the T1W :class:`~flarelib.io.Volume` (spacing in mm)
    and name -> ``(before, after)``, (z, y, x) float32 on its grid.
    """
    from flarelib.io import read_image
    from flarelib.preprocess import flip_z

    by_seq = {r.sequence: r for r in result.records}
    ref = by_seq.get("T1W")
    if ref is None or ref.image is None:
        raise ValueError(f"transfer_registration_pairs: no T1W image file among {result.patient}'s records")
    names = [
        r.sequence
        for r in result.records
        if r.sequence != "T1W"
        and r.transform is not None
        and r.image is not None
        and (sequences is None or r.sequence in sequences)
    ]

    def read(path: str):
        vol = read_image(path)
        return flip_z(vol) if result.zflip else vol

    fixed = read(ref.image)
    moving = {s: read(by_seq[s].image) for s in names}
    return fixed, registration_pairs(fixed, moving, {s: by_seq[s].get_transform() for s in names})


def _registration_panel(fixed2d, moving2d, mode: str, tile: int, rf, rm) -> np.ndarray:
    f, m = normalise(fixed2d, rf), normalise(moving2d, rm)
    if mode == "checkerboard":
        return checkerboard(f, m, tile)
    if mode == "overlay":
        return overlay_rgb(f, m)
    raise ValueError(f"unknown display mode {mode!r}; use one of {MODES}")


def registration_figure(
    fixed: np.ndarray,
    moving_before: np.ndarray,
    moving_after: np.ndarray,
    *,
    z: int | None = None,
    mode: str = "checkerboard",
    tile: int = 8,
    spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
    title: str = "",
    ranges: tuple | None = None,
):
    """Static twin of :func:`registration_viewer`: slice ``z`` (default: the middle) of a moving image
    before and after registration against the fixed image, side by side.

    Arrays (z, y, x) on the fixed grid; ``mode``: ``checkerboard`` (``tile`` pixels, fixed in the
    top-left tile) or ``overlay`` (fixed magenta, moving green); ``spacing_zyx`` (mm) sets the pixel
    aspect; ``ranges``: grey-level ranges ``(fixed, before, after)`` (default
    :func:`~flarelib.viz.figures.display_range` of each). Returns the Figure.
    """
    fixed, before, after = (np.asarray(a) for a in (fixed, moving_before, moving_after))
    _same_shapes(fixed=fixed, moving_before=before, moving_after=after)
    z = _clamp_z(z, fixed.shape[0], fixed.shape[0] // 2)
    rf, rb, ra = ranges or (display_range(fixed), display_range(before), display_range(after))
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.5))
    for ax, moving, rm, name in ((axes[0], before, rb, "before"), (axes[1], after, ra, "after")):
        panel = _registration_panel(fixed[z], moving[z], mode, tile, rf, rm)
        ax.imshow(panel, cmap="gray", vmin=0, vmax=1, aspect=_aspect(spacing_zyx), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{name} registration", fontsize=9)
    legend = "checkerboard: fixed | moving" if mode == "checkerboard" else "fixed magenta, moving green"
    fig.suptitle(f"{title + ': ' if title else ''}{legend}, z={z}", fontsize=9)
    fig.tight_layout()
    return fig


def _same_shapes(**arrays: np.ndarray) -> None:
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    if len(set(shapes.values())) > 1 or any(len(s) != 3 for s in shapes.values()):
        raise ValueError(f"need (z, y, x) arrays on one grid, got shapes {shapes}")


def registration_viewer(
    fixed: np.ndarray,
    moving_before: np.ndarray | Mapping[str, tuple[np.ndarray, np.ndarray]],
    moving_after: np.ndarray | None = None,
    *,
    spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
    tile: int = 8,
    dpi: int = VIEWER_DPI,
) -> W.VBox:
    """Browse a registration: checkerboard | overlay toggle buttons, ``slice`` slider, and a sequence
    dropdown when ``moving_before`` is a dict ``name -> (before, after)`` (``moving_after`` then
    unused).

    ``fixed`` and every moving array are (z, y, x) on the fixed grid (e.g. the T1W; see
    :func:`registration_pairs`); ``spacing_zyx`` in mm. The image is :func:`registration_figure`'s.
    """
    fixed = np.asarray(fixed)
    if isinstance(moving_before, Mapping):
        pairs = {str(k): (np.asarray(b), np.asarray(a)) for k, (b, a) in moving_before.items()}
    else:
        if moving_after is None:
            raise ValueError("registration_viewer: pass moving_after, or a dict name -> (before, after)")
        pairs = {"moving": (np.asarray(moving_before), np.asarray(moving_after))}
    if not pairs:
        raise ValueError("registration_viewer: no moving images")
    for name, (b, a) in pairs.items():
        _same_shapes(fixed=fixed, **{f"{name} before": b, f"{name} after": a})
    rf = display_range(fixed)
    ranges = {k: (rf, display_range(b), display_range(a)) for k, (b, a) in pairs.items()}
    seq = W.Dropdown(options=list(pairs), description="sequence")
    seq.layout.display = None if len(pairs) > 1 else "none"
    mode = W.ToggleButtons(
        options=list(MODES), tooltips=["fixed | moving tiles", "fixed magenta, moving green"]
    )
    mode.style.button_width = "120px"
    z = _slice_slider(fixed.shape[0], fixed.shape[0] // 2)
    image = _png_image()

    def redraw() -> None:
        before, after = pairs[seq.value]
        fig = registration_figure(
            fixed,
            before,
            after,
            z=z.value,
            mode=mode.value,
            tile=tile,
            spacing_zyx=spacing_zyx,
            title=seq.value,
            ranges=ranges[seq.value],
        )
        image.value = render_png(fig, dpi)

    _wire(redraw, seq, mode, z)
    return _viewer_box("registration", [W.HBox([seq, mode]), z, image])


# --------------------------------------------------------------------------------------------------
# The kidney-DSC filter per patient
# --------------------------------------------------------------------------------------------------
_DECISION_COLOUR = {"accept": "#1a7f37", "reject": "#cf222e", "reference": "#444", "missing": "#888"}


def _num(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def transfer_table_html(records: Sequence[SequenceRecord]) -> str:
    """An HTML table of a patient's transfer records: sequence, kidney DSC right / left, decision
    (green accepted, red rejected) and the reason."""
    rows = []
    for r in records:
        colour = _DECISION_COLOUR.get(r.decision, "#000")
        rows.append(
            f"<tr><td>{html.escape(r.sequence)}</td><td>{_num(r.dsc_right)}</td><td>{_num(r.dsc_left)}</td>"
            f'<td style="color:{colour};font-weight:bold">{html.escape(r.decision)}</td>'
            f"<td>{html.escape(r.reason)}</td></tr>"
        )
    head = "<tr><th>sequence</th><th>DSC right</th><th>DSC left</th><th>decision</th><th>reason</th></tr>"
    return f'<table class="flare-table" style="font-size:12px">{head}{"".join(rows)}</table>'


def _by_patient(results) -> dict[str, PatientTransfer]:
    if isinstance(results, PatientTransfer):
        results = [results]
    items = results.items() if isinstance(results, Mapping) else ((r.patient, r) for r in results)
    out = {str(k or f"patient {i}"): r for i, (k, r) in enumerate(items)}
    bad = [k for k, r in out.items() if r.views is None or r.t1w_label is None]
    if bad:
        raise ValueError(
            f"kidney_filter_viewer needs transfer_patient(..., keep_views=True); no views for {bad}"
        )
    if not out:
        raise ValueError("kidney_filter_viewer: no patients")
    return out


def _kidney_z(result: PatientTransfer) -> int:
    kid = np.isin(result.t1w_label, (2, 13)).sum(axis=(1, 2))
    return int(np.argmax(kid)) if kid.any() else result.t1w_label.shape[0] // 2


def kidney_filter_viewer(
    results: PatientTransfer | Sequence[PatientTransfer] | Mapping[str, PatientTransfer],
    *,
    spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
    dpi: int = 80,
) -> W.VBox:
    """Browse stage 2's kidney-DSC filter: patient dropdown, a table of each sequence's kidney DSCs
    and decision, and every sequence on the T1W grid at the ``slice`` slider's z with the T1W kidney
    pseudo-label (contours) and its coarse kidney (filled).

    ``results``: :class:`~flarelib.pseudolabel.transfer.PatientTransfer` objects from
    ``transfer_patient(..., keep_views=True)`` (one, a list, or patient -> result); arrays inside are
    (z, y, x) on the T1W grid; ``spacing_zyx`` (mm): the T1W grid's. The static twin is
    :func:`~flarelib.viz.pseudolabel_figures.kidney_filter_figure` (same drawing).
    """
    by_patient = _by_patient(results)
    first = next(iter(by_patient.values()))
    patient = W.Dropdown(options=list(by_patient), description="patient")
    z = _slice_slider(first.t1w_label.shape[0], _kidney_z(first))
    table = W.HTML(transfer_table_html(first.records))
    image = _png_image()

    def redraw() -> None:
        fig = kidney_filter_figure(by_patient[patient.value], spacing_zyx=spacing_zyx, z=z.value)
        image.value = render_png(fig, dpi)

    def on_patient(_change) -> None:
        res = by_patient[patient.value]
        table.value = transfer_table_html(res.records)
        with z.hold_trait_notifications():
            z.max = res.t1w_label.shape[0] - 1
            z.value = _kidney_z(res)
        redraw()

    patient.observe(on_patient, names="value")
    _wire(redraw, z)
    return _viewer_box("kidney", [patient, table, z, image])


# --------------------------------------------------------------------------------------------------
# Segmentation: ground truth vs prediction, per-organ DSC
# --------------------------------------------------------------------------------------------------
class SegmentationCase(NamedTuple):
    """One case for :func:`segmentation_viewer`: image, ground truth and prediction, (z, y, x) on one
    grid (labels: FLARE ids); ``spacing_zyx`` in mm; ``modality`` ``MR`` or ``CT`` (grey levels)."""

    image: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)
    modality: str = "MR"


def organ_dscs(truth: np.ndarray, prediction: np.ndarray, organs: Sequence[int] = ORGAN_IDS) -> dict:
    """Volumetric DSC per FLARE id over the whole (z, y, x) volume (NaN: absent from both)."""
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    return {int(o): float(dice(truth == o, prediction == o, empty=math.nan)) for o in organs}


def dsc_table_html(dscs: Mapping[int, float], organs: Sequence[int] | None = None) -> str:
    """An HTML table of per-organ DSC (a colour swatch, the organ's name, DSC or "absent")."""
    rows = []
    for o in organs if organs is not None else list(dscs):
        rgb = ",".join(str(round(255 * c)) for c in LABEL_COLOURS[o][:3])
        value = dscs.get(o, math.nan)
        shown = "absent" if math.isnan(value) else f"{value:.3f}"
        rows.append(
            f'<tr><td style="background:rgb({rgb});width:10px"></td>'
            f"<td>{html.escape(ORGANS[o])}</td><td>{shown}</td></tr>"
        )
    return (
        '<table class="flare-table" style="font-size:12px"><tr><th></th><th>organ</th><th>DSC</th></tr>'
        f"{''.join(rows)}</table>"
    )


def _only(label2d: np.ndarray, organs: Sequence[int]) -> np.ndarray:
    return np.where(np.isin(label2d, list(organs)), label2d, 0)


def segmentation_figure(
    image: np.ndarray,
    truth: np.ndarray,
    prediction: np.ndarray,
    *,
    z: int | None = None,
    organs: Sequence[int] | None = None,
    spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
    modality: str = "MR",
    title: str = "",
    dscs: Mapping[int, float] | None = None,
    vrange: tuple[float, float] | None = None,
):
    """Static twin of :func:`segmentation_viewer`: slice ``z`` (default: the middle of the labelled
    range) of ground truth and prediction over the image, side by side, showing only ``organs``
    (default all 13), with a legend of each organ present and its DSC over the whole volume
    (``dscs``; default :func:`organ_dscs`). Arrays (z, y, x); ``spacing_zyx`` in mm. Returns the Figure.
    """
    image, truth, prediction = (np.asarray(a) for a in (image, truth, prediction))
    _same_shapes(image=image, truth=truth, prediction=prediction)
    organs = list(ORGAN_IDS if organs is None else organs)
    z = _clamp_z(z, image.shape[0], pick_slices(truth, 1, image.shape[0])[0])
    dscs = organ_dscs(truth, prediction, organs) if dscs is None else dscs
    vr = vrange or display_range(image, modality)
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.9))
    for ax, lab, name in ((axes[0], truth, "ground truth"), (axes[1], prediction, "prediction")):
        show_slice(ax, image[z], _only(lab[z], organs), vrange=vr, aspect=_aspect(spacing_zyx), title=name)
    present = [o for o in organs if not math.isnan(dscs.get(o, math.nan))]  # NaN: absent from both
    if present:
        handles = [plt.Rectangle((0, 0), 1, 1, color=LABEL_CMAP(o)) for o in present]
        names = [f"{SHORT_NAMES[o]} {_num(dscs.get(o)) or 'n/a'}" for o in present]
        fig.legend(handles, names, loc="lower center", ncol=min(5, len(present)), fontsize=7, frameon=False)
    rows = 1 + (len(present) - 1) // 5 if present else 0
    fig.suptitle(f"{title + ': ' if title else ''}z={z} (legend: organ and DSC)", fontsize=9)
    fig.tight_layout(rect=(0, 0.06 * rows, 1, 1))
    return fig


def _cases(cases) -> dict[str, SegmentationCase]:
    items = cases.items() if isinstance(cases, Mapping) else ((c[0], c[1:]) for c in cases)
    out = {}
    for name, c in items:
        case = c if isinstance(c, SegmentationCase) else SegmentationCase(*c)
        _same_shapes(image=case.image, truth=case.truth, prediction=case.prediction)
        out[str(name)] = case
    if not out:
        raise ValueError("segmentation_viewer: no cases")
    return out


def segmentation_viewer(
    cases: Mapping[str, SegmentationCase | tuple] | Sequence[tuple],
    *,
    dpi: int = VIEWER_DPI,
) -> W.VBox:
    """Browse predictions against the ground truth: case dropdown, ``slice`` slider, organ toggles
    (a multiple selection over the 13 FLARE organs), the two label maps side by side and a table of
    the selected organs' DSC over the whole volume.

    ``cases``: name -> :class:`SegmentationCase` (or a tuple ``(image, truth, prediction[,
    spacing_zyx[, modality]])``), or a sequence of ``(name, image, truth, prediction, ...)``;
    arrays (z, y, x), spacings mm. The image is :func:`segmentation_figure`'s.
    """
    by_name = _cases(cases)
    first = next(iter(by_name.values()))
    case = W.Dropdown(options=list(by_name), description="case")
    z = _slice_slider(first.image.shape[0], pick_slices(first.truth, 1, first.image.shape[0])[0])
    organs = W.SelectMultiple(
        options=[(f"{o} {ORGANS[o]}", o) for o in ORGAN_IDS],
        value=list(ORGAN_IDS),
        rows=len(ORGAN_IDS),
        description="organs",
        layout=W.Layout(width="250px"),
    )
    table = W.HTML()
    image = _png_image()
    cache: dict[str, tuple[dict, tuple[float, float]]] = {}

    def stats(name: str):
        if name not in cache:
            c = by_name[name]
            cache[name] = (organ_dscs(c.truth, c.prediction), display_range(c.image, c.modality))
        return cache[name]

    def redraw() -> None:
        c = by_name[case.value]
        dscs, vr = stats(case.value)
        chosen = sorted(organs.value)
        table.value = dsc_table_html(dscs, chosen)
        fig = segmentation_figure(
            c.image,
            c.truth,
            c.prediction,
            z=z.value,
            organs=chosen,
            spacing_zyx=c.spacing_zyx,
            modality=c.modality,
            title=case.value,
            dscs=dscs,
            vrange=vr,
        )
        image.value = render_png(fig, dpi)

    def on_case(_change) -> None:
        c = by_name[case.value]
        with z.hold_trait_notifications():
            z.max = c.image.shape[0] - 1
            z.value = pick_slices(c.truth, 1, c.image.shape[0])[0]
        redraw()

    case.observe(on_case, names="value")
    _wire(redraw, z, organs)
    return _viewer_box("segmentation", [W.HBox([case, z]), W.HBox([organs, image, table])])


# --------------------------------------------------------------------------------------------------
# Small synthetic inputs (demo notebook, tests)
# --------------------------------------------------------------------------------------------------
#: Synthetic organs: FLARE id -> (centre, semi-axes) as fractions of the (z, y, x) grid. Patient
#: right is at small x, posterior at large y (LPS as stored).
_BLOBS: dict[int, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    1: ((0.55, 0.40, 0.30), (0.40, 0.18, 0.17)),  # liver
    2: ((0.45, 0.66, 0.33), (0.22, 0.08, 0.06)),  # right kidney
    3: ((0.60, 0.60, 0.74), (0.20, 0.09, 0.07)),  # spleen
    5: ((0.50, 0.63, 0.52), (0.50, 0.035, 0.035)),  # aorta
    6: ((0.50, 0.60, 0.43), (0.50, 0.04, 0.03)),  # inferior vena cava
    9: ((0.40, 0.42, 0.40), (0.12, 0.05, 0.04)),  # gallbladder
    11: ((0.62, 0.36, 0.64), (0.22, 0.11, 0.12)),  # stomach
    13: ((0.42, 0.66, 0.67), (0.22, 0.08, 0.06)),  # left kidney
}
_TISSUE = {0: 0.15, 1: 0.55, 2: 0.8, 3: 0.6, 5: 0.95, 6: 0.9, 9: 0.3, 11: 0.4, 13: 0.8}
_TISSUE_T2W = {0: 0.35, 1: 0.25, 2: 0.85, 3: 0.55, 5: 0.1, 6: 0.1, 9: 0.95, 11: 0.6, 13: 0.85}


def _synthetic_label(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float32) / np.reshape(shape, (3, 1, 1, 1))
    label = np.zeros(shape, np.uint8)
    for organ, (centre, axes) in _BLOBS.items():
        c = np.add(centre, rng.uniform(-0.02, 0.02, 3))
        r = sum(((grid[i] - c[i]) / axes[i]) ** 2 for i in range(3))
        label[(r <= 1) & (label == 0)] = organ
    return label


def _synthetic_image(
    label: np.ndarray, rng: np.random.Generator, contrast: Mapping[int, float]
) -> np.ndarray:
    yy, xx = np.indices(label.shape[1:], dtype=np.float32)
    ny, nx = label.shape[1:]
    body = ((yy - ny / 2) / (0.44 * ny)) ** 2 + ((xx - nx / 2) / (0.47 * nx)) ** 2 <= 1
    img = np.where(np.broadcast_to(body, label.shape), contrast[0], 0.0).astype(np.float32)
    for organ, value in contrast.items():
        if organ:
            img[label == organ] = value
    img = ndi.gaussian_filter(img, 0.7) + rng.normal(0, 0.03, img.shape).astype(np.float32)
    return (1000 * np.clip(img, 0, None)).astype(np.float32)


def synthetic_examples(shape: tuple[int, int, int] = (16, 64, 64), seed: int = 0) -> dict[str, Any]:
    """Small synthetic inputs for the three viewers (ellipsoid organs, not the phantom).

    Returns ``registration`` (``(fixed, {name: (before, after)})``: T1W-like fixed image, an EAP-like
    and a T2W-like moving image shifted by a few voxels before and close to aligned after),
    ``kidney`` (two :class:`PatientTransfer` with views of EAP, PVP and T2W: the filter run by
    :func:`~flarelib.pseudolabel.transfer.kidney_dscs` / ``decide`` on aligned and on shifted
    sequences) and ``segmentation`` (name -> :class:`SegmentationCase`: the truth and a perturbed
    prediction). Arrays (z, y, x), unit spacing; deterministic by ``seed``.
    """
    from flarelib.config import TransferParams

    rng = np.random.default_rng(seed)
    label = _synthetic_label(shape, rng)
    t1w = _synthetic_image(label, rng, _TISSUE)
    eap = _synthetic_image(label, rng, {**_TISSUE, 2: 0.9, 5: 0.95, 6: 0.5, 13: 0.9})
    pvp = _synthetic_image(label, rng, {**_TISSUE, 1: 0.7, 2: 0.85, 6: 0.9, 13: 0.85})
    t2w = _synthetic_image(label, rng, _TISSUE_T2W)
    registration = (
        t1w,
        {
            "EAP": (np.roll(eap, (1, 5, -4), axis=(0, 1, 2)), np.roll(eap, (0, 1, 0), axis=(0, 1, 2))),
            "T2W": (np.roll(t2w, (0, -6, 6), axis=(0, 1, 2)), t2w),
        },
    )
    params = TransferParams()
    kidney = []
    for patient, shift in (("demo_01", 0), ("demo_02", 4)):
        views = {"T1W": KidneyView(t1w, None)}
        records = [SequenceRecord(patient, "T1W", f"{patient}_T1W", "reference", "the T1W pseudo-label")]
        for seq, img in (("EAP", eap), ("PVP", pvp), ("T2W", t2w)):
            moved = np.roll(img, shift, axis=2) if seq == "T2W" else img
            coarse, d = kidney_dscs(moved, label, params)
            dec = decide(seq, d["right"], d["left"], params)
            views[seq] = KidneyView(moved, coarse)
            kind = "accept" if dec.accepted else "reject"
            records.append(
                SequenceRecord(patient, seq, f"{patient}_{seq}", kind, dec.reason, d["right"], d["left"])
            )
        kidney.append(PatientTransfer(patient, records, 0.0, views=views, t1w_label=label))
    pred = label.copy()
    pred[np.roll(label == 3, 3, axis=2)] = 3  # spleen leaks sideways
    pred[(label == 9)] = 0  # gallbladder missed
    pred = np.where(ndi.binary_erosion(label == 1, iterations=2) | (label != 1), pred, 0)
    segmentation = {
        "case_a": SegmentationCase(t1w, label, pred.astype(np.uint8)),
        "case_b": SegmentationCase(eap, label, label.copy()),
    }
    return {"registration": registration, "kidney": kidney, "segmentation": segmentation}
