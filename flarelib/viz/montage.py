"""A one-page montage of the phantom: one CT and the 8 MR sequences of one patient, with true labels.

Static and headless-safe (Agg). Each panel is the axial slice through the middle of the kidneys
(mean z of the two kidneys' centroids in the true label), shown in radiological convention as stored
in LPS (array x to the right of the screen = patient left; y down = posterior), with pixel spacing
respected, cropped to the body (from the diagnostics tissue map). CT uses the window 40/400 HU; MR
the 0.5th-99.5th percentile of the voxels inside the body.
Contours are the true labels from ``diagnostics/labels`` (which the method never reads). Patients
stored z-flipped are flipped back for display (the panel title says so).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from flarelib.errors import FlareInputError
from flarelib.io import read_image, read_label
from flarelib.labels import SEQUENCES, SHORT_NAMES
from flarelib.viz.colours import LABEL_RGBA

__all__ = ["phantom_montage"]

#: One RGB colour per FLARE id (the shared label colours, without alpha).
_COLOURS = [rgba[:3] for rgba in LABEL_RGBA]


def _kidney_slice(label: np.ndarray) -> int:
    """z index through the middle of the kidneys (2, 13); the label's z-centre if there are none."""
    zs = [np.nonzero(label == k)[0].mean() for k in (2, 13) if np.any(label == k)]
    if not zs:
        nz = np.nonzero(label)[0]
        return round(float(nz.mean())) if nz.size else label.shape[0] // 2
    return round(float(np.mean(zs)))


def _mr_range(body_values: np.ndarray) -> tuple[float, float]:
    """Grey-level range of an MR panel: 0.5th-99.5th percentile of the voxels inside the body."""
    if body_values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(body_values, [0.5, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1)


def _body_box(tissue2d: np.ndarray, spacing_yx, margin_mm: float = 12.0) -> tuple[slice, slice]:
    """(y, x) slices of the body (tissue other than air and the CT couch) plus a margin."""
    from flarelib.data.phantom.anatomy import Tissue

    body = (tissue2d != Tissue.AIR) & (tissue2d != Tissue.COUCH)
    if not body.any():
        return slice(None), slice(None)
    out = []
    for axis, sp in zip((0, 1), spacing_yx, strict=True):
        idx = np.nonzero(body.any(axis=1 - axis))[0]
        m = int(np.ceil(margin_mm / sp))
        out.append(slice(max(idx[0] - m, 0), min(idx[-1] + m + 1, body.shape[axis])))
    return out[0], out[1]


def _panel(ax, img2d, lab2d, spacing_yx, vrange, title):
    ny, nx = img2d.shape
    extent = (0, nx * spacing_yx[1], ny * spacing_yx[0], 0)
    ax.imshow(img2d, cmap="gray", vmin=vrange[0], vmax=vrange[1], extent=extent, interpolation="bilinear")
    xs = (np.arange(nx) + 0.5) * spacing_yx[1]
    ys = (np.arange(ny) + 0.5) * spacing_yx[0]
    for organ in np.unique(lab2d[lab2d > 0]):
        ax.contour(
            xs,
            ys,
            (lab2d == organ).astype(float),
            levels=[0.5],
            colors=[_COLOURS[int(organ)]],
            linewidths=0.9,
        )
    ax.set_xlim(0, nx * spacing_yx[1])
    ax.set_ylim(ny * spacing_yx[0], 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("black")
    ax.set_title(title, fontsize=9)


def _save_png(fig: Figure, path: Path, dpi: int = 90) -> None:
    """Save as a palette PNG: the 13 label colours and a grey ramp (about half the RGBA size)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    buf.seek(0)
    colours = [tuple(round(255 * c) for c in rgb) for rgb in _COLOURS[1:]]
    greys = [(g, g, g) for g in np.linspace(0, 255, 256 - len(colours)).round().astype(int).tolist()]
    palette = Image.new("P", (1, 1))
    palette.putpalette([v for rgb in colours + greys for v in rgb])
    with Image.open(buf) as im:
        pal = im.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE)
    pal.save(path, optimize=True)


def phantom_montage(
    data_root: str | os.PathLike, patient: str | None = None, out_png: str | os.PathLike | None = None
) -> Figure:
    """CT (a manual CT case) and the 8 sequences of one LLD-MMR patient, mid-kidney axial slices.

    ``data_root`` is a folder written by ``flarelib generate`` (with ``diagnostics/``); ``patient`` an
    LLD-MMR patient id (default: the first patient not stored z-flipped). Saves a PNG when
    ``out_png`` is given. Returns the matplotlib Figure.
    """
    from flarelib.data.phantom.generate import load_truth

    root = Path(data_root)
    truth = load_truth(root)
    cases = truth["cases"]
    lld = truth["lld_mmr"]
    if patient is None:
        ok = [p for p in lld["patients"] if p not in lld["zflip_patients"]] or lld["patients"]
        if not ok:
            raise FlareInputError(
                root, "the phantom has no LLD-MMR patients", "generate with n_lld_patients >= 1"
            )
        patient = ok[0]
    if patient not in lld["patients"]:
        raise FlareInputError(
            root, f"no LLD-MMR patient {patient!r}", f"use one of {', '.join(lld['patients'])}"
        )
    ct_keys = sorted(k for k in cases if k.startswith("ct_manual/")) or sorted(
        k for k in cases if cases[k]["modality"] == "CT"
    )
    panels = [cases[ct_keys[0]]] if ct_keys else []
    panels += [cases[f"lld_mmr/{patient}_{tag}"] for tag in SEQUENCES.values()]

    fig, axes = plt.subplots(3, 3, figsize=(11.5, 9.4), facecolor="white")
    for ax, rec in zip(axes.flat, panels, strict=False):
        img = read_image(root / rec["image"]).array
        lab = read_label(root / rec["true_label"]).array
        tissue = read_label(root / rec["tissue"]).array
        flipped = bool(rec.get("zflip"))
        if flipped:
            img, lab, tissue = img[::-1], lab[::-1], tissue[::-1]
        z = _kidney_slice(lab)
        sp = rec["spacing_zyx"]
        crop = _body_box(tissue[z], sp[1:])
        if rec["modality"] == "CT":
            vrange, name = (-160.0, 240.0), f"CT {rec['case']} (W400/L40)"
        else:
            vrange = _mr_range(img[tissue > 0])
            seq = rec["sequence"]
            name = f"{seq} ({SEQUENCES[seq]}){' z-flip undone' if flipped else ''}"
            if rec.get("motion", {}).get("misaligned"):
                name += " [misaligned]"
        name += f"\n{sp[1]:g}x{sp[2]:g} mm, {sp[0]:g} mm slices, z={z}"
        _panel(ax, img[z][crop], lab[z][crop], (sp[1], sp[2]), vrange, name)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=_COLOURS[i], lw=2, label=SHORT_NAMES[i]) for i in range(1, 14)]
    fig.legend(handles=handles, loc="lower center", ncol=13, fontsize=7.5, frameon=False)
    fig.suptitle(
        f"flare-study phantom ({truth.get('profile', '?')} profile, seed {truth.get('seed', '?')}): "
        f"CT and the 8 MR sequences of patient {patient}, true labels",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    if out_png is not None:
        out_png = Path(out_png)
        out_png.parent.mkdir(parents=True, exist_ok=True)
        _save_png(fig, out_png)
    return fig
