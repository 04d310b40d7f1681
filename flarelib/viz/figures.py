"""Static figures (matplotlib, Agg-safe): slices with label overlays.

Images are (z, y, x) arrays; slices are shown in radiological convention as stored in LPS
(array x to the right of the screen = patient left after ``reorient_to_lps``; y down = posterior).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from flarelib.labels import NUM_CLASSES, SHORT_NAMES
from flarelib.viz.colours import LABEL_RGBA

#: One colour per FLARE id (0 transparent), fixed so every figure agrees.
LABEL_COLOURS = np.array(LABEL_RGBA)
LABEL_CMAP = ListedColormap(LABEL_COLOURS, name="flare")


def display_range(image: np.ndarray, modality: str = "MR") -> tuple[float, float]:
    """Grey-level range: CT window 40/400 HU; MR 1st-99th percentile of non-zero voxels."""
    if modality.upper() == "CT":
        return -160.0, 240.0
    values = image[image > 0] if np.any(image > 0) else image.ravel()
    lo, hi = np.percentile(values, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1)


def show_slice(
    ax,
    image2d: np.ndarray,
    label2d: np.ndarray | None = None,
    *,
    vrange=(None, None),
    aspect: float = 1.0,
    contours: bool = False,
    alpha: float = 0.45,
    title: str | None = None,
):
    """Draw one (y, x) slice with an optional label overlay (filled or contours)."""
    ax.imshow(image2d, cmap="gray", vmin=vrange[0], vmax=vrange[1], aspect=aspect, interpolation="nearest")
    if label2d is not None and np.any(label2d):
        if contours:
            for organ in np.unique(label2d[label2d > 0]):
                ax.contour(label2d == organ, levels=[0.5], colors=[LABEL_COLOURS[int(organ)]], linewidths=0.8)
        else:
            ax.imshow(
                np.ma.masked_equal(label2d, 0),
                cmap=LABEL_CMAP,
                vmin=0,
                vmax=NUM_CLASSES - 1,
                alpha=alpha,
                aspect=aspect,
                interpolation="nearest",
            )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def pick_slices(label: np.ndarray | None, n: int, depth: int) -> list[int]:
    """``n`` z indices spread over the labelled range (or the whole volume when unlabelled)."""
    if label is not None and np.any(label):
        zs = np.flatnonzero(label.reshape(label.shape[0], -1).any(axis=1))
        lo, hi = int(zs[0]), int(zs[-1])
    else:
        lo, hi = 0, depth - 1
    return sorted({round(v) for v in np.linspace(lo, hi, n + 2)[1:-1]})


def case_slices_figure(
    cases: Sequence[tuple[str, np.ndarray, np.ndarray | None, tuple, str]],
    n_slices: int = 3,
    out_png: str | Path | None = None,
):
    """A grid: one row per case ``(title, image, label, spacing_zyx, modality)``, ``n_slices`` axial cuts.

    Returns the matplotlib Figure; writes a PNG when ``out_png`` is given.
    """
    fig, axes = plt.subplots(len(cases), n_slices, figsize=(2.6 * n_slices, 2.6 * len(cases)), squeeze=False)
    for row, (title, image, label, spacing_zyx, modality) in enumerate(cases):
        vr = display_range(image, modality)
        aspect = spacing_zyx[1] / spacing_zyx[2]
        for col, z in enumerate(pick_slices(label, n_slices, image.shape[0])):
            show_slice(
                axes[row, col],
                image[z],
                None if label is None else label[z],
                vrange=vr,
                aspect=aspect,
                title=f"{title}  z={z}",
            )
    present = sorted({int(v) for _, _, lab, _, _ in cases if lab is not None for v in np.unique(lab) if v})
    if present:
        handles = [plt.Rectangle((0, 0), 1, 1, color=LABEL_COLOURS[i]) for i in present]
        fig.legend(
            handles,
            [SHORT_NAMES[i] for i in present],
            loc="lower center",
            ncol=min(7, len(present)),
            fontsize=7,
            frameon=False,
        )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    if out_png is not None:
        save_figure(fig, out_png)
    return fig


def training_curves_figure(
    log, columns: Sequence[str], *, smooth: int = 0, out_png: str | Path | None = None
):
    """Loss curves of a training log (the loop's ``train_log.csv`` as a DataFrame): one panel per
    column present, against ``iteration``; ``smooth`` > 1 adds a running mean over that many rows
    (default: about 1/20 of the run). Returns the Figure; writes a PNG when ``out_png`` is given."""
    cols = [c for c in columns if c in log.columns]
    fig, axes = plt.subplots(1, max(1, len(cols)), figsize=(3.2 * max(1, len(cols)), 2.6), squeeze=False)
    window = smooth or max(1, len(log) // 20)
    for ax, col in zip(axes[0], cols, strict=False):
        ax.plot(log["iteration"], log[col], lw=0.6, alpha=0.45, color="tab:blue")
        if window > 1:
            ax.plot(
                log["iteration"], log[col].rolling(window, min_periods=1).mean(), lw=1.2, color="tab:blue"
            )
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    if out_png is not None:
        save_figure(fig, out_png)
    return fig


def iterations_figure(table, *, peak: int | None = 3, out_png: str | Path | None = None):
    """Fig. 6: validation mean DSC and NSD (0..1, shown x100) per self-training iteration.

    ``table``: rows with ``iteration``, ``val_mean_dsc``, ``val_mean_nsd`` (iteration 0 = the model
    the iterations start from). ``peak``: the paper's best iteration, marked for comparison."""
    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    ax.plot(table["iteration"], 100 * table["val_mean_dsc"], "o-", label="DSC")
    ax.plot(table["iteration"], 100 * table["val_mean_nsd"], "s-", label="NSD")
    if peak is not None:
        ax.axvline(peak, color="0.6", ls="--", lw=0.8, label=f"paper's best ({peak})")
    ax.set_xlabel("self-training iteration", fontsize=8)
    ax.set_ylabel("validation mean (%)", fontsize=8)
    ax.set_xticks(list(table["iteration"]))
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    if out_png is not None:
        save_figure(fig, out_png)
    return fig


def size_curve_figure(
    series,
    *,
    xlabel: str = "image voxels",
    ylabel: str = "running time (s)",
    title: str | None = None,
    out_png: str | Path | None = None,
):
    """Efficiency against image size (Table 7): one line of points per entry of ``series``
    (label -> (x values, y values); NaN points dropped, sorted by x), log-scaled x. Returns the
    Figure; writes a PNG when ``out_png`` is given."""
    fig, ax = plt.subplots(figsize=(4.8, 3.0))
    markers = "os^vD"
    for k, (label, (xs, ys)) in enumerate(series.items()):
        pts = sorted(
            (float(x), float(y)) for x, y in zip(xs, ys, strict=True) if np.isfinite(x) and np.isfinite(y)
        )
        if not pts:
            continue
        ax.plot(
            [p[0] for p in pts], [p[1] for p in pts], marker=markers[k % len(markers)], lw=1.0, label=label
        )
    ax.set_xscale("log")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    if out_png is not None:
        save_figure(fig, out_png)
    return fig


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save a figure atomically (temp file + rename) as PNG."""
    import io

    from flarelib.paths import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(Path(path), buf.getvalue())
