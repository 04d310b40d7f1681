"""One phantom volume: its tissue and label maps, its truth record, and its files.

A volume is one image of one case on one grid: shape (z, y, x) voxels, spacing (z, y, x) mm, origin
(x, y, z) LPS mm, identity direction. :func:`write_volume` writes the image, the label the method
sees (if the subset has one), and the true label and tissue map of the diagnostics folder
(:mod:`.truth`), all on that grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flarelib.config import SubsetLayout
from flarelib.data.phantom.painter import evaluate
from flarelib.data.phantom.patient import Patient
from flarelib.data.phantom.sampler import make_sampler
from flarelib.data.phantom.subsets import image_file, label_file
from flarelib.data.phantom.truth import tissue_file, true_label_file
from flarelib.io import Volume, write_image
from flarelib.labels import NUM_CLASSES, ORGANS

__all__ = ["organ_volumes_ml", "paint", "to_int16", "volume_record", "write_volume"]


def paint(p: Patient, shape, spacing, origin, w_from_b, breath, *, couch: bool = False):
    """``(tissue, label)`` uint8 maps (z, y, x) of patient ``p`` on a grid: ``shape`` (z, y, x),
    ``spacing`` (z, y, x mm), ``origin`` (x, y, z mm), ``w_from_b`` the 4x4 world-from-body map,
    ``breath`` mm; ``couch`` adds the CT table."""
    s = make_sampler(p, shape, spacing, origin, w_from_b, breath)
    tissue, label = evaluate(p, s, couch=couch)
    return tissue, label


def organ_volumes_ml(label: np.ndarray, spacing_zyx) -> dict[str, float]:
    """Volume (mL) of each of the 13 organs in ``label`` (z, y, x) at ``spacing_zyx`` (mm)."""
    counts = np.bincount(label.ravel(), minlength=NUM_CLASSES)
    vox_ml = float(np.prod(spacing_zyx)) / 1000.0
    return {ORGANS[i]: round(float(counts[i]) * vox_ml, 2) for i in ORGANS}


def to_int16(img: np.ndarray) -> np.ndarray:
    """Rounded and clipped to int16 (how the images are stored)."""
    return np.clip(np.rint(img), -32768, 32767).astype(np.int16)


def volume_record(
    layout: SubsetLayout, subset, case, seq, modality, shape, spacing, origin, label, extra
) -> dict[str, Any]:
    """The truth record of one volume (``truth.json``'s ``cases`` entry); paths relative to the output
    folder, the image and label where ``layout`` (the subset's templates) puts them."""
    rec = {
        "subset": subset,
        "case": case,
        "modality": modality,
        "sequence": seq,
        "image": image_file(layout, case),
        "label": label_file(layout, case),
        "true_label": true_label_file(subset, case),
        "tissue": tissue_file(subset, case),
        "shape_zyx": [int(v) for v in shape],
        "spacing_zyx": [float(v) for v in spacing],
        "origin_xyz": [float(v) for v in origin],
        "n_slices": int(shape[0]),
        "organ_volumes_ml": organ_volumes_ml(label, spacing),
    }
    rec.update(extra)
    return rec


def write_volume(
    out: Path,
    rec: dict[str, Any],
    image: np.ndarray,
    tissue: np.ndarray,
    label: np.ndarray,
    written_label: np.ndarray | None,
    zflip: bool,
) -> None:
    """Write the files of record ``rec`` under ``out``: the image, the true label and the tissue map,
    and ``written_label`` (what the method sees) where the subset has labels. ``zflip`` stores every
    array reversed along z with the header unchanged (the LLD-MMR defect)."""
    spacing, origin = tuple(rec["spacing_zyx"]), tuple(rec["origin_xyz"])
    if zflip:  # the LLD-MMR defect: voxels reversed along z, header unchanged
        image, tissue, label = image[::-1], tissue[::-1], label[::-1]
        written_label = None if written_label is None else written_label[::-1]

    def put(rel, arr):
        write_image(Volume(np.ascontiguousarray(arr), spacing, origin, np.eye(3)), out / rel)

    put(rec["image"], image)
    put(rec["true_label"], label)
    put(rec["tissue"], tissue)
    if rec["label"] is not None and written_label is not None:
        put(rec["label"], written_label)
