"""The translation registration of the CycleGAN's data (STUDY.md "Preprocessing"): CT and MR brought
into one space so that CycleGAN patches drawn from the same place cover similar anatomy.

Three kinds of translation registration (:func:`~flarelib.registration.register_translation`),
references chosen deterministically (the first case id in natural sort order, never directory
order, a defect of the authors' code):

1. every CT onto the CT reference by its labels (per-organ centroid differences);
2. every MR volume onto the MR reference by Otsu body masks;
3. the CT reference onto the MR reference by body masks.

Every volume is then resampled onto the MR reference's grid (images B-spline, labels nearest
neighbour), CT through ``compose(3, 1)`` and MR through 2, so a CT organ lands where the MR
reference's anatomy is and the CT's field of view is cropped to the MR's. Only the CycleGAN sees
these volumes; segmentation and the fake-MR translation work on each volume's own grid.

Transforms follow SimpleITK's convention (fixed-space point -> moving-space point, LPS mm).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flarelib.data.layout import natural_key
from flarelib.io import Volume
from flarelib.preprocess import body_mask
from flarelib.registration.methods import register_translation
from flarelib.registration.transforms import apply_transform, compose, transform_to_dict


@dataclass
class AlignedDomains:
    """CT and MR volumes on the MR reference's grid, with the record of how they got there.

    ``ct``/``ct_labels``/``mr`` keep the order of the inputs; ``record`` maps every case id to its
    transform (JSON, :func:`transform_to_dict`), its registration quality (Dice of the masks or
    labels after warping) and the reference it was registered to.
    """

    ct: list[Volume]
    ct_labels: list[Volume | None]
    mr: list[Volume]
    reference_ct: str
    reference_mr: str
    record: dict[str, dict[str, Any]] = field(default_factory=dict)


def _first(names: Sequence[str]) -> int:
    return min(range(len(names)), key=lambda i: natural_key(names[i]))


def align_domains(
    ct: Sequence[tuple[str, Volume, Volume]],
    mr: Sequence[tuple[str, Volume]],
    *,
    levels: int = 2,
    sampling: float = 0.2,
    seed: int = 12345,
) -> AlignedDomains:
    """Align ``ct`` (``(case_id, image, label)``) and ``mr`` (``(case_id, image)``) onto the MR
    reference (see the module docstring). Images may hold any intensities (HU, 0..255); a CT's
    body mask is Otsu on its image, as the MR's."""
    if not ct or not mr:
        raise ValueError(f"align_domains needs CT and MR volumes (CT: {len(ct)}, MR: {len(mr)})")
    opts = {"levels": levels, "sampling": sampling, "seed": seed}
    ict, imr = _first([c[0] for c in ct]), _first([m[0] for m in mr])
    ref_ct_id, ref_ct_img, ref_ct_lab = ct[ict]
    ref_mr_id, ref_mr_img = mr[imr]
    ref_mr_body = body_mask(ref_mr_img)
    cross = register_translation(ref_mr_body, body_mask(ref_ct_img), by="mask", **opts)
    record: dict[str, dict[str, Any]] = {
        f"{ref_ct_id}->{ref_mr_id}": {
            "transform": transform_to_dict(cross.transform),
            "quality": cross.quality,
            "kind": "CT reference onto MR reference (body masks)",
        }
    }
    out_ct, out_lab = [], []
    for case_id, image, label in ct:
        if case_id == ref_ct_id:
            to_ref = None
        else:
            to_ref = register_translation(ref_ct_lab, label, by="label", **opts)
        tx = cross.transform if to_ref is None else compose(cross.transform, to_ref.transform)
        out_ct.append(apply_transform(image, tx, ref_mr_img))
        out_lab.append(None if label is None else apply_transform(label, tx, ref_mr_img, is_label=True))
        record[case_id] = {
            "transform": transform_to_dict(tx),
            "quality": None if to_ref is None else to_ref.quality,
            "reference": ref_ct_id,
            "kind": "CT onto CT reference (labels), then onto the MR reference",
        }
    out_mr = []
    for case_id, image in mr:
        if case_id == ref_mr_id:
            out_mr.append(image)
            record[case_id] = {"transform": None, "quality": 1.0, "reference": ref_mr_id}
            continue
        res = register_translation(ref_mr_body, body_mask(image), by="mask", **opts)
        out_mr.append(apply_transform(image, res.transform, ref_mr_img))
        record[case_id] = {
            "transform": transform_to_dict(res.transform),
            "quality": res.quality,
            "reference": ref_mr_id,
            "kind": "MR onto MR reference (body masks)",
        }
    return AlignedDomains(out_ct, out_lab, out_mr, ref_ct_id, ref_mr_id, record)
