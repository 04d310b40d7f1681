"""Case discovery in FLARE24-style folders from the layouts in ``params.data.subsets``.

Each subset names its files by templates relative to the data root, e.g.
``train_CT_gt_label/imagesTr/{case}_0000.nii.gz``; the case id is what ``{case}`` matches. LLD-MMR
style subsets (``role: mr_lld``) name cases ``<patient>_<tag>`` with ``tag`` one of the LLD-MMR
sequence tags (:data:`flarelib.labels.SEQUENCES`: ``C-pre``, ``C--A``, ``C--V``, ``C--Delay``,
``T2WI``, ``DWI``, ``InPhase``, ``OutPhase``); the patient id may itself hold ``_`` and ``-``.

Discovery only lists files; :func:`load_case` reads voxels and :func:`flarelib.data.check.check_dataset`
verifies a whole dataset before any compute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from flarelib.config import Params, SubsetLayout
from flarelib.data.manifest import Manifest, load_manifest
from flarelib.errors import FlareInputError
from flarelib.io import Volume, read_case, read_image
from flarelib.labels import SEQUENCE_BY_TAG, SEQUENCES, LabelMap
from flarelib.paths import data_root

CASE_FIELD = "{case}"

#: LLD-MMR tags, longest first, so that a tag that ends another (none do today) cannot win.
_TAGS_LONGEST_FIRST: tuple[str, ...] = tuple(sorted(SEQUENCE_BY_TAG, key=len, reverse=True))


@dataclass(frozen=True)
class Case:
    """One image of a subset, with its label path (None when the layout has no labels).

    ``sequence`` is the MR sequence short name (``T1W``, ``EAP``, ``PVP``, ``DP``, ``T2W``, ``DWI``,
    ``IP``, ``OP``) or None (CT, or unknown); ``patient`` is the LLD-MMR patient id (None elsewhere).
    ``label_map`` maps the label file's ids to FLARE ids (None without labels). The label file may be
    missing on disk: :func:`flarelib.data.check.check_dataset` reports it.
    """

    subset: str
    role: str
    case_id: str
    image: Path
    label: Path | None
    modality: str
    sequence: str | None = None
    patient: str | None = None
    label_map: LabelMap | None = field(default=None, compare=False, repr=False)

    @property
    def not_annotated(self) -> frozenset[int]:
        """FLARE organs this case's labels never annotate (ignore them; empty without a map)."""
        return self.label_map.not_annotated if self.label_map is not None else frozenset()


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value: ``image_2`` < ``image_10``."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part
    )


def parse_lld_case_id(case_id: str) -> tuple[str, str] | None:
    """``"<patient>_<tag>"`` -> ``(patient, sequence short name)``, or None for an unknown tag.

    Tags hold ``-`` and ``--`` (``C--Delay``); the patient id may hold ``_`` and ``-``. The tag is
    found by matching the known tags at the end of the id.

    >>> parse_lld_case_id("MR-1_23_C--Delay")
    ('MR-1_23', 'DP')
    """
    for tag in _TAGS_LONGEST_FIRST:
        suffix = "_" + tag
        if case_id.endswith(suffix) and len(case_id) > len(suffix):
            return case_id[: -len(suffix)], SEQUENCE_BY_TAG[tag]
    return None


def lld_case_id(patient: str, sequence: str) -> str:
    """Inverse of :func:`parse_lld_case_id`: ``("MR-1", "DP")`` -> ``"MR-1_C--Delay"``."""
    return f"{patient}_{SEQUENCES[sequence]}"


def template_regex(template: str, where: str) -> re.Pattern[str]:
    """Regex matching a file path (relative, POSIX) made from ``template``; group ``case`` = the id."""
    if template.count(CASE_FIELD) != 1:
        raise FlareInputError(
            where,
            f"template {template!r} must hold {CASE_FIELD} exactly once",
            "write e.g. 'imagesTr/{case}_0000.nii.gz'",
        )
    head, tail = template.split(CASE_FIELD)
    return re.compile(re.escape(head) + r"(?P<case>[^/]+?)" + re.escape(tail))


def fill(template: str, case_id: str) -> str:
    """The template with ``{case}`` replaced by ``case_id`` (a relative path)."""
    return template.replace(CASE_FIELD, case_id)


def _missing_root_error(params: Params, root: Path) -> FlareInputError:
    if params.data.track == "phantom":
        fix = "run `flarelib generate` to write the phantom there (or point data.root at an existing phantom)"
    else:
        fix = "set FLARE_DATA to the data folder, or data.root in the params"
    return FlareInputError(root, f"data root of track '{params.data.track}' not found", fix)


def glob_case_ids(root: Path, template: str, where: str = "data.subsets") -> list[str]:
    """Case ids whose file exists under ``root`` for ``template``, natural-sorted. A folder counts
    too: it is a DICOM series (:func:`flarelib.io.read_image` reads a folder as one)."""
    pattern = template_regex(template, where)
    ids = []
    for path in root.glob(fill(template, "*")):
        match = pattern.fullmatch(path.relative_to(root).as_posix())
        if match and (path.is_file() or path.is_dir()):
            ids.append(match["case"])
    return sorted(set(ids), key=natural_key)


def manifest_path(params: Params) -> Path:
    """``data_root(params) / params.data.manifest``."""
    return data_root(params) / params.data.manifest


def _label_map(layout: SubsetLayout, name: str, manifest: Manifest | None) -> LabelMap | None:
    if layout.labels is None:
        return None
    if layout.dataset is None:
        return LabelMap.identity(name)
    assert manifest is not None
    return manifest.label_map(layout.dataset, layout.label_variant)


def discover_subset(params: Params, name: str, manifest: Manifest | None = None) -> list[Case]:
    """The cases of one subset (see :func:`discover`)."""
    root = data_root(params)
    layout = params.data.subsets[name]
    where = f"data.subsets.{name}"
    if manifest is None and layout.labels is not None and layout.dataset is not None:
        manifest = load_manifest(manifest_path(params))
    label_map = _label_map(layout, name, manifest)
    if layout.labels is not None:
        template_regex(layout.labels, f"{where}.labels")
    cases = []
    for case_id in glob_case_ids(root, layout.images, f"{where}.images"):
        patient, sequence = None, layout.sequence
        if layout.role == "mr_lld":
            parsed = parse_lld_case_id(case_id)
            patient, sequence = parsed if parsed is not None else (None, None)
        cases.append(
            Case(
                subset=name,
                role=layout.role,
                case_id=case_id,
                image=root / fill(layout.images, case_id),
                label=root / fill(layout.labels, case_id) if layout.labels is not None else None,
                modality=layout.modality,
                sequence=sequence,
                patient=patient,
                label_map=label_map,
            )
        )
    return cases


def discover(params: Params) -> dict[str, list[Case]]:
    """``{subset name: [Case, ...]}`` for every subset of ``params.data.subsets``, in params order.

    Images are globbed from each subset's ``images`` template under :func:`flarelib.paths.data_root`
    and natural-sorted by case id; the label path comes from the ``labels`` template whether or not
    the file exists. Label maps come from the manifest (``data_root / params.data.manifest``) via
    the subset's ``dataset`` and ``label_variant``; a labeled subset without ``dataset`` gets
    :meth:`LabelMap.identity` (ids are already FLARE ids). An empty subset gives an empty list.

    Raises:
        FlareInputError: the data root does not exist (names it and the fix), or the manifest a
            labeled subset needs is missing or invalid, or a template lacks ``{case}``.
    """
    root = data_root(params)
    if not root.is_dir():
        raise _missing_root_error(params, root)
    manifest = None
    if any(s.labels is not None and s.dataset is not None for s in params.data.subsets.values()):
        manifest = load_manifest(manifest_path(params))
    return {name: discover_subset(params, name, manifest) for name in params.data.subsets}


def load_case(case: Case) -> tuple[Volume, Volume | None]:
    """Read a case: ``(image Volume (float32), label Volume (uint8 FLARE ids) or None)``.

    Arrays are (z, y, x); spacing in mm; geometry kept as stored (no reorientation).

    Raises:
        FlareInputError: missing/corrupt files, label ids unknown to the map, grid mismatch.
    """
    if case.label is None:
        return read_image(case.image), None
    if not case.label.is_file():
        raise FlareInputError(
            case.label,
            f"label of case '{case.case_id}' (subset '{case.subset}') not found",
            "add the label file or fix the subset's labels template",
        )
    return read_case(case.image, case.label, case.label_map)


def lld_patients(cases: Iterable[Case]) -> dict[str, dict[str, Case]]:
    """Group LLD-MMR cases by patient: ``{patient: {sequence short name: Case}}``.

    Patients are natural-sorted, sequences in :data:`flarelib.labels.SEQUENCES` order; cases without
    a patient (other roles, unknown tags) are left out.
    """
    groups: dict[str, dict[str, Case]] = {}
    for case in cases:
        if case.patient is None or case.sequence is None:
            continue
        groups.setdefault(case.patient, {})[case.sequence] = case
    order = list(SEQUENCES)
    return {
        p: dict(sorted(groups[p].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))
        for p in sorted(groups, key=natural_key)
    }
