"""The anatomy-aware module: constraints (6)-(8) on a pseudo-label (STUDY.md "Stage 3"; paper
section 2.5, Fig. 5), and an injector of anatomical violations to measure it.

For every organ (FLARE ids 1..13) of a label map, with connected components of
``anatomy.connectivity`` (paper: 6):

* (6) ``Size_max > Size_exist``: the largest component exists and is big enough. The adrenals
  (7, 8) are exempt; instead (authors' code) they must be present with an anterior-posterior
  extent of at least ``adrenal_min_ap_extent`` voxels;
* (7) ``Size_second < Size_tiny``: no second component of real size (every organ, adrenals too);
* (8) ``Size_esdsecond < Size_tiny``: esophagus, stomach and duodenum together form one component.

A case fails when any constraint fails. The paper drops failing cases whole (``on_failure:
drop_case``); the option ``drop_organs`` keeps the case and marks the failing organs unannotated, so
the partial-label loss ignores them (:func:`annotated_mask`, the 14-entry boolean mask of
:class:`flarelib.train.sampling.TrainVolume`). For (8) the failing organs are those found in the
union's components other than its largest (all three if none can be told).

Sizes are voxel counts on a grid of ``anatomy.reference_spacing_zyx`` (the paper's 1.2 x 1.2 x 3 mm);
on another grid they are scaled by the voxel volume, and the adrenal extent by the anterior-posterior
spacing (:func:`thresholds`), so a check means the same millimetres on the coarse CPU profiles.
``reference_spacing_zyx: null`` applies the raw voxel counts to any grid.

Arrays are (z, y, x) in LPS order (array axis 1 = y runs anterior -> posterior, as after
:func:`flarelib.io.reorient_to_lps`); a :class:`~flarelib.io.Volume` input finds its
anterior-posterior axis from its direction matrix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import cc3d
import numpy as np
from scipy import ndimage as ndi

from flarelib.config import AnatomyParams
from flarelib.io import Volume
from flarelib.labels import NUM_CLASSES, ORGAN_IDS, SHORT_NAMES

__all__ = [
    "ADRENALS",
    "ESD",
    "INJECTION_KINDS",
    "AnatomyResult",
    "OrganStats",
    "Thresholds",
    "Violation",
    "annotated_mask",
    "ap_axis",
    "check_anatomy",
    "component_sizes",
    "confirm_violation",
    "inject_violation",
    "injection_rng",
    "thresholds",
]

#: Right and left adrenal glands: exempt from (6).
ADRENALS: tuple[int, ...] = (7, 8)
#: Esophagus, stomach, duodenum: one connected region (8).
ESD: tuple[int, ...] = (10, 11, 12)


# --------------------------------------------------------------------------------------------------
# Thresholds on a grid
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The constraints' thresholds on one grid (voxels of that grid; may be fractional)."""

    size_exist: float
    size_tiny: float
    adrenal_min_ap_extent: float
    connectivity: int


def thresholds(params: AnatomyParams, spacing_zyx: Sequence[float] | None = None) -> Thresholds:
    """``params``' thresholds expressed in voxels of a grid of ``spacing_zyx`` (mm).

    With ``params.reference_spacing_zyx`` set, sizes scale by ``prod(reference) / prod(spacing)`` and
    the adrenal extent by ``reference_y / spacing_y``; with it None (or no spacing given), the raw
    counts apply.
    """
    ref = params.reference_spacing_zyx
    if ref is None or spacing_zyx is None:
        return Thresholds(
            float(params.size_exist),
            float(params.size_tiny),
            float(params.adrenal_min_ap_extent),
            int(params.connectivity),
        )
    sp = [float(s) for s in spacing_zyx]
    if len(sp) != 3 or min(sp) <= 0:
        raise ValueError(f"spacing_zyx must be 3 positive values, got {spacing_zyx}")
    vol_ratio = float(np.prod(ref)) / float(np.prod(sp))
    return Thresholds(
        params.size_exist * vol_ratio,
        params.size_tiny * vol_ratio,
        params.adrenal_min_ap_extent * float(ref[1]) / sp[1],
        int(params.connectivity),
    )


def ap_axis(vol: Volume) -> int:
    """The array axis (0 z, 1 y, 2 x) of ``vol`` closest to the world anterior-posterior (LPS y)."""
    # direction columns are the world directions of voxel axes (i, j, k) = array axes (2, 1, 0)
    col = int(np.argmax(np.abs(vol.direction[1, :])))
    return 2 - col


# --------------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OrganStats:
    """One organ's components: sizes (voxels, largest first) and anterior-posterior extent (voxels)."""

    organ: int
    sizes: tuple[int, ...]
    ap_extent: int

    @property
    def largest(self) -> int:
        return self.sizes[0] if self.sizes else 0

    @property
    def second(self) -> int:
        return self.sizes[1] if len(self.sizes) > 1 else 0


def component_sizes(label: np.ndarray, connectivity: int = 6) -> dict[int, list[int]]:
    """``{label id: component sizes, largest first}`` of every id > 0 of ``label`` (one cc3d pass;
    components never cross ids)."""
    label = np.asarray(label)
    if not label.any():
        return {}
    cc = cc3d.connected_components(label, connectivity=connectivity)
    n = int(cc.max())
    sizes = np.bincount(cc.ravel(), minlength=n + 1)
    owner = np.zeros(n + 1, dtype=np.int64)
    owner[cc.ravel()] = label.ravel()
    out: dict[int, list[int]] = {}
    for comp in range(1, n + 1):
        out.setdefault(int(owner[comp]), []).append(int(sizes[comp]))
    return {k: sorted(v, reverse=True) for k, v in out.items()}


def _ap_extent(mask: np.ndarray, axis: int) -> int:
    if not mask.any():
        return 0
    other = tuple(a for a in range(3) if a != axis)
    present = np.flatnonzero(mask.any(axis=other))
    return int(present[-1] - present[0] + 1)


# --------------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Violation:
    """One failed constraint: ``constraint`` is ``"6"``, ``"6-adrenal"``, ``"7"`` or ``"8"``;
    ``organs`` the FLARE ids it blames; ``value`` vs ``threshold`` in voxels of the checked grid."""

    constraint: str
    organs: tuple[int, ...]
    value: float
    threshold: float
    message: str


@dataclasses.dataclass
class AnatomyResult:
    """What :func:`check_anatomy` found in one case."""

    case: str
    violations: list[Violation]
    stats: dict[int, OrganStats]
    esd_sizes: tuple[int, ...]
    thresholds: Thresholds

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def failing_organs(self) -> tuple[int, ...]:
        """FLARE ids blamed by any violation, sorted."""
        return tuple(sorted({o for v in self.violations for o in v.organs}))

    def by_organ(self) -> dict[int, list[str]]:
        """``{organ: [violated constraints]}`` for every blamed organ."""
        out: dict[int, list[str]] = {}
        for v in self.violations:
            for o in v.organs:
                out.setdefault(o, []).append(v.constraint)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "case": self.case,
            "passed": self.passed,
            "violations": [dataclasses.asdict(v) for v in self.violations],
            "failing_organs": list(self.failing_organs),
            "by_organ": {SHORT_NAMES[o]: c for o, c in self.by_organ().items()},
        }


def check_anatomy(
    label: np.ndarray | Volume,
    params: AnatomyParams,
    *,
    spacing_zyx: Sequence[float] | None = None,
    case: str = "",
    organs: Iterable[int] = ORGAN_IDS,
) -> AnatomyResult:
    """Check constraints (6)-(8) on a label map (FLARE ids; see the module docstring).

    ``label``: a (z, y, x) array (``spacing_zyx`` in mm for the threshold scaling; without it the raw
    counts apply) or a :class:`Volume` (its spacing and anterior-posterior axis are used).
    ``organs``: the organs checked (default all 13; e.g. leave out organs a dataset does not annotate).
    An empty label fails (6) for every organ checked.
    """
    axis = 1
    if isinstance(label, Volume):
        spacing_zyx = label.spacing_zyx if spacing_zyx is None else spacing_zyx
        axis = ap_axis(label)
        arr = np.asarray(label.array)
    else:
        arr = np.asarray(label)
    if arr.ndim != 3:
        raise ValueError(f"check_anatomy: label must be 3-D (z, y, x), got shape {arr.shape}")
    arr = arr.astype(np.uint8, copy=False)
    th = thresholds(params, spacing_zyx)
    sizes = component_sizes(arr, th.connectivity)
    organs = tuple(int(o) for o in organs)
    stats: dict[int, OrganStats] = {}
    violations: list[Violation] = []
    for o in organs:
        ap = _ap_extent(arr == o, axis) if o in ADRENALS else 0
        st = OrganStats(o, tuple(sizes.get(o, ())), ap)
        stats[o] = st
        name = SHORT_NAMES[o]
        if o in ADRENALS:
            if st.largest == 0 or ap < th.adrenal_min_ap_extent:
                what = "absent" if st.largest == 0 else f"anterior-posterior extent {ap} voxels"
                violations.append(
                    Violation(
                        "6-adrenal",
                        (o,),
                        float(ap),
                        th.adrenal_min_ap_extent,
                        f"{name}: {what} < {th.adrenal_min_ap_extent:.3g} voxels",
                    )
                )
        elif not st.largest > th.size_exist:
            violations.append(
                Violation(
                    "6",
                    (o,),
                    float(st.largest),
                    th.size_exist,
                    f"{name}: largest component {st.largest} voxels <= Size_exist {th.size_exist:.4g}",
                )
            )
        if not st.second < th.size_tiny:
            violations.append(
                Violation(
                    "7",
                    (o,),
                    float(st.second),
                    th.size_tiny,
                    f"{name}: second component {st.second} voxels >= Size_tiny {th.size_tiny:.4g}",
                )
            )
    esd = tuple(o for o in ESD if o in organs)
    esd_sizes: tuple[int, ...] = ()
    if esd:
        union = np.isin(arr, esd)
        if union.any():
            cc = cc3d.connected_components(union, connectivity=th.connectivity)
            counts = np.bincount(cc.ravel())
            counts[0] = 0
            order = np.argsort(counts)[::-1]
            order = order[counts[order] > 0]
            esd_sizes = tuple(int(counts[c]) for c in order)
            second = esd_sizes[1] if len(esd_sizes) > 1 else 0
            if not second < th.size_tiny:
                bad = [c for c in order[1:] if counts[c] >= th.size_tiny]
                blamed = tuple(sorted({int(v) for v in np.unique(arr[np.isin(cc, bad)])} & set(esd)))
                violations.append(
                    Violation(
                        "8",
                        blamed or esd,
                        float(second),
                        th.size_tiny,
                        "esophagus+stomach+duodenum: second component "
                        f"{second} voxels >= Size_tiny {th.size_tiny:.4g}",
                    )
                )
    return AnatomyResult(case, violations, stats, esd_sizes, th)


def annotated_mask(
    result: AnatomyResult,
    on_failure: str = "drop_case",
    base: np.ndarray | None = None,
) -> np.ndarray | None:
    """The case's annotated-class mask (bool, 14 entries, background True) after the check.

    ``drop_case`` (paper): None for a failing case (leave it out), else ``base`` (default all True).
    ``drop_organs``: ``base`` with the failing organs set False (their voxels are then ignored by the
    partial-label loss); None only when no organ is left annotated.
    """
    mask = np.ones(NUM_CLASSES, bool) if base is None else np.asarray(base, bool).copy()
    if mask.shape != (NUM_CLASSES,):
        raise ValueError(f"base must have {NUM_CLASSES} entries")
    if result.passed:
        return mask
    if on_failure == "drop_case":
        return None
    if on_failure != "drop_organs":
        raise ValueError(f"on_failure must be 'drop_case' or 'drop_organs', got {on_failure!r}")
    mask[list(result.failing_organs)] = False
    mask[0] = True
    return mask if mask[1:].any() else None


# --------------------------------------------------------------------------------------------------
# Injected violations (for measuring the module)
# --------------------------------------------------------------------------------------------------
#: What :func:`inject_violation` can do.
INJECTION_KINDS: tuple[str, ...] = ("drop", "erode", "dilate", "shift", "split")


def _spacing(spacing_zyx: Sequence[float] | None) -> np.ndarray:
    return np.ones(3) if spacing_zyx is None else np.asarray(spacing_zyx, float)


def _ball(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    r = np.maximum(np.floor(radius_mm / spacing).astype(int), 0)
    zz, yy, xx = np.ogrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1, -r[2] : r[2] + 1]
    d2 = (zz * spacing[0]) ** 2 + (yy * spacing[1]) ** 2 + (xx * spacing[2]) ** 2
    return d2 <= radius_mm**2 + 1e-9


def _shift(mask: np.ndarray, offset_vox: Sequence[int]) -> np.ndarray:
    out = np.zeros_like(mask)
    src = tuple(slice(max(0, -o), mask.shape[i] - max(0, o)) for i, o in enumerate(offset_vox))
    dst = tuple(slice(max(0, o), mask.shape[i] - max(0, -o)) for i, o in enumerate(offset_vox))
    out[dst] = mask[src]
    return out


def confirm_violation(
    clean: np.ndarray,
    injected: np.ndarray,
    organ: int,
    spacing_zyx: Sequence[float] | None,
    params: AnatomyParams,
) -> str | None:
    """Does ``injected`` break the anatomy of ``clean`` at ``organ``? An independent, stricter-to-
    trigger reading of the paper's prior (26-connected pieces, twice the tiny size): the organ is
    gone; or (not an adrenal) it kept less than the existence size; or it has a second 26-connected
    piece of at least 2 x Size_tiny that the clean label did not have; or, for esophagus / stomach /
    duodenum, their union gained such a piece. Returns what broke, or None.
    """
    th = thresholds(params, spacing_zyx)
    m = injected == organ
    if not m.any():
        return "missing"
    if organ not in ADRENALS and m.sum() <= th.size_exist:
        return "too small"
    big = 2.0 * th.size_tiny

    def pieces(mask: np.ndarray) -> int:
        if not mask.any():
            return 0
        cc = cc3d.connected_components(mask, connectivity=26)
        counts = np.bincount(cc.ravel())[1:]
        return int((counts >= big).sum())

    if pieces(m) > max(1, pieces(clean == organ)):
        return "split"
    if organ in ESD and pieces(np.isin(injected, ESD)) > max(1, pieces(np.isin(clean, ESD))):
        return "esd disconnected"
    return None


def inject_violation(
    label: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    params: AnatomyParams,
    *,
    spacing_zyx: Sequence[float] | None = None,
    organ: int | None = None,
    max_tries: int = 20,
) -> tuple[np.ndarray, dict[str, Any]]:
    """A copy of ``label`` (FLARE ids, (z, y, x)) with one anatomical violation of ``kind``.

    * ``drop``: one organ removed;
    * ``erode``: one organ eroded (radius 2, 4, 6, ... mm) until its anatomy breaks (it falls apart
      or shrinks below the existence size: what a network that barely sees an organ outputs);
    * ``dilate``: a touching neighbour dilated over the organ (radius 2, 4, ... mm) until the organ
      breaks apart or vanishes under it;
    * ``shift``: for esophagus / stomach / duodenum, the organ moved 10-40 mm in a random direction
      (the union disconnects: Fig. 5, third column); for the others a second copy of the organ,
      displaced 10-40 mm, painted on background (Fig. 5, fourth column: two gallbladders);
    * ``split``: the organ cut in two by a gap across its long axis (1.5 voxel diagonals wide) near
      its centre.

    "Breaks" is :func:`confirm_violation` (26-connected pieces of twice the tiny size, independent of
    the checker's connectivity), so erosion and dilation stop at the smallest radius that breaks the
    anatomy: the hardest violations of their kind. ``organ``: the organ hit (default drawn from those
    present; adrenals only for ``drop``). Up to ``max_tries`` draws of organ (and displacement).
    Returns ``(label, info)``: ``{"kind", "organ", "magnitude_mm", "confirmed", "broke", "tries"}``;
    ``confirmed`` False (the last attempt returned) when no try broke the anatomy.
    """
    if kind not in INJECTION_KINDS:
        raise ValueError(f"unknown injection kind {kind!r}; use one of {list(INJECTION_KINDS)}")
    label = np.asarray(label).astype(np.uint8, copy=False)
    sp = _spacing(spacing_zyx)
    present = [int(o) for o in np.unique(label) if o > 0]
    candidates = present if kind == "drop" else [o for o in present if o not in ADRENALS]
    if organ is not None:
        candidates = [int(organ)]
    info: dict[str, Any] = {"kind": kind, "organ": None, "magnitude_mm": 0.0, "confirmed": False}
    info.update(broke=None, tries=0)
    out = label.copy()
    if not candidates:
        return out, info

    def confirm(candidate: np.ndarray, o: int) -> str | None:
        return confirm_violation(label, candidate, o, spacing_zyx, params)

    for attempt in range(1, max_tries + 1):
        o = int(candidates[int(rng.integers(len(candidates)))])
        out, mag = _inject_once(label, kind, o, rng, sp, lambda c, o=o: confirm(c, o))
        why = confirm(out, o)
        info = {"kind": kind, "organ": o, "magnitude_mm": float(mag), "confirmed": why is not None}
        info.update(broke=why, tries=attempt)
        if why is not None:
            break
    return out, info


_RADII_MM = tuple(float(r) for r in np.arange(2.0, 62.0, 2.0))


def _inject_once(
    label: np.ndarray,
    kind: str,
    o: int,
    rng: np.random.Generator,
    sp: np.ndarray,
    broken,
) -> tuple[np.ndarray, float]:
    out = label.copy()
    m = label == o
    if kind == "drop":
        out[m] = 0
        return out, 0.0
    if kind == "erode":
        depth = ndi.distance_transform_edt(m, sampling=sp)
        for radius in _RADII_MM:
            out = label.copy()
            out[m & (depth <= radius)] = 0
            if broken(out):
                return out, radius
        return out, _RADII_MM[-1]
    if kind == "dilate":
        ring = ndi.binary_dilation(m, structure=np.ones((3, 3, 3), bool)) & ~m
        neighbours = [int(v) for v in np.unique(label[ring]) if v > 0]
        if not neighbours:
            return out, 0.0
        nb = neighbours[int(rng.integers(len(neighbours)))]
        dist = ndi.distance_transform_edt(label != nb, sampling=sp)
        for radius in _RADII_MM:
            out = label.copy()
            out[m & (dist <= radius)] = nb
            if broken(out):
                return out, radius
        return out, _RADII_MM[-1]
    if kind == "shift":
        d = float(rng.uniform(10.0, 40.0))
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        moved = _shift(m, np.rint(v * d / sp).astype(int))
        if o in ESD:  # the organ moves away from the others
            out[m] = 0
            out[moved] = o
        else:  # a displaced second copy on background
            out[moved & (label == 0)] = o
        return out, d
    # split: a gap perpendicular to the organ's long axis, near its centre
    idx = np.argwhere(m)
    if len(idx) < 2:
        out[m] = 0
        return out, 0.0
    pts = idx * sp
    centre = pts.mean(axis=0)
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    proj = (pts - centre) @ vt[0]
    gap = 1.5 * float(np.sqrt((sp**2).sum()))
    proj -= rng.uniform(-0.15, 0.15) * float(np.ptp(proj))
    out[tuple(idx[np.abs(proj) < gap / 2].T)] = 0
    return out, gap


def injection_rng(seed: int, *keys: int) -> np.random.Generator:
    """The Generator of one injection: ``default_rng([seed, *keys])``."""
    return np.random.default_rng([int(seed), *[int(k) for k in keys]])
