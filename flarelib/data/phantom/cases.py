"""The case builders: one CT case, one LLD-MMR session (8 sequences), one single MR volume.

Each draws its patient and geometry from its own streams (:func:`.geometry.case_rng`), renders,
writes its files where the subset's layout puts them (:mod:`.volume`) and returns the truth
records. Spacings (z, y, x) mm; shapes (z, y, x); origins and placements (x, y, z) mm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flarelib.config import Params, SubsetLayout
from flarelib.data.phantom.geometry import (
    SEQUENCE_GROUP,
    body_extent,
    case_rng,
    draw_motion,
    grid,
    mr_geometry,
    world_from_body,
)
from flarelib.data.phantom.label_errors import pseudo_label_errors
from flarelib.data.phantom.patient import make_patient
from flarelib.data.phantom.render import MR_SEQUENCES, render_ct, render_mr
from flarelib.data.phantom.subsets import case_ids
from flarelib.data.phantom.truth import translation_truth_file
from flarelib.data.phantom.volume import paint, to_int16, volume_record, write_volume
from flarelib.errors import FlareInputError
from flarelib.io import Volume, write_image
from flarelib.labels import SEQUENCES

__all__ = ["ct_case", "lld_case", "single_mr_case"]


def ct_case(
    params: Params, layout: SubsetLayout, out: Path, subset: str, index: int, long_ct: bool
) -> list[dict[str, Any]]:
    """Write CT case ``index`` of ``subset`` (``ct_manual``; ``ct_pseudo`` with pseudo-label errors) in
    ``layout``: HU on ``phantom.ct_spacing_zyx`` (z, y, x mm, in-plane / ``phantom.scale``), with the
    couch; ``long_ct`` covers chest to pelvis. Returns its truth record (a list of one)."""
    ph, seed = params.phantom, params.run.seed
    case = case_ids(subset, index + 1)[index]
    p = make_patient(case_rng(seed, subset, index, 0))
    rng = case_rng(seed, subset, index, 1)
    ext = body_extent(p)
    sz = p.body_scale[2]
    if long_ct:
        z_lo, z_hi = -300 * sz + rng.uniform(-10, 10), 390 * sz + rng.uniform(-10, 10)
    else:
        z_lo, z_hi = -170 * sz + rng.uniform(-15, 15), p.dome_r * sz + rng.uniform(22, 42)
    half = max(ext["hx"], ext["hy_ant"], ext["hy_post"]) + rng.uniform(8, 20)
    yc = 0.5 * (ext["hy_post"] - ext["hy_ant"])
    placement = np.array([rng.normal(0, 6), rng.normal(0, 6) - 20, rng.uniform(-400, 100)])
    spacing = tuple(
        float(np.float32(v))
        for v in (ph.ct_spacing_zyx[0], ph.ct_spacing_zyx[1] / ph.scale, ph.ct_spacing_zyx[2] / ph.scale)
    )
    lo = np.array([-half, yc - half, z_lo]) + placement
    hi = np.array([half, yc + half, z_hi]) + placement
    shape, origin = grid(lo, hi, spacing)
    w_from_b = world_from_body((0, 0, 0), (0, 0, 0), placement)
    tissue, label = paint(p, shape, spacing, origin, w_from_b, 0.0, couch=True)
    rrng = case_rng(seed, subset, index, 2)
    hu = render_ct(tissue, spacing, rrng, enhancement=rrng.uniform(0.85, 1.15), noise_hu=rrng.uniform(10, 20))
    written = label
    extra: dict[str, Any] = {
        "patient": case,
        "long_ct": bool(long_ct),
        "zflip": False,
        "world_from_body": w_from_b.round(6).tolist(),
        "body_scale": list(p.body_scale),
    }
    if subset == "ct_pseudo":
        written, errors = pseudo_label_errors(
            label, tissue, case_rng(seed, subset, index, 3), force_missed=index == 0
        )
        extra["pseudo_label_errors"] = errors
    rec = volume_record(layout, subset, case, None, "CT", shape, spacing, origin, label, extra)
    write_volume(out, rec, to_int16(hu), tissue, label, written, zflip=False)
    rec["translation_truth"] = _translation_truth(
        params, out, subset, index, case, tissue, spacing, origin, p
    )
    return [rec]


def _translation_truth(params, out, subset, index, case, tissue, spacing, origin, p) -> dict[str, str]:
    """The CT case's anatomy rendered as each MR sequence of ``phantom.translation_truth`` on the CT's
    grid (unit gain, no bias field: the contrast, not a scanner's drift), into diagnostics/ only.
    Streams 10+ of the case, so the files the method reads stay as without them."""
    files = {}
    for k, seq in enumerate(params.phantom.translation_truth):
        if seq not in MR_SEQUENCES:
            raise FlareInputError(
                "phantom.translation_truth",
                f"unknown MR sequence {seq!r}",
                f"use names of {list(MR_SEQUENCES)}",
            )
        img = render_mr(
            tissue,
            seq,
            spacing,
            case_rng(params.run.seed, subset, index, 10 + k),
            liver_fat_fraction=p.liver_fat_fraction,
            gain=1.0,
            bias_amplitude=0.0,
        )
        rel = translation_truth_file(subset, case, seq)
        write_image(Volume(to_int16(img), spacing, origin, np.eye(3)), out / rel)
        files[seq] = rel
    return files


def lld_case(
    params: Params, layout: SubsetLayout, out: Path, index: int, zflip: bool, misaligned: frozenset[str]
) -> list[dict[str, Any]]:
    """Write LLD-MMR patient ``index``: one session of the 8 sequences (files ``<patient>_<tag>``), each
    group on its own grid (:data:`.geometry.SEQUENCE_GROUP`), with motion between sequences,
    ``misaligned`` sequences moved badly, and every array stored reversed along z when ``zflip``.
    Returns the 8 truth records."""
    ph, seed, subset = params.phantom, params.run.seed, "lld_mmr"
    patient = case_ids(subset, index + 1)[index]
    p = make_patient(case_rng(seed, subset, index, 0))
    rng = case_rng(seed, subset, index, 1)
    placement = np.array([rng.normal(0, 8), rng.normal(0, 8), rng.uniform(-300, 300)])
    boxes = {}
    for group in ("dce", "dixon", "t2", "dwi"):
        lo, hi, spacing = mr_geometry(p, rng, ph.mr_spacing_zyx, ph.scale, group)
        boxes[group] = (*grid(lo + placement, hi + placement, spacing), spacing)
    motions = {seq: draw_motion(rng, seq, seq in misaligned) for seq in MR_SEQUENCES if seq != "OP"}
    motions["OP"] = dict(motions["IP"])
    gains = {seq: float(np.exp(rng.normal(0, 0.3))) for seq in MR_SEQUENCES}
    gains["OP"] = gains["IP"]  # one dual-echo acquisition
    gains["PVP"] = gains["DP"] = gains["EAP"]  # one dynamic series: same receiver settings
    bias_amp = float(rng.uniform(0.15, 0.35))
    records, cache = [], {}
    shared = {"EAP": {}, "IP": {}}  # texture, bias field and contrast jitter shared within a series
    shared.update(PVP=shared["EAP"], DP=shared["EAP"], OP=shared["IP"])
    for v, seq in enumerate(MR_SEQUENCES):
        group = SEQUENCE_GROUP[seq]
        shape, origin, spacing = boxes[group]
        mot = motions[seq]
        w_from_b = world_from_body(mot["rotation_deg_xyz"], mot["translation_mm"], placement)
        if seq == "OP":
            tissue, label = cache["IP"]
        else:
            tissue, label = paint(p, shape, spacing, origin, w_from_b, mot["breath_mm"])
            if seq == "IP":
                cache["IP"] = (tissue, label)
        rrng = case_rng(seed, subset, index, 2 + v)
        img = render_mr(
            tissue,
            seq,
            spacing,
            rrng,
            liver_fat_fraction=p.liver_fat_fraction,
            gain=gains[seq],
            bias_amplitude=bias_amp,
            partner=shared.get(seq),
        )
        case = f"{patient}_{SEQUENCES[seq]}"
        extra = {
            "patient": patient,
            "zflip": bool(zflip),
            "motion": mot,
            "world_from_body": w_from_b.round(6).tolist(),
            "body_scale": list(p.body_scale),
        }
        rec = volume_record(layout, subset, case, seq, "MR", shape, spacing, origin, label, extra)
        write_volume(out, rec, to_int16(img), tissue, label, None, zflip=zflip)
        records.append(rec)
    return records


def single_mr_case(
    params: Params, layout: SubsetLayout, out: Path, subset: str, index: int, seq: str
) -> list[dict[str, Any]]:
    """Write one MR volume of sequence ``seq`` (``amos_mr``: unlabelled, abdomen to the iliac crests;
    ``mr_val``: with its label). Returns its truth record (a list of one)."""
    ph, seed = params.phantom, params.run.seed
    case = case_ids(subset, index + 1)[index]
    p = make_patient(case_rng(seed, subset, index, 0))
    rng = case_rng(seed, subset, index, 1)
    placement = np.array([rng.normal(0, 8), rng.normal(0, 8), rng.uniform(-300, 300)])
    group = SEQUENCE_GROUP[seq]
    z_range = None
    if subset == "amos_mr":  # AMOS MR: abdomen down to the iliac crests
        z_range = (-rng.uniform(120, 170) * p.body_scale[2], p.dome_r * p.body_scale[2] + rng.uniform(20, 40))
    lo, hi, spacing = mr_geometry(p, rng, ph.mr_spacing_zyx, ph.scale, group, z_range)
    shape, origin = grid(lo + placement, hi + placement, spacing)
    mot = draw_motion(rng, "T1W", False)
    w_from_b = world_from_body(mot["rotation_deg_xyz"], mot["translation_mm"], placement)
    tissue, label = paint(p, shape, spacing, origin, w_from_b, mot["breath_mm"])
    rrng = case_rng(seed, subset, index, 2)
    img = render_mr(
        tissue,
        seq,
        spacing,
        rrng,
        liver_fat_fraction=p.liver_fat_fraction,
        gain=float(np.exp(rrng.normal(0, 0.3))),
        bias_amplitude=float(rrng.uniform(0.15, 0.35)),
    )
    extra = {
        "patient": case,
        "zflip": False,
        "motion": mot,
        "world_from_body": w_from_b.round(6).tolist(),
        "body_scale": list(p.body_scale),
    }
    rec = volume_record(layout, subset, case, seq, "MR", shape, spacing, origin, label, extra)
    write_volume(out, rec, to_int16(img), tissue, label, label if subset == "mr_val" else None, zflip=False)
    return [rec]
