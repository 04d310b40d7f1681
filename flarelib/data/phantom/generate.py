"""Generate the phantom data set: subsets, acquisition geometry, z-flips, misalignment, diagnostics.

``generate(params, out_dir)`` writes, under ``out_dir`` (the layout of ``params/data/phantom.yaml``)::

    train_CT_gt_label/imagesTr/<case>_0000.nii.gz     labelled CT (true labels)  + labelsTr/<case>.nii.gz
    train_CT_pseudolabel/imagesTr/<case>_0000.nii.gz  CT whose labels carry simulated pseudo-label errors
    train_MRI_unlabeled/LLD-MMRI/<patient>_<tag>_0000.nii.gz   8 sequences per patient (LLD-MMR tags)
    train_MRI_unlabeled/AMOS/amos_XXXX_0000.nii.gz    single MR volumes of mixed sequences
    val_MRI/imagesVal/<case>_0000.nii.gz              labelled MR over all sequences + labelsVal/
    dataset.json                                      manifest: phantom_ct_manual, _ct_pseudo, _mr_val
    diagnostics/                                      the truth, which the method never reads:
        labels/<subset>/<case>.nii.gz                 true label on the exact grid (and z order) of the image
        tissue/<subset>/<case>.nii.gz                 tissue map (:class:`.anatomy.Tissue` ids), same grid
        truth.json                                    per case: geometry, motion, z-flip, misalignment,
                                                      organ volumes (mL), pseudo-label errors; per set:
                                                      z-flipped patients, misaligned sequences

Subset names in ``diagnostics`` are those of ``params/data/phantom.yaml``: ``ct_manual``,
``ct_pseudo``, ``lld_mmr``, ``amos_mr``, ``mr_val``.

Geometry. Every image has identity direction (LPS), its own spacing and field of view, and an origin
in scanner coordinates: a patient lies somewhere on the table (``placement``), and between the
sequences of one LLD-MMR session the patient moves rigidly and breathes (organs shift along z by a
per-organ fraction of ``breath_mm``). ``world = R (body - c) + c + t + placement`` with ``R`` from
``rotation_deg_xyz`` (``Rz @ Ry @ Rx``), ``c`` = ``center_mm`` (body frame), ``t`` =
``translation_mm``; the 4x4 ``world_from_body`` is stored too. DCE phases move 0-5 mm, T2W/DWI more;
``misaligned_fraction`` of the non-T1W sequences (OP always with IP, one dual-echo acquisition) are
badly misaligned (15-30 mm, 5-10 degrees). ``zflip_fraction`` of the patients are stored with every
sequence's voxel array reversed along z and the header unchanged (the LLD-MMR defect).

Determinism: every random draw comes from ``numpy.random.default_rng([seed, subset, case, stream])``;
the gzip streams written by ITK carry no time stamp, so the same params give byte-identical files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from flarelib.config import Params, params_to_dict
from flarelib.data.phantom import anatomy as A
from flarelib.data.phantom.marker import clear_marker, write_marker
from flarelib.data.phantom.render import MR_SEQUENCES, render_ct, render_mr
from flarelib.errors import FlareInputError
from flarelib.io import Volume, write_image
from flarelib.labels import ORGANS, SEQUENCES
from flarelib.params_cli import add_params_arguments, params_from_args
from flarelib.paths import atomic_write_text, data_root

__all__ = ["LAYOUT", "SUBSETS", "GenerateReport", "add_cli", "generate", "load_truth", "run"]

#: Subset names (as in params/data/phantom.yaml), in generation order; the index seeds each subset.
SUBSETS: tuple[str, ...] = ("ct_manual", "ct_pseudo", "lld_mmr", "amos_mr", "mr_val")

#: Image / label file templates per subset, relative to the output folder (``{case}`` = case id).
LAYOUT: dict[str, dict[str, str | None]] = {
    "ct_manual": {
        "images": "train_CT_gt_label/imagesTr/{case}_0000.nii.gz",
        "labels": "train_CT_gt_label/labelsTr/{case}.nii.gz",
    },
    "ct_pseudo": {
        "images": "train_CT_pseudolabel/imagesTr/{case}_0000.nii.gz",
        "labels": "train_CT_pseudolabel/labelsTr/{case}.nii.gz",
    },
    "lld_mmr": {"images": "train_MRI_unlabeled/LLD-MMRI/{case}_0000.nii.gz", "labels": None},
    "amos_mr": {"images": "train_MRI_unlabeled/AMOS/{case}_0000.nii.gz", "labels": None},
    "mr_val": {"images": "val_MRI/imagesVal/{case}_0000.nii.gz", "labels": "val_MRI/labelsVal/{case}.nii.gz"},
}
DIAGNOSTICS = "diagnostics"

#: Acquisition groups: sequences of a group share one grid (one 3-D acquisition / one echo train).
SEQUENCE_GROUP: dict[str, str] = {
    "T1W": "dce",
    "EAP": "dce",
    "PVP": "dce",
    "DP": "dce",
    "IP": "dixon",
    "OP": "dixon",
    "T2W": "t2",
    "DWI": "dwi",
}
#: Spacing multipliers (z, y, x) of each group relative to ``phantom.mr_spacing_zyx``.
GROUP_SPACING: dict[str, tuple[float, float, float]] = {
    "dce": (1.0, 1.0, 1.0),
    "dixon": (1.5, 1.0, 1.0),
    "t2": (2.0, 1.0, 1.0),
    "dwi": (2.0, 1.75, 1.75),
}
#: Motion between the sequences of a session: (max translation mm, max rotation deg, max |breath| mm).
MOTION: dict[str, tuple[float, float, float]] = {
    "T1W": (1.5, 0.8, 2.0),
    "EAP": (2.5, 1.2, 5.0),
    "PVP": (2.5, 1.2, 5.0),
    "DP": (2.5, 1.2, 5.0),
    "IP": (3.5, 1.5, 6.0),
    "T2W": (7.0, 3.0, 10.0),
    "DWI": (7.0, 3.0, 10.0),
}
#: Badly misaligned sequences: translation 15-30 mm, rotation 5-10 degrees.
MISALIGNED_MM = (15.0, 30.0)
MISALIGNED_DEG = (5.0, 10.0)
#: Mix of sequences drawn for the AMOS-like volumes.
AMOS_SEQUENCES = ("T1W", "T2W", "PVP", "DP", "IP", "OP", "T2W", "T1W")

_MOTION_CENTER = np.array([0.0, 0.0, 40.0])  # body frame, mm
_SERIAL = 10_000  # stream index of set-level draws


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def _rng(seed: int, subset: str, case: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SUBSETS.index(subset), int(case), int(stream)])


def case_ids(subset: str, n: int) -> list[str]:
    """Case ids of a subset (LLD-MMR: patient ids, the files add ``_<tag>``)."""
    fmt = {
        "ct_manual": "FLARE22_Tr_{:04d}",
        "ct_pseudo": "FLARE23_Ps_{:04d}",
        "lld_mmr": "MR-{:04d}",
        "amos_mr": "amos_{:04d}",
        "mr_val": "MRval_{:04d}",
    }[subset]
    return [fmt.format(i + 1) for i in range(n)]


def _count(fraction: float, n: int, minimum: int = 0) -> int:
    k = int(np.floor(fraction * n + 0.5))
    return int(min(n, max(k, minimum if n > 0 and fraction > 0 else 0)))


def _world_from_body(rot_deg, trans_mm, placement) -> np.ndarray:
    m = np.eye(4)
    r = A.rotation(*rot_deg)
    m[:3, :3] = r
    m[:3, 3] = -r @ _MOTION_CENTER + _MOTION_CENTER + np.asarray(trans_mm) + np.asarray(placement)
    return m


def _grid(lo_xyz, hi_xyz, spacing_zyx) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Shape (z, y, x) and origin (x, y, z) of the grid covering the world box [lo, hi]."""
    sp_xyz = np.asarray(spacing_zyx[::-1], dtype=np.float64)
    lo, hi = np.asarray(lo_xyz, float), np.asarray(hi_xyz, float)
    n = np.maximum(np.ceil((hi - lo) / sp_xyz).astype(int) + 1, 1)
    origin = np.round((lo + hi) / 2 - (n - 1) * sp_xyz / 2, 2).astype(np.float32)  # NIfTI stores float32
    return (int(n[2]), int(n[1]), int(n[0])), tuple(float(v) for v in origin)


def _body_extent(p: A.Patient) -> dict[str, float]:
    """Approximate body half-extents (body frame, mm)."""
    sx, sy, _ = p.body_scale
    fat, mus = p.fat_mm, p.muscle_mm
    return {
        "hx": (140 * 1.04 + 1.25 * mus + 1.6 * fat + 3) * sx,
        "hy_ant": (90 * 1.04 + 0.7 * mus + fat + 3) * sy,
        "hy_post": (p.table_y + 10) * sy,
    }


def _mr_z_range(p: A.Patient, rng: np.random.Generator) -> tuple[float, float]:
    """MR abdomen field of view along z (body frame): lung bases above the liver dome down to below the
    lower kidney pole."""
    sz = p.body_scale[2]
    top = p.dome_r * sz + rng.uniform(24, 40)
    lower_pole = min(k.center[2] - 0.95 * k.semi[2] for k in p.kidneys) * sz
    return lower_pole - rng.uniform(12, 26), top


def _spacing(base_zyx, group: str, scale: float) -> tuple[float, float, float]:
    mult = GROUP_SPACING[group]
    out = (base_zyx[0] * mult[0], base_zyx[1] * mult[1] / scale, base_zyx[2] * mult[2] / scale)
    return tuple(float(np.float32(round(v, 4))) for v in out)


def _organ_volumes_ml(label: np.ndarray, spacing_zyx) -> dict[str, float]:
    counts = np.bincount(label.ravel(), minlength=14)
    vox_ml = float(np.prod(spacing_zyx)) / 1000.0
    return {ORGANS[i]: round(float(counts[i]) * vox_ml, 2) for i in ORGANS}


def _to_int16(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------------------------------
# Pseudo-label errors
# --------------------------------------------------------------------------------------------------

_BALL6 = ndimage.generate_binary_structure(3, 1)
_ISLAND_TISSUES = [
    int(t)
    for t in (
        A.Tissue.VISCERAL_FAT,
        A.Tissue.BOWEL_WALL,
        A.Tissue.BOWEL_FLUID,
        A.Tissue.MUSCLE,
        A.Tissue.COLON_CONTENT,
    )
]


def pseudo_label_errors(
    label: np.ndarray, tissue: np.ndarray, rng: np.random.Generator, *, force_missed: bool = False
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """A copy of ``label`` (z, y, x) with realistic pseudo-label errors, and the list of errors.

    Errors: 1-voxel boundary erosion or dilation (6-connected; dilation only into background) of 2-4
    organs, one missed small organ (adrenal, gallbladder or esophagus; always when ``force_missed``,
    else with probability 0.6), and 1-3 spurious islands (small balls of an organ's id in the
    soft-tissue background (fat, bowel, muscle), away from that organ). ``tissue`` is the tissue map.
    """
    out = label.copy()
    errors: list[dict[str, Any]] = []
    present = [int(o) for o in np.unique(out) if o > 0]
    for organ in rng.choice(present, size=min(len(present), int(rng.integers(2, 5))), replace=False):
        organ = int(organ)
        m = out == organ
        if rng.random() < 0.5:
            er = ndimage.binary_erosion(m, _BALL6)
            if er.sum() < 0.4 * m.sum():
                continue
            out[m & ~er] = 0
            errors.append({"kind": "erosion", "organ": organ, "voxels": int((m & ~er).sum())})
        else:
            grow = ndimage.binary_dilation(m, _BALL6) & (out == 0)
            out[grow] = organ
            errors.append({"kind": "dilation", "organ": organ, "voxels": int(grow.sum())})
    small = [o for o in (7, 8, 9, 10) if np.any(out == o)]
    if small and (force_missed or rng.random() < 0.6):
        organ = int(rng.choice(small))
        n = int((out == organ).sum())
        out[out == organ] = 0
        errors.append({"kind": "missed", "organ": organ, "voxels": n})
    soft = np.isin(tissue, _ISLAND_TISSUES) & (label == 0)
    for _ in range(int(rng.integers(1, 4))):
        organ = int(rng.choice([1, 3, 4, 11, 12]))
        where = np.argwhere(label == organ)
        centre = where.mean(axis=0) if len(where) else np.zeros(3)
        for _try in range(2000):
            z, y, x = (int(rng.integers(n)) for n in out.shape)
            far = np.linalg.norm(np.array([z, y, x]) - centre) > 12
            if soft[z, y, x] and far and 1 <= z < out.shape[0] - 1:
                break
        else:
            continue
        sl = (slice(z, z + 2), slice(max(y - 1, 0), y + 2), slice(max(x - 1, 0), x + 2))
        patch = out[sl]
        grow = soft[sl]
        patch[grow] = organ
        errors.append(
            {"kind": "island", "organ": organ, "voxels": int(grow.sum()), "at_index_zyx": [z, y, x]}
        )
    return out, errors


# --------------------------------------------------------------------------------------------------
# One volume
# --------------------------------------------------------------------------------------------------


def _render_one(p: A.Patient, shape, spacing, origin, w_from_b, breath, *, couch=False):
    s = A.make_sampler(p, shape, spacing, origin, w_from_b, breath)
    tissue, label = A.evaluate(p, s, couch=couch)
    return tissue, label


def _volume_record(subset, case, seq, modality, shape, spacing, origin, label, extra) -> dict[str, Any]:
    rec = {
        "subset": subset,
        "case": case,
        "modality": modality,
        "sequence": seq,
        "image": LAYOUT[subset]["images"].format(case=case),
        "label": None if LAYOUT[subset]["labels"] is None else LAYOUT[subset]["labels"].format(case=case),
        "true_label": f"{DIAGNOSTICS}/labels/{subset}/{case}.nii.gz",
        "tissue": f"{DIAGNOSTICS}/tissue/{subset}/{case}.nii.gz",
        "shape_zyx": [int(v) for v in shape],
        "spacing_zyx": [float(v) for v in spacing],
        "origin_xyz": [float(v) for v in origin],
        "n_slices": int(shape[0]),
        "organ_volumes_ml": _organ_volumes_ml(label, spacing),
    }
    rec.update(extra)
    return rec


def _write_volume(
    out: Path,
    rec: dict[str, Any],
    image: np.ndarray,
    tissue: np.ndarray,
    label: np.ndarray,
    written_label: np.ndarray | None,
    zflip: bool,
) -> None:
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


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------


def _ct_case(params: Params, out: Path, subset: str, index: int, long_ct: bool) -> list[dict[str, Any]]:
    ph, seed = params.phantom, params.run.seed
    case = case_ids(subset, index + 1)[index]
    p = A.make_patient(_rng(seed, subset, index, 0))
    rng = _rng(seed, subset, index, 1)
    ext = _body_extent(p)
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
    shape, origin = _grid(lo, hi, spacing)
    w_from_b = _world_from_body((0, 0, 0), (0, 0, 0), placement)
    tissue, label = _render_one(p, shape, spacing, origin, w_from_b, 0.0, couch=True)
    rrng = _rng(seed, subset, index, 2)
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
            label, tissue, _rng(seed, subset, index, 3), force_missed=index == 0
        )
        extra["pseudo_label_errors"] = errors
    rec = _volume_record(subset, case, None, "CT", shape, spacing, origin, label, extra)
    _write_volume(out, rec, _to_int16(hu), tissue, label, written, zflip=False)
    return [rec]


def _draw_motion(rng: np.random.Generator, seq: str, misaligned: bool) -> dict[str, Any]:
    if misaligned:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        trans = direction * rng.uniform(*MISALIGNED_MM)
        axis = int(rng.integers(3))
        rot = rng.uniform(-1.5, 1.5, 3)
        rot[axis] = rng.choice([-1, 1]) * rng.uniform(*MISALIGNED_DEG)
        breath = rng.uniform(-8, 8)
    else:
        t_max, r_max, b_max = MOTION[seq]
        trans = rng.uniform(-t_max, t_max, 3)
        rot = rng.uniform(-r_max, r_max, 3)
        lo = 0.3 * b_max if seq in ("T2W", "DWI") else 0.0
        breath = rng.choice([-1, 1]) * rng.uniform(lo, b_max)
    return {
        "rotation_deg_xyz": [round(float(v), 4) for v in rot],
        "translation_mm": [round(float(v), 4) for v in trans],
        "center_mm": _MOTION_CENTER.tolist(),
        "breath_mm": round(float(breath), 4),
        "misaligned": bool(misaligned),
    }


def _mr_geometry(
    p: A.Patient,
    rng: np.random.Generator,
    base_spacing,
    scale: float,
    group: str,
    z_range: tuple[float, float] | None = None,
):
    ext = _body_extent(p)
    z_lo, z_hi = z_range if z_range is not None else _mr_z_range(p, rng)
    spacing = _spacing(base_spacing, group, scale)
    lo = np.array([-(ext["hx"] + rng.uniform(6, 18)), -(ext["hy_ant"] + rng.uniform(6, 16)), z_lo])
    hi = np.array([ext["hx"] + rng.uniform(6, 18), ext["hy_post"] + rng.uniform(6, 16), z_hi])
    return lo, hi, spacing


def _lld_case(params: Params, out: Path, index: int, zflip: bool, misaligned: frozenset[str]):
    ph, seed, subset = params.phantom, params.run.seed, "lld_mmr"
    patient = case_ids(subset, index + 1)[index]
    p = A.make_patient(_rng(seed, subset, index, 0))
    rng = _rng(seed, subset, index, 1)
    placement = np.array([rng.normal(0, 8), rng.normal(0, 8), rng.uniform(-300, 300)])
    boxes = {}
    for group in ("dce", "dixon", "t2", "dwi"):
        lo, hi, spacing = _mr_geometry(p, rng, ph.mr_spacing_zyx, ph.scale, group)
        boxes[group] = (*_grid(lo + placement, hi + placement, spacing), spacing)
    motions = {seq: _draw_motion(rng, seq, seq in misaligned) for seq in MR_SEQUENCES if seq != "OP"}
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
        w_from_b = _world_from_body(mot["rotation_deg_xyz"], mot["translation_mm"], placement)
        if seq == "OP":
            tissue, label = cache["IP"]
        else:
            tissue, label = _render_one(p, shape, spacing, origin, w_from_b, mot["breath_mm"])
            if seq == "IP":
                cache["IP"] = (tissue, label)
        rrng = _rng(seed, subset, index, 2 + v)
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
        rec = _volume_record(subset, case, seq, "MR", shape, spacing, origin, label, extra)
        _write_volume(out, rec, _to_int16(img), tissue, label, None, zflip=zflip)
        records.append(rec)
    return records


def _single_mr_case(params: Params, out: Path, subset: str, index: int, seq: str):
    ph, seed = params.phantom, params.run.seed
    case = case_ids(subset, index + 1)[index]
    p = A.make_patient(_rng(seed, subset, index, 0))
    rng = _rng(seed, subset, index, 1)
    placement = np.array([rng.normal(0, 8), rng.normal(0, 8), rng.uniform(-300, 300)])
    group = SEQUENCE_GROUP[seq]
    z_range = None
    if subset == "amos_mr":  # AMOS MR: abdomen down to the iliac crests
        z_range = (-rng.uniform(120, 170) * p.body_scale[2], p.dome_r * p.body_scale[2] + rng.uniform(20, 40))
    lo, hi, spacing = _mr_geometry(p, rng, ph.mr_spacing_zyx, ph.scale, group, z_range)
    shape, origin = _grid(lo + placement, hi + placement, spacing)
    mot = _draw_motion(rng, "T1W", False)
    w_from_b = _world_from_body(mot["rotation_deg_xyz"], mot["translation_mm"], placement)
    tissue, label = _render_one(p, shape, spacing, origin, w_from_b, mot["breath_mm"])
    rrng = _rng(seed, subset, index, 2)
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
    rec = _volume_record(subset, case, seq, "MR", shape, spacing, origin, label, extra)
    _write_volume(out, rec, _to_int16(img), tissue, label, label if subset == "mr_val" else None, zflip=False)
    return [rec]


# --------------------------------------------------------------------------------------------------
# The whole set
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GenerateReport:
    """What :func:`generate` wrote. ``seconds`` is wall time (not written to any file)."""

    out_dir: Path
    seconds: float
    counts: dict[str, int]  # volumes per subset
    n_files: int
    ct_slices: dict[str, int]  # CT case -> number of slices
    long_ct_cases: list[str]
    zflip_patients: list[str]
    misaligned: list[str]  # LLD case ids (<patient>_<tag>)
    organ_volume_ranges_ml: dict[str, tuple[float, float]]  # over the CT cases (true labels)

    def summary(self) -> str:
        lines = [f"phantom written to {self.out_dir} in {self.seconds:.1f} s: {self.n_files} files"]
        lines.append("  volumes: " + ", ".join(f"{k} {v}" for k, v in self.counts.items()))
        lines.append(
            f"  CT slices: {min(self.ct_slices.values(), default=0)}-"
            f"{max(self.ct_slices.values(), default=0)}; long CT: {', '.join(self.long_ct_cases) or '-'}"
        )
        lines.append(f"  z-flipped patients: {', '.join(self.zflip_patients) or '-'}")
        lines.append(f"  misaligned sequences: {', '.join(self.misaligned) or '-'}")
        return "\n".join(lines)


def _plan(params: Params) -> dict[str, Any]:
    """Set-level draws: long CTs, z-flipped patients, misaligned sequences, sequences of single MR."""
    ph, seed = params.phantom, params.run.seed
    plan: dict[str, Any] = {}
    for subset, n in (("ct_manual", ph.n_ct_manual), ("ct_pseudo", ph.n_ct_pseudo)):
        rng = _rng(seed, subset, _SERIAL, 0)
        k = _count(ph.long_ct_fraction, n, minimum=1 if subset == "ct_pseudo" else 0)
        plan[f"long_{subset}"] = sorted(int(i) for i in rng.choice(n, size=k, replace=False)) if n else []
    n = ph.n_lld_patients
    rng = _rng(seed, "lld_mmr", _SERIAL, 0)
    k = _count(ph.zflip_fraction, n, minimum=1 if n >= 3 else 0)
    plan["zflip"] = sorted(int(i) for i in rng.choice(n, size=k, replace=False)) if n else []
    candidates = [(i, s) for i in range(n) for s in MR_SEQUENCES if s not in ("T1W", "OP")]
    k = _count(ph.misaligned_fraction, len(candidates), minimum=1 if n >= 2 else 0)
    picks = rng.choice(len(candidates), size=k, replace=False) if k else []
    mis: dict[int, set[str]] = {}
    for c in picks:
        i, s = candidates[int(c)]
        mis.setdefault(i, set()).update({"IP", "OP"} if s == "IP" else {s})
    plan["misaligned"] = {i: frozenset(v) for i, v in mis.items()}
    rng = _rng(seed, "amos_mr", _SERIAL, 0)
    plan["amos_seq"] = [str(s) for s in rng.choice(AMOS_SEQUENCES, size=ph.n_amos)] if ph.n_amos else []
    plan["val_seq"] = [MR_SEQUENCES[i % len(MR_SEQUENCES)] for i in range(ph.n_mr_val)]
    return plan


def _jobs(params: Params, plan: dict[str, Any]) -> list[tuple]:
    ph = params.phantom
    jobs: list[tuple] = []
    for subset, n in (("ct_manual", ph.n_ct_manual), ("ct_pseudo", ph.n_ct_pseudo)):
        jobs += [("ct", subset, i, i in plan[f"long_{subset}"]) for i in range(n)]
    jobs += [
        ("lld", "lld_mmr", i, i in plan["zflip"], plan["misaligned"].get(i, frozenset()))
        for i in range(ph.n_lld_patients)
    ]
    jobs += [("single", "amos_mr", i, plan["amos_seq"][i]) for i in range(ph.n_amos)]
    jobs += [("single", "mr_val", i, plan["val_seq"][i]) for i in range(ph.n_mr_val)]
    return jobs


def _run_job(params: Params, out: Path, job: tuple) -> list[dict[str, Any]]:
    kind = job[0]
    if kind == "ct":
        return _ct_case(params, out, job[1], job[2], job[3])
    if kind == "lld":
        return _lld_case(params, out, job[2], job[3], job[4])
    return _single_mr_case(params, out, job[1], job[2], job[3])


def _job_volumes(job: tuple) -> int:
    return len(MR_SEQUENCES) if job[0] == "lld" else 1


def _manifest_datasets(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    identity = {str(i): i for i in range(14)}
    labels = {"0": "background", **{str(k): v for k, v in ORGANS.items()}}
    common = {
        "labels": labels,
        "label_to_flare": identity,
        "source_labels_mapped_to_background": [],
        "flare_not_annotated": [],
        "flare_not_annotated_names": [],
        "shape_order": "x, y, z (NIfTI i, j, k) as in ../shared/data/dataset.json; spacing_mm likewise",
    }
    info = {
        "phantom_ct_manual": (
            "ct_manual",
            "train_CT_gt_label",
            "CT",
            "portal-venous CT (procedural phantom)",
            "true labels of the procedural phantom",
        ),
        "phantom_ct_pseudo": (
            "ct_pseudo",
            "train_CT_pseudolabel",
            "CT",
            "portal-venous CT (procedural phantom)",
            "simulated pseudo-labels: boundary erosion/dilation, a missed small organ, "
            "spurious islands (true labels in diagnostics/)",
        ),
        "phantom_mr_val": (
            "mr_val",
            "val_MRI",
            "MR",
            "mixed: T1W, EAP, PVP, DP, T2W, DWI, IP, OP (per case)",
            "true labels of the procedural phantom",
        ),
    }
    out = {}
    for name, (subset, folder, modality, sequence, source) in info.items():
        cases = []
        for r in records:
            if r["subset"] != subset:
                continue
            c = {
                "id": r["case"],
                "image": r["image"],
                "label": r["label"],
                "shape": r["shape_zyx"][::-1],
                "spacing_mm": r["spacing_zyx"][::-1],
                "n_slices": r["n_slices"],
            }
            if modality == "CT":
                c["long_ct"] = r["long_ct"]
            else:
                c["sequence"] = r["sequence"]
                c["sequence_tag"] = SEQUENCES[r["sequence"]]
            cases.append(c)
        out[name] = {
            "folder": folder,
            "modality": modality,
            "sequence": sequence,
            "label_source": source,
            **common,
            "cases": cases,
        }
    return out


def _write_manifest(path: Path, datasets: dict[str, Any], generated_by: str) -> None:
    try:
        from flarelib.data.manifest import write_manifest
    except ImportError:  # pragma: no cover - manifest module not available
        doc = {
            "schema_version": 1,
            "generated_by": generated_by,
            "flare24_labels": {str(k): v for k, v in ORGANS.items()},
            "datasets": datasets,
        }
        atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
        return
    write_manifest(path, datasets, generated_by=generated_by)


_TOP_LEVEL = ("train_CT_gt_label", "train_CT_pseudolabel", "train_MRI_unlabeled", "val_MRI", DIAGNOSTICS)


def _clear_previous(out: Path) -> None:
    """Remove an earlier phantom from ``out`` (its layout folders and manifest only), so that no stale
    case survives a regeneration with fewer cases. Refuses a folder holding a data set that is not one."""
    present = [name for name in (*_TOP_LEVEL, "dataset.json") if (out / name).exists()]
    if not present:
        return
    truth = out / DIAGNOSTICS / "truth.json"
    try:
        ours = json.loads(truth.read_text()).get("generated_by", "").startswith("flarelib.data.phantom")
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise FlareInputError(
            out,
            f"holds a data set that the phantom generator did not write ({', '.join(present)})",
            "choose an empty or new --out folder",
        )
    import shutil

    for name in _TOP_LEVEL:
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "dataset.json").unlink(missing_ok=True)


def generate(
    params: Params, out_dir: str | os.PathLike, *, progress: bool = True, workers: int = 1
) -> GenerateReport:
    """Write the phantom data set for ``params`` (sizes: ``params.phantom``; seed: ``params.run.seed``).

    ``workers`` > 1 generates cases in that many processes; the files are the same either way.
    Returns a :class:`GenerateReport`. An earlier phantom in ``out_dir`` is replaced (its layout
    folders, ``dataset.json`` and ``diagnostics/``; nothing else is touched); a folder holding another
    data set is refused (:class:`FlareInputError`).
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    _clear_previous(out)
    clear_marker(out)  # a half-written phantom must not look complete (flarelib.data.prepare.ensure_data)
    out.mkdir(parents=True, exist_ok=True)
    ph = params.phantom
    for name in ("n_ct_manual", "n_ct_pseudo", "n_lld_patients", "n_amos", "n_mr_val"):
        if getattr(ph, name) < 0:
            raise FlareInputError(f"phantom.{name}", "must be >= 0", f"set phantom.{name} to a count")
    if ph.scale <= 0:
        raise FlareInputError("phantom.scale", "must be > 0", "use e.g. 1.0")
    plan = _plan(params)
    jobs = _jobs(params, plan)
    total = sum(_job_volumes(j) for j in jobs)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="phantom", unit="vol")
    results: dict[int, list[dict[str, Any]]] = {}
    try:
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = {pool.submit(_run_job, params, out, job): n for n, job in enumerate(jobs)}
                for fut in as_completed(futs):
                    results[futs[fut]] = fut.result()
                    if bar is not None:
                        bar.update(_job_volumes(jobs[futs[fut]]))
        else:
            for n, job in enumerate(jobs):
                results[n] = _run_job(params, out, job)
                if bar is not None:
                    bar.update(_job_volumes(job))
    finally:
        if bar is not None:
            bar.close()
    records = [r for n in range(len(jobs)) for r in results[n]]

    generated_by = f"flarelib.data.phantom (seed {params.run.seed}, profile {params.run.profile})"
    _write_manifest(out / "dataset.json", _manifest_datasets(records), generated_by)
    lld_ids = case_ids("lld_mmr", ph.n_lld_patients)
    zflip = [lld_ids[i] for i in plan["zflip"]]
    misaligned = [r["case"] for r in records if r["subset"] == "lld_mmr" and r["motion"]["misaligned"]]
    truth = {
        "generated_by": generated_by,
        "seed": params.run.seed,
        "profile": params.run.profile,
        "phantom": params_to_dict(ph),
        "conventions": {
            "arrays": "(z, y, x); spacing_zyx mm; origin_xyz LPS mm; direction identity (LPS)",
            "motion": "world = R (body - center_mm) + center_mm + translation_mm + placement; "
            "R = Rz @ Ry @ Rx of rotation_deg_xyz; world_from_body is that 4x4",
            "body": "body frame = the anatomical frame of flarelib.data.phantom.anatomy scaled by body_scale",
            "breath_mm": "organs shift along +z by factor * breath_mm (liver/spleen 1, kidneys 0.6, ...)",
            "zflip": "image, true label and tissue arrays reversed along z, header unchanged",
            "labels": "true labels on the exact grid (and voxel order) of each written image",
        },
        "breath_factors": A.BREATH_FACTORS,
        "tissues": {int(t): t.name.lower() for t in A.Tissue},
        "fat_tissues": list(A.FAT_TISSUES),
        "lld_mmr": {"patients": lld_ids, "zflip_patients": zflip, "misaligned": misaligned},
        "cases": {f"{r['subset']}/{r['case']}": r for r in records},
    }
    atomic_write_text(out / DIAGNOSTICS / "truth.json", json.dumps(truth, indent=1) + "\n")

    ct = [r for r in records if r["modality"] == "CT"]
    ranges = {}
    for organ in ORGANS.values():
        vals = [r["organ_volumes_ml"][organ] for r in ct]
        if vals:
            ranges[organ] = (min(vals), max(vals))
    counts = {s: sum(r["subset"] == s for r in records) for s in SUBSETS}
    n_files = sum(1 for f in out.rglob("*") if f.is_file())
    return GenerateReport(
        out_dir=out,
        seconds=time.perf_counter() - t0,
        counts=counts,
        n_files=n_files,
        ct_slices={r["case"]: r["n_slices"] for r in ct},
        long_ct_cases=[r["case"] for r in ct if r["long_ct"]],
        zflip_patients=zflip,
        misaligned=misaligned,
        organ_volume_ranges_ml=ranges,
    )


def load_truth(data_dir: str | os.PathLike) -> dict[str, Any]:
    """``diagnostics/truth.json`` of a generated phantom (raises FlareInputError when missing)."""
    path = Path(data_dir) / DIAGNOSTICS / "truth.json"
    if not path.is_file():
        raise FlareInputError(
            path, "phantom diagnostics not found", "generate the phantom with `flarelib generate`"
        )
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------

COMMAND = "generate"
_HELP = "write the procedural multi-sequence phantom (FLARE24 layout + diagnostics)"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_params_arguments(parser)
    parser.add_argument("--out", metavar="DIR", help="output folder (default: the params' data.root)")
    parser.add_argument("--workers", type=int, default=1, help="processes (output is the same for any value)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``generate`` on an argparse subparsers object; its handler is ``args.func``."""
    parser = subparsers.add_parser(COMMAND, help=_HELP, description=_HELP)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``flarelib generate``: 0 on success, 2 on bad input."""
    try:
        params = params_from_args(args)
        out = Path(args.out) if args.out else data_root(params)
        if args.workers < 1:
            raise FlareInputError("--workers", "must be >= 1", "pass --workers 1 or more")
        report = generate(params, out, progress=not args.no_progress, workers=args.workers)
        write_marker(params, out)  # so that `flarelib train/run` use it rather than generate it again
    except FlareInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flarelib.data.phantom.generate``: the ``generate`` command on its own."""
    parser = argparse.ArgumentParser(prog="python -m flarelib.data.phantom.generate", description=_HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
