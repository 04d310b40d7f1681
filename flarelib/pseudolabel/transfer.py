"""T1W -> multi-sequence label transfer and the kidney-DSC filter (STUDY.md "Stage 2" 1-3; paper
section 2.4 i-ii, Fig. 4).

Per LLD-MMR-like patient (volumes of one session, keyed by sequence short name):

1. Registration (:func:`register_sequences`), every transform mapping a T1W-space world point (LPS
   mm) to the sequence's (SimpleITK's fixed -> moving convention, :mod:`flarelib.registration`):

   * EAP, PVP, DP, IP: rigid, Otsu body mask of the sequence onto the T1W's (``transfer.body_mask``;
     the authors' variant, Otsu below the 80th percentile, for C-pre/A/V only);
   * OP: IP's transform (one dual-echo acquisition);
   * T2W, DWI: rigid, on intensities (Mattes mutual information) onto the *registered* EAP (the EAP
     resampled onto the T1W grid through its transform), so the result maps T1W space to theirs.
2. The filter (:func:`kidney_dscs`): every registered sequence but T1W and OP is resampled onto the
   T1W grid; per side the T1W kidney pseudo-label is dilated (``kidney_dilate_iterations``; liver,
   spleen, adrenals and duodenum excluded, and voxels outside the sequence's field of view), Otsu
   splits the intensities inside (IP keeps the dark side, the others the bright one), an opening and
   the largest component give the coarse kidney (:func:`coarse_kidney`); its Dice with the T1W
   kidney label is that side's DSC.
3. Decision (:func:`decide`): EAP/PVP/DP accepted if one kidney DSC > 0.85; T2W/DWI/IP accepted if
   both > 0.8 and one > 0.85; OP follows IP. Accepted sequences get the whole T1W pseudo-label
   resampled onto their own grid (nearest neighbour, through the transform:
   :func:`transfer_label`); rejected ones stay unlabelled.

Volumes are used as stored (world geometry from the headers): the T1W pseudo-label must lie on the
T1W image's grid, as stage 1's predictions do. A patient stored z-flipped (the LLD-MMR defect) is
flipped in every sequence alike, so the rigid transforms between its sequences stay rigid.

:func:`transfer_patients` runs patients in parallel processes and returns a :class:`TransferTable`
(one :class:`SequenceRecord` per sequence: transform, DSCs, decision, reason), saved as CSV + JSON.
Arrays are (z, y, x); spacings in mm.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from flarelib.config import RegistrationParams, TransferParams
from flarelib.errors import FlareInputError
from flarelib.evaluate.dice import dice
from flarelib.io import Volume, read_image, read_label, same_grid, write_image
from flarelib.preprocess import body_mask
from flarelib.registration import (
    apply_transform,
    register_rigid,
    register_translation,
    transform_from_dict,
    transform_to_dict,
)

__all__ = [
    "DCE_SEQUENCES",
    "INTENSITY_SEQUENCES",
    "KIDNEYS",
    "LABELS_DIR",
    "MASK_SEQUENCES",
    "REJECTED_DIR",
    "STRICT_SEQUENCES",
    "Decision",
    "KidneyView",
    "PatientTransfer",
    "SequenceRecord",
    "SequenceRegistration",
    "TransferTable",
    "coarse_kidney",
    "decide",
    "kidney_dscs",
    "register_sequences",
    "sequence_body_mask",
    "transfer_label",
    "transfer_patient",
    "transfer_patients",
]

#: Sequences registered to the T1W by body masks (paper: "clear body contours").
MASK_SEQUENCES: tuple[str, ...] = ("EAP", "PVP", "DP", "IP")
#: Sequences registered on intensities to the registered ``transfer.intensity_reference`` (EAP).
INTENSITY_SEQUENCES: tuple[str, ...] = ("T2W", "DWI")
#: Filter groups: one kidney > ``dce_accept_one`` suffices for the dynamic phases ...
DCE_SEQUENCES: tuple[str, ...] = ("EAP", "PVP", "DP")
#: ... the others need both kidneys > ``other_accept_both`` and one > ``other_accept_one`` (OP: IP's).
STRICT_SEQUENCES: tuple[str, ...] = ("T2W", "DWI", "IP", "OP")
#: FLARE ids of the kidneys: side -> id.
KIDNEYS: dict[str, int] = {"right": 2, "left": 13}
_ORDER = ("T1W", "EAP", "PVP", "DP", "T2W", "DWI", "IP", "OP")


# --------------------------------------------------------------------------------------------------
# Body masks and registration
# --------------------------------------------------------------------------------------------------
def sequence_body_mask(vol: Volume, sequence: str, params: TransferParams) -> Volume:
    """Otsu body mask of one sequence (uint8 0/1, same grid): ``params.body_mask`` for the sequences
    in ``params.percentile_sequences`` (the authors' C-pre/A/V), plain Otsu for the others."""
    method = params.body_mask if sequence in params.percentile_sequences else "otsu"
    return body_mask(vol, method, params.otsu_percentile)


@dataclasses.dataclass
class SequenceRegistration:
    """How one sequence was brought into T1W space.

    ``transform`` maps a T1W-space world point (LPS mm) to the sequence's point (so
    ``apply_transform(sequence, transform, t1w)`` resamples the sequence onto the T1W grid).
    ``method``: ``reference`` (T1W, identity), ``masks`` (body masks onto T1W), ``as IP`` (OP),
    ``intensities`` (onto the registered ``registered_to``). ``quality``: Dice of the T1W body
    mask and the sequence's warped one (mask registrations), else None.
    """

    sequence: str
    transform: sitk.Transform
    method: str
    registered_to: str
    quality: float | None = None
    seconds: float = 0.0
    metric_value: float = math.nan


def _identity() -> sitk.Transform:
    return sitk.Euler3DTransform()


def _reg_settings(params: TransferParams, registration: RegistrationParams) -> dict[str, Any]:
    """``register_rigid`` keywords: the registration section, with the transfer's own sampling and
    iterations where set."""
    sampling = params.registration_sampling
    iterations = params.registration_iterations
    return {
        "levels": registration.levels,
        "sampling": registration.sampling_fraction if sampling is None else sampling,
        "iterations": registration.iterations if iterations is None else iterations,
        "seed": registration.seed,
    }


def register_sequences(
    volumes: Mapping[str, Volume],
    params: TransferParams,
    registration: RegistrationParams,
    *,
    masks: Mapping[str, Volume] | None = None,
) -> tuple[dict[str, SequenceRegistration], dict[str, Volume]]:
    """Register a patient's sequences to its T1W (see the module docstring).

    ``volumes``: sequence short name -> image (must hold ``T1W``; any subset of the others).
    ``masks``: body masks already computed (else :func:`sequence_body_mask`). Returns
    ``(registrations, masks)``; sequences that cannot be registered (OP without IP) are left out.
    """
    if "T1W" not in volumes:
        raise FlareInputError(
            None, f"no T1W volume among {sorted(volumes)}", "pass the patient's T1W (C-pre)"
        )
    settings = _reg_settings(params, registration)
    masks = dict(masks or {})
    for seq in ("T1W", *MASK_SEQUENCES):
        if seq in volumes and seq not in masks:
            masks[seq] = sequence_body_mask(volumes[seq], seq, params)
    out: dict[str, SequenceRegistration] = {"T1W": SequenceRegistration("T1W", _identity(), "reference", "-")}
    fixed_mask = masks["T1W"]
    for seq in MASK_SEQUENCES:
        if seq not in volumes:
            continue
        res = register_rigid(
            fixed_mask,
            masks[seq],
            metric="meansquares",
            **settings,
        )
        out[seq] = SequenceRegistration(
            seq, res.transform, "masks", "T1W", res.quality, res.seconds, res.metric_value
        )
    if "OP" in volumes and "IP" in out:
        ip = out["IP"]
        out["OP"] = SequenceRegistration("OP", ip.transform, "as IP", "T1W", ip.quality, 0.0, ip.metric_value)
    todo = [s for s in INTENSITY_SEQUENCES if s in volumes]
    if todo:
        ref_name = params.intensity_reference if params.intensity_reference in out else "T1W"
        t1w = volumes["T1W"]
        ref = volumes[ref_name]
        fixed = ref if ref_name == "T1W" else apply_transform(ref, out[ref_name].transform, t1w)
        for seq in todo:
            t0 = time.perf_counter()
            moving = volumes[seq]
            kwargs: dict[str, Any] = {}
            if params.intensity_initializer == "masks":
                # start from the offset of the body masks' centres (the FOVs of T2W/DWI differ)
                m_mask = sequence_body_mask(moving, seq, params)
                if fixed_mask.array.any() and m_mask.array.any():
                    init = register_translation(fixed_mask, m_mask, by="mask", refine=False)
                    kwargs["initial_transform"] = init.transform
            else:
                kwargs["initializer"] = params.intensity_initializer
            res = register_rigid(
                fixed,
                moving,
                metric=params.intensity_metric,
                mi_bins=registration.mi_bins,
                **settings,
                **kwargs,
            )
            out[seq] = SequenceRegistration(
                seq,
                res.transform,
                "intensities",
                ref_name if ref_name == "T1W" else f"registered {ref_name}",
                None,
                time.perf_counter() - t0,
                res.metric_value,
            )
    return out, masks


def transfer_label(t1w_label: Volume, transform: sitk.Transform, target: Volume) -> Volume:
    """The T1W label resampled onto ``target``'s grid (nearest neighbour, uint8): voxel ``p`` of
    the result holds the T1W label at ``transform^-1(p)`` (``transform``: T1W -> target space)."""
    return apply_transform(t1w_label, transform.GetInverse(), target, is_label=True)


# --------------------------------------------------------------------------------------------------
# The kidney-DSC filter
# --------------------------------------------------------------------------------------------------
def _otsu(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    if values.size < 2 or values.min() == values.max():
        return None
    return float(threshold_otsu(values))


def coarse_kidney(
    image: np.ndarray,
    label: np.ndarray,
    kidney_id: int,
    *,
    dilate_iterations: int = 6,
    exclude_labels: Sequence[int] = (1, 3, 7, 8, 12),
    dark: bool = False,
    opening_iterations: int = 1,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """The coarse kidney of one side in ``image`` (bool, (z, y, x), the grid of ``label``).

    The region is ``label == kidney_id`` dilated ``dilate_iterations`` times (6-connected steps),
    minus the voxels labelled ``exclude_labels`` (and outside ``valid``, e.g. the sequence's field of
    view); Otsu of the image inside it splits bright from dark; the bright side is kept (the dark one
    with ``dark``), opened ``opening_iterations`` times and reduced to its largest 6-connected
    component. Empty when the side has no label or the region is uniform.
    """
    image = np.asarray(image)
    label = np.asarray(label)
    if image.shape != label.shape:
        raise ValueError(f"coarse_kidney: image {image.shape} and label {label.shape} differ in shape")
    kid = label == kidney_id
    empty = np.zeros(label.shape, bool)
    if not kid.any():
        return empty
    region = ndi.binary_dilation(kid, iterations=int(dilate_iterations)) if dilate_iterations > 0 else kid
    if exclude_labels:
        region &= ~np.isin(label, np.asarray(list(exclude_labels)))
    if valid is not None:
        region &= np.asarray(valid, bool)
    t = _otsu(image[region].astype(np.float64))
    if t is None:
        return empty
    fg = region & ((image <= t) if dark else (image > t))
    if opening_iterations > 0 and fg.any():
        fg = ndi.binary_opening(fg, iterations=int(opening_iterations))
    if not fg.any():
        return empty
    return cc3d.largest_k(fg, k=1, connectivity=6) > 0


def kidney_dscs(
    image: np.ndarray,
    label: np.ndarray,
    params: TransferParams,
    *,
    dark: bool = False,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Coarse kidneys of both sides and their Dice with the label's kidneys.

    ``image``: a sequence resampled onto the T1W grid; ``label``: the T1W pseudo-label (same shape).
    Returns ``(coarse, {"right": dsc, "left": dsc})``; ``coarse`` is uint8 with the kidneys' FLARE ids
    (2 right, 13 left). A side absent from both gives NaN (which no threshold accepts).
    """
    coarse = np.zeros(np.shape(label), np.uint8)
    out: dict[str, float] = {}
    for side, kid in KIDNEYS.items():
        mask = coarse_kidney(
            image,
            label,
            kid,
            dilate_iterations=params.kidney_dilate_iterations,
            exclude_labels=params.kidney_exclude_labels,
            dark=dark,
            opening_iterations=params.kidney_opening_iterations,
            valid=valid,
        )
        coarse[mask & (coarse == 0)] = kid
        out[side] = float(dice(mask, np.asarray(label) == kid, empty=math.nan))
    return coarse, out


@dataclasses.dataclass(frozen=True)
class Decision:
    """The filter's verdict on one sequence: ``accepted`` and a one-line ``reason``."""

    accepted: bool
    reason: str


def _gt(value: float | None, threshold: float) -> bool:
    return value is not None and not math.isnan(value) and value > threshold


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def decide(
    sequence: str,
    dsc_right: float | None,
    dsc_left: float | None,
    params: TransferParams,
    *,
    ip: Decision | None = None,
) -> Decision:
    """Accept or reject a registered sequence from its kidney DSCs (STUDY.md "Stage 2" 2).

    EAP/PVP/DP: at least one kidney DSC > ``dce_accept_one``. T2W/DWI/IP: both > ``other_accept_both``
    and at least one > ``other_accept_one``. OP: IP's decision (``ip``). T1W: the reference.
    NaN/None DSCs fail every comparison. Thresholds are strict (``>``), as the paper writes them.
    """
    r, left = _fmt(dsc_right), _fmt(dsc_left)
    if sequence == "T1W":
        return Decision(True, "reference: the T1W pseudo-label itself")
    if sequence == "OP":
        if ip is None:
            return Decision(False, "OP follows IP, which was not registered")
        return Decision(ip.accepted, f"with IP ({'accepted' if ip.accepted else 'rejected'}: {ip.reason})")
    if sequence in DCE_SEQUENCES:
        t = params.dce_accept_one
        ok = _gt(dsc_right, t) or _gt(dsc_left, t)
        verdict = "a kidney" if ok else "no kidney"
        return Decision(ok, f"{verdict} DSC > {t:g} (right {r}, left {left})")
    if sequence in STRICT_SEQUENCES:
        both, one = params.other_accept_both, params.other_accept_one
        both_ok = _gt(dsc_right, both) and _gt(dsc_left, both)
        one_ok = _gt(dsc_right, one) or _gt(dsc_left, one)
        if both_ok and one_ok:
            return Decision(True, f"both kidneys DSC > {both:g} and one > {one:g} (right {r}, left {left})")
        why = [] if both_ok else [f"not both kidneys DSC > {both:g}"]
        if not one_ok:
            why.append(f"no kidney DSC > {one:g}")
        return Decision(False, f"{' and '.join(why)} (right {r}, left {left})")
    raise ValueError(f"decide: unknown sequence {sequence!r}; use one of {list(_ORDER)}")


# --------------------------------------------------------------------------------------------------
# One patient
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SequenceRecord:
    """One row of the transfer table (JSON-ready fields).

    ``decision``: ``reference`` (T1W), ``accept``, ``reject`` or ``missing`` (no volume / not
    registrable). ``zflip``: the patient was z-flipped before registration (the transform then refers
    to the flipped volumes, :func:`transfer_patient`). ``transform``:
    :func:`flarelib.registration.transform_to_dict` of the T1W -> sequence transform. ``label``: the
    transferred label's file (accepted, when written).
    """

    patient: str
    sequence: str
    case: str
    decision: str
    reason: str
    dsc_right: float | None = None
    dsc_left: float | None = None
    registration: str = ""
    registered_to: str = ""
    registration_quality: float | None = None
    registration_seconds: float = 0.0
    transform: dict[str, Any] | None = None
    image: str | None = None
    label: str | None = None
    zflip: bool = False

    @property
    def accepted(self) -> bool:
        """True for the T1W reference and accepted sequences."""
        return self.decision in ("reference", "accept")

    def get_transform(self) -> sitk.Transform | None:
        """The T1W -> sequence transform (None when not registered)."""
        return None if self.transform is None else transform_from_dict(self.transform)


@dataclasses.dataclass
class KidneyView:
    """What the filter saw for one sequence, on the T1W grid (for Fig. 4): the resampled image and
    the coarse kidneys (uint8 ids 2/13; None for T1W and OP)."""

    image: np.ndarray
    coarse: np.ndarray | None


@dataclasses.dataclass
class PatientTransfer:
    """A patient's result: records in sequence order, transferred labels of accepted sequences
    (sequence -> Volume on its own grid; empty when written to files and dropped), wall time, and with
    ``keep_views`` the filter's inputs on the T1W grid (``views``; ``t1w_label`` = the pseudo-label;
    both in the z-fixed voxel order when ``zflip``)."""

    patient: str
    records: list[SequenceRecord]
    seconds: float
    labels: dict[str, Volume] = dataclasses.field(default_factory=dict)
    views: dict[str, KidneyView] | None = None
    t1w_label: np.ndarray | None = None
    rejected_labels: dict[str, Volume] = dataclasses.field(default_factory=dict)
    zflip: bool = False


def _check_t1w_label(t1w: Volume, label: Volume) -> None:
    if not same_grid(t1w, label):
        raise FlareInputError(
            label.path or "<T1W pseudo-label>",
            f"the T1W pseudo-label's grid differs from the T1W image's ({label!r} vs {t1w!r})",
            "pass the pseudo-label predicted on this very T1W volume (same shape, spacing, origin)",
        )


def transfer_patient(
    volumes: Mapping[str, Volume],
    t1w_label: Volume,
    params: TransferParams,
    registration: RegistrationParams,
    *,
    patient: str = "",
    cases: Mapping[str, str] | None = None,
    fix_zflip: bool = True,
    keep_views: bool = False,
    label_rejected: bool = False,
    sequences: Sequence[str] = _ORDER,
) -> PatientTransfer:
    """Register, filter and transfer one patient (see the module docstring).

    ``volumes``: sequence short name -> image, holding ``T1W``; ``t1w_label``: the T1W pseudo-label
    (FLARE ids) on the T1W grid. ``cases``: sequence -> case id for the records (default
    ``<patient>_<sequence>``). Sequences of ``sequences`` without a volume are recorded as
    ``missing``.

    ``fix_zflip`` (STUDY.md "Preprocessing"; ``preprocess.fix_zflip``): when the IP volume says the
    patient is stored upside down (:func:`flarelib.preprocess.fix_zflip`), every volume and the label
    are flipped along z before registration (the scanner-space alignment of the session holds again)
    and the transferred labels are flipped back, so every label lies on its image's stored voxel order;
    the records' transforms then refer to the flipped volumes (``reason`` says so).

    Returns a :class:`PatientTransfer` with the accepted sequences' labels in memory (and, with
    ``label_rejected``, the rejected ones' in ``rejected_labels``: what the transfer would have given).
    """
    from flarelib.preprocess import fix_zflip as _fix_zflip
    from flarelib.preprocess import flip_z

    t0 = time.perf_counter()
    t1w = volumes.get("T1W")
    if t1w is None:
        raise FlareInputError(
            patient or None, f"no T1W volume among {sorted(volumes)}", "add the C-pre volume"
        )
    _check_t1w_label(t1w, t1w_label)
    stored = dict(volumes)
    flipped = False
    if fix_zflip and "IP" in volumes:
        fixed, decision = _fix_zflip({**volumes, "__label__": t1w_label})
        flipped = decision.decision == "flip"
        if flipped:
            t1w_label = fixed.pop("__label__")
            volumes = fixed
            t1w = volumes["T1W"]
    label = np.asarray(t1w_label.array).astype(np.uint8, copy=False)
    regs, _ = register_sequences(volumes, params, registration)
    cases = dict(cases or {})
    records: list[SequenceRecord] = []
    labels: dict[str, Volume] = {}
    rejected: dict[str, Volume] = {}
    views: dict[str, KidneyView] | None = {"T1W": KidneyView(t1w.array, None)} if keep_views else None
    decisions: dict[str, Decision] = {}
    dscs: dict[str, dict[str, float]] = {}
    for seq in [s for s in _ORDER if s in regs and s not in ("T1W", "OP")]:
        warped = apply_transform(volumes[seq], regs[seq].transform, t1w)
        ones = volumes[seq].with_array(np.ones(volumes[seq].shape, np.uint8))
        fov = apply_transform(ones, regs[seq].transform, t1w, is_label=True).array > 0
        coarse, d = kidney_dscs(
            warped.array, label, params, dark=seq in params.dark_kidney_sequences, valid=fov
        )
        dscs[seq] = d
        decisions[seq] = decide(seq, d["right"], d["left"], params)
        if views is not None:
            views[seq] = KidneyView(warped.array, coarse)
    if "OP" in regs:
        decisions["OP"] = decide("OP", None, None, params, ip=decisions.get("IP"))
        if views is not None:
            views["OP"] = KidneyView(apply_transform(volumes["OP"], regs["OP"].transform, t1w).array, None)
    decisions["T1W"] = decide("T1W", None, None, params)
    note = " [z-flipped patient: transform between the z-flipped volumes]" if flipped else ""
    for seq in sequences:
        case = cases.get(seq, f"{patient}_{seq}" if patient else seq)
        vol = stored.get(seq)
        image = str(vol.path) if vol is not None and vol.path is not None else None
        if seq not in regs:
            why = "no volume" if vol is None else "not registrable (OP needs IP)"
            records.append(SequenceRecord(patient, seq, case, "missing", why, image=image))
            continue
        r, dec = regs[seq], decisions[seq]
        d = dscs.get(seq) or (dscs.get("IP") if seq == "OP" else None) or {}
        kind = "reference" if seq == "T1W" else ("accept" if dec.accepted else "reject")
        records.append(
            SequenceRecord(
                patient,
                seq,
                case,
                kind,
                dec.reason + note,
                d.get("right"),
                d.get("left"),
                r.method,
                r.registered_to,
                r.quality,
                r.seconds,
                transform_to_dict(r.transform),
                image,
                zflip=flipped,
            )
        )
        if seq == "T1W":
            out = t1w_label
        elif dec.accepted or label_rejected:
            out = transfer_label(t1w_label, r.transform, volumes[seq])
        else:
            continue
        if flipped:  # back onto the stored voxel order of the sequence's image
            out = flip_z(out)
        out = Volume(out.array, out.spacing_zyx, out.origin_xyz, out.direction, vol.path)
        (labels if dec.accepted else rejected)[seq] = out
    return PatientTransfer(
        patient,
        records,
        time.perf_counter() - t0,
        labels,
        views,
        label if keep_views else None,
        rejected,
        flipped,
    )


# --------------------------------------------------------------------------------------------------
# Many patients, in parallel
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TransferTable:
    """Every patient's :class:`SequenceRecord` rows, and each patient's wall time (s)."""

    records: list[SequenceRecord]
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def frame(self):
        """A pandas DataFrame, one row per sequence (the transform as a JSON string)."""
        import pandas as pd

        rows = []
        for r in self.records:
            row = dataclasses.asdict(r)
            row["transform"] = None if r.transform is None else json.dumps(r.transform)
            rows.append(row)
        return pd.DataFrame(rows, columns=[f.name for f in dataclasses.fields(SequenceRecord)])

    def accepted(self, include_reference: bool = True) -> list[SequenceRecord]:
        """Records of accepted sequences (and the T1W references with ``include_reference``)."""
        keep = ("reference", "accept") if include_reference else ("accept",)
        return [r for r in self.records if r.decision in keep]

    def save(self, out_dir: str | os.PathLike, stem: str = "transfer") -> tuple[Path, Path]:
        """Write ``<stem>.csv`` and ``<stem>.json`` (records + seconds) under ``out_dir``."""
        from flarelib.paths import atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        csv = out / f"{stem}.csv"
        atomic_write_text(csv, self.frame().to_csv(index=False))
        blob = {"records": [dataclasses.asdict(r) for r in self.records], "seconds": self.seconds}
        js = atomic_write_text(out / f"{stem}.json", json.dumps(blob, indent=1) + "\n")
        return csv, js

    @classmethod
    def load(cls, path: str | os.PathLike) -> TransferTable:
        """Read a table written by :meth:`save` (the ``.json``)."""
        p = Path(path)
        if not p.is_file():
            raise FlareInputError(p, "transfer table not found", "run the label transfer first")
        blob = json.loads(p.read_text())
        return cls([SequenceRecord(**r) for r in blob["records"]], dict(blob.get("seconds", {})))


def _worker_init(threads: int) -> None:
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(threads)))


#: Sub-folders of a transfer's output folder: accepted labels, and (on request) the rejected ones.
LABELS_DIR = "labels"
REJECTED_DIR = "rejected_labels"


def _patient_job(
    patient: str,
    images: Mapping[str, str],
    cases: Mapping[str, str],
    t1w_label: str,
    params: TransferParams,
    registration: RegistrationParams,
    out_dir: str | None,
    fix_zflip: bool,
    write_rejected: bool,
) -> PatientTransfer:
    volumes = {seq: read_image(path) for seq, path in images.items()}
    label = read_label(t1w_label)
    res = transfer_patient(
        volumes,
        label,
        params,
        registration,
        patient=patient,
        cases=cases,
        fix_zflip=fix_zflip,
        label_rejected=write_rejected and out_dir is not None,
    )
    if out_dir is not None:
        by_seq = {r.sequence: r for r in res.records}
        for seq, vol in res.labels.items():
            rec = by_seq[seq]
            if seq == "T1W":
                rec.label = str(t1w_label)
                continue
            path = Path(out_dir) / LABELS_DIR / f"{rec.case}.nii.gz"
            write_image(vol, path)
            rec.label = str(path)
        for seq, vol in res.rejected_labels.items():
            write_image(vol, Path(out_dir) / REJECTED_DIR / f"{by_seq[seq].case}.nii.gz")
        res.labels, res.rejected_labels = {}, {}
    return res


def transfer_patients(
    patients: Mapping[str, Mapping[str, str | os.PathLike]],
    t1w_labels: Mapping[str, str | os.PathLike],
    params: TransferParams,
    registration: RegistrationParams,
    out_dir: str | os.PathLike | None = None,
    *,
    cases: Mapping[str, Mapping[str, str]] | None = None,
    workers: int | None = None,
    fix_zflip: bool = True,
    write_rejected: bool = False,
    progress: bool = True,
    on_result: Callable[[PatientTransfer], None] | None = None,
) -> TransferTable:
    """Run :func:`transfer_patient` for many patients, in parallel processes.

    ``patients``: patient -> {sequence -> image file}; ``t1w_labels``: patient -> T1W pseudo-label
    file; ``cases``: patient -> {sequence -> case id} (default ``<patient>_<sequence>``).
    ``workers``: processes (default ``params.workers``; 0 = min(2, number of patients); 1 = in this
    process). ``fix_zflip``: see :func:`transfer_patient` (pass ``params.preprocess.fix_zflip``).
    With ``out_dir``, accepted labels are written to ``out_dir/labels/<case>.nii.gz`` (records name
    them; the T1W record names its pseudo-label), with ``write_rejected`` the rejected sequences'
    would-be labels to ``out_dir/rejected_labels/<case>.nii.gz`` (for inspection and diagnostics), and
    the table to ``out_dir/transfer.csv`` + ``transfer.json``; without ``out_dir`` the labels are
    dropped (only the records come back). Patients come back in the given order.
    """
    missing = [p for p in patients if p not in t1w_labels]
    if missing:
        raise FlareInputError(
            None, f"no T1W pseudo-label for patient(s) {missing}", "pass t1w_labels for every patient"
        )
    names = list(patients)
    n = len(names)
    if workers is None:
        workers = params.workers
    if workers <= 0:
        workers = min(2, n)
    workers = max(1, min(workers, n)) if n else 1
    out = None if out_dir is None else str(out_dir)
    cases = cases or {}
    jobs = {
        p: (
            p,
            {s: str(f) for s, f in patients[p].items()},
            dict(cases.get(p, {})),
            str(t1w_labels[p]),
            params,
            registration,
            out,
            fix_zflip,
            write_rejected,
        )
        for p in names
    }
    bar = None
    if progress and n:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="label transfer", unit="patient")
    results: dict[str, PatientTransfer] = {}
    try:
        if workers > 1:
            threads = max(1, (os.cpu_count() or 1) // workers)
            pool_kw = {"max_workers": workers, "initializer": _worker_init, "initargs": (threads,)}
            with ProcessPoolExecutor(**pool_kw) as pool:
                futs = {pool.submit(_patient_job, *jobs[p]): p for p in names}
                for fut in as_completed(futs):
                    res = fut.result()
                    results[futs[fut]] = res
                    if on_result is not None:
                        on_result(res)
                    if bar is not None:
                        bar.update(1)
        else:
            for p in names:
                res = _patient_job(*jobs[p])
                results[p] = res
                if on_result is not None:
                    on_result(res)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    table = TransferTable(
        [r for p in names for r in results[p].records], {p: results[p].seconds for p in names}
    )
    if out_dir is not None:
        table.save(out_dir)
    return table
