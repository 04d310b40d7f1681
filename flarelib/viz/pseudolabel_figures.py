"""Static figures of stage 2's and stage 3's decision makers (matplotlib; headless-safe: nothing
here needs a display, and figures are returned, optionally written as PNG).

* :func:`kidney_filter_figure`: the paper's Fig. 4 for one patient: every sequence resampled onto
  the T1W grid, at a slice through the kidneys, with the T1W kidney pseudo-label (contour) and the
  sequence's coarse kidney (filled), the two DSCs and the decision.
* :func:`anatomy_figure`: the paper's Fig. 5: cases as coronal "first-hit" projections of their
  labels (each (z, x) pixel shows the most anterior organ along y, a flat stand-in for the paper's
  3-D renderings), titled with what the anatomy module says.
* :func:`anatomy_examples`: Fig. 5's three kinds of case from one clean label: passing, duodenum
  moved off the stomach (eq. 8), a gallbladder split in two (eq. 7).

Arrays are (z, y, x), LPS order (axis 1 anterior -> posterior).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from flarelib.config import AnatomyParams
from flarelib.labels import SHORT_NAMES
from flarelib.pseudolabel import anatomy as A
from flarelib.pseudolabel.transfer import KIDNEYS, PatientTransfer
from flarelib.viz.figures import LABEL_CMAP, LABEL_COLOURS, display_range, save_figure, show_slice

__all__ = ["anatomy_examples", "anatomy_figure", "coronal_projection", "kidney_filter_figure"]

_ORDER = ("T1W", "EAP", "PVP", "DP", "T2W", "DWI", "IP", "OP")


def _kidney_slice(label: np.ndarray) -> int:
    kid = np.isin(label, list(KIDNEYS.values()))
    if not kid.any():
        return label.shape[0] // 2
    return int(np.argmax(kid.sum(axis=(1, 2))))


def kidney_filter_figure(
    result: PatientTransfer,
    *,
    spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
    z: int | None = None,
    out_png: str | Path | None = None,
):
    """Fig. 4 for one patient. ``result`` must come from ``transfer_patient(..., keep_views=True)``.

    One panel per sequence present (T1W first): the sequence on the T1W grid at slice ``z`` (default:
    the slice with most T1W kidney), T1W kidney pseudo-label as contours, coarse kidneys filled, title
    with the kidney DSCs and the decision (green accepted, red rejected). ``spacing_zyx``: the T1W
    grid's, for the pixel aspect.
    """
    if result.views is None or result.t1w_label is None:
        raise ValueError("kidney_filter_figure needs transfer_patient(..., keep_views=True)")
    label = result.t1w_label
    z = _kidney_slice(label) if z is None else int(z)
    kid = np.where(np.isin(label, list(KIDNEYS.values())), label, 0)
    recs = {r.sequence: r for r in result.records}
    seqs = [s for s in _ORDER if s in result.views]
    cols = 4
    rows = int(np.ceil(len(seqs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.9 * rows), squeeze=False)
    aspect = float(spacing_zyx[1]) / float(spacing_zyx[2])
    for ax in axes.ravel():
        ax.axis("off")
    for ax, seq in zip(axes.ravel(), seqs, strict=False):
        ax.axis("on")
        view = result.views[seq]
        img = view.image[z]
        show_slice(ax, img, None, vrange=display_range(view.image), aspect=aspect)
        if view.coarse is not None and view.coarse[z].any():
            ax.imshow(
                np.ma.masked_equal(view.coarse[z], 0),
                cmap=LABEL_CMAP,
                vmin=0,
                vmax=len(LABEL_COLOURS) - 1,
                alpha=0.5,
                aspect=aspect,
                interpolation="nearest",
            )
        for k in KIDNEYS.values():
            if (kid[z] == k).any():
                ax.contour(kid[z] == k, levels=[0.5], colors=["cyan"], linewidths=0.8)
        rec = recs.get(seq)
        if seq == "T1W":
            title, colour = "T1W (pseudo-label)", "black"
        elif rec is None:
            title, colour = seq, "black"
        else:
            dsc = (
                f"R {rec.dsc_right:.2f} / L {rec.dsc_left:.2f}"
                if rec.dsc_right is not None and rec.dsc_left is not None
                else ""
            )
            verdict = {"accept": "accepted", "reject": "rejected"}.get(rec.decision, rec.decision)
            via = " (IP's)" if seq == "OP" else ""
            title = f"{seq}: {verdict}\nkidney DSC{via} {dsc}"
            colour = "tab:green" if rec.decision == "accept" else "tab:red"
        ax.set_title(title, fontsize=8, color=colour)
    fig.suptitle(
        f"{result.patient}: kidney-DSC filter (cyan: T1W kidney pseudo-label; filled: coarse kidney), z={z}",
        fontsize=9,
    )
    fig.tight_layout()
    if out_png is not None:
        save_figure(fig, out_png)
    return fig


def coronal_projection(label: np.ndarray) -> np.ndarray:
    """(z, x) image of the first non-zero label along y (anterior first): a flat 3-D view."""
    label = np.asarray(label)
    hit = label != 0
    first = np.argmax(hit, axis=1)  # (z, x)
    out = np.take_along_axis(label, first[:, None, :], axis=1)[:, 0, :]
    return np.where(hit.any(axis=1), out, 0)


def anatomy_figure(
    cases: Sequence[tuple[str, np.ndarray, A.AnatomyResult]],
    *,
    spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0),
    organs: Sequence[int] | None = None,
    out_png: str | Path | None = None,
):
    """Fig. 5: one column per ``(title, label, result)``; coronal first-hit projections (z up),
    titled with the verdict and the violated constraints by organ. ``organs``: show only these (e.g.
    the gastro-intestinal ones), default all. ``spacing_zyx``: for the aspect (z vs x)."""
    fig, axes = plt.subplots(1, len(cases), figsize=(3.2 * len(cases), 3.6), squeeze=False)
    aspect = float(spacing_zyx[0]) / float(spacing_zyx[2])
    for ax, (title, label, res) in zip(axes[0], cases, strict=True):
        lab = np.asarray(label)
        if organs is not None:
            lab = np.where(np.isin(lab, list(organs)), lab, 0)
        proj = coronal_projection(lab)[::-1]  # superior at the top
        ax.imshow(np.zeros_like(proj), cmap="gray", vmin=0, vmax=1, aspect=aspect)
        ax.imshow(
            np.ma.masked_equal(proj, 0),
            cmap=LABEL_CMAP,
            vmin=0,
            vmax=len(LABEL_COLOURS) - 1,
            aspect=aspect,
            interpolation="nearest",
        )
        ax.set_xticks([])
        ax.set_yticks([])
        if res.passed:
            verdict, colour = "passes (6)-(8)", "tab:green"
        else:
            parts = [f"{SHORT_NAMES[o]} ({', '.join(c)})" for o, c in res.by_organ().items()]
            verdict, colour = "fails: " + "; ".join(parts), "tab:red"
        ax.set_title(f"{title}\n{verdict}", fontsize=8, color=colour, wrap=True)
    present = sorted({int(v) for _, lab, _ in cases for v in np.unique(lab) if v})
    if organs is not None:
        present = [o for o in present if o in organs]
    if present:
        handles = [plt.Rectangle((0, 0), 1, 1, color=LABEL_COLOURS[i]) for i in present]
        fig.legend(
            handles, [SHORT_NAMES[i] for i in present], loc="lower center", ncol=7, fontsize=7, frameon=False
        )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    if out_png is not None:
        save_figure(fig, out_png)
    return fig


def anatomy_examples(
    label: np.ndarray,
    params: AnatomyParams,
    *,
    spacing_zyx: Sequence[float] | None = None,
    seed: int = 0,
) -> list[tuple[str, np.ndarray, A.AnatomyResult]]:
    """Fig. 5's three cases from one clean label: as it is; the duodenum moved off the stomach
    (``shift`` of organ 12); the gallbladder split in two (``split`` of organ 9). Each with its
    :func:`~flarelib.pseudolabel.anatomy.check_anatomy` result, ready for :func:`anatomy_figure`."""
    out = [("clean label", label, A.check_anatomy(label, params, spacing_zyx=spacing_zyx))]
    cases = ((12, "shift", "duodenum off the stomach"), (9, "split", "split gallbladder"))
    for k, (organ, kind, title) in enumerate(cases):
        bad, _ = A.inject_violation(
            label, kind, A.injection_rng(seed, k), params, spacing_zyx=spacing_zyx, organ=organ
        )
        out.append((title, bad, A.check_anatomy(bad, params, spacing_zyx=spacing_zyx)))
    return out
