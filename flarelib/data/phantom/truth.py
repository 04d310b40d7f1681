"""The phantom's truth: the ``diagnostics/`` folder, which the method never reads.

Under a generated phantom's folder (the data root)::

    diagnostics/truth.json                    per case: geometry, motion, z-flip, misalignment, organ
                                              volumes (mL), pseudo-label errors; per set: z-flipped
                                              patients, misaligned sequences
    diagnostics/labels/<subset>/<case>.nii.gz true label (uint8 FLARE ids) on the exact grid and
                                              voxel order (z, y, x) of the written image
    diagnostics/tissue/<subset>/<case>.nii.gz tissue map (:class:`.shapes.Tissue` ids), same grid

``<subset>`` is a subset name of ``params/data/phantom.yaml`` (``ct_manual``, ``ct_pseudo``,
``lld_mmr``, ``amos_mr``, ``mr_val``: :attr:`flarelib.data.Case.subset`) and ``<case>`` the case id
of the image file (:attr:`flarelib.data.Case.case_id`; LLD-MMR: ``<patient>_<tag>``).
Notebooks and benchmarks measure the label transfer and the filters against it through
:func:`load_truth`, :func:`truth_case`, :func:`truth_label_path` and :func:`read_truth_label`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flarelib.errors import FlareInputError
from flarelib.io import Volume, read_label

__all__ = [
    "DIAGNOSTICS",
    "load_truth",
    "read_truth_label",
    "tissue_file",
    "translation_truth_file",
    "true_label_file",
    "truth_case",
    "truth_label_path",
    "truth_path",
]

DIAGNOSTICS = "diagnostics"
_FIX = "generate the phantom with `flarelib generate` (or point at a folder it wrote)"


def true_label_file(subset: str, case_id: str) -> str:
    """Path of a volume's true label relative to the data root (POSIX)."""
    return f"{DIAGNOSTICS}/labels/{subset}/{case_id}.nii.gz"


def tissue_file(subset: str, case_id: str) -> str:
    """Path of a volume's tissue map relative to the data root (POSIX)."""
    return f"{DIAGNOSTICS}/tissue/{subset}/{case_id}.nii.gz"


def translation_truth_file(subset: str, case_id: str, sequence: str) -> str:
    """Path of a labelled CT case's anatomy rendered as MR ``sequence`` (the truth of its CT -> MR
    translation), relative to the data root (POSIX)."""
    return f"{DIAGNOSTICS}/translation/{subset}/{case_id}_{sequence}.nii.gz"


def truth_path(data_dir: str | os.PathLike) -> Path:
    """``<data_dir>/diagnostics/truth.json`` (whether or not it exists)."""
    return Path(data_dir) / DIAGNOSTICS / "truth.json"


def load_truth(data_dir: str | os.PathLike) -> dict[str, Any]:
    """``diagnostics/truth.json`` of a generated phantom (raises FlareInputError when missing)."""
    path = truth_path(data_dir)
    if not path.is_file():
        raise FlareInputError(path, "phantom diagnostics not found", _FIX)
    return json.loads(path.read_text())


def truth_case(truth: Mapping[str, Any], subset: str, case_id: str) -> dict[str, Any]:
    """The record of one volume in a loaded truth (:func:`load_truth`): ``truth["cases"]["<subset>/<case>"]``.

    Raises:
        FlareInputError: the truth has no such volume (names the subset and case).
    """
    key = f"{subset}/{case_id}"
    cases = truth.get("cases", {})
    if key not in cases:
        raise FlareInputError(
            f"{DIAGNOSTICS}/truth.json",
            f"no volume '{case_id}' in subset '{subset}' ({len(cases)} volumes recorded)",
            "pass a subset and case id of this phantom (Case.subset, Case.case_id)",
        )
    return dict(cases[key])


def truth_label_path(data_dir: str | os.PathLike, subset: str, case_id: str) -> Path:
    """The true label file of one volume: ``<data_dir>/diagnostics/labels/<subset>/<case_id>.nii.gz``.

    Raises:
        FlareInputError: the file does not exist (names it, the subset and the case).
    """
    path = Path(data_dir) / true_label_file(subset, case_id)
    if not path.is_file():
        where = (
            "no phantom diagnostics there"
            if not (Path(data_dir) / DIAGNOSTICS).is_dir()
            else "no such volume"
        )
        raise FlareInputError(
            path, f"true label of case '{case_id}' (subset '{subset}') not found: {where}", _FIX
        )
    return path


def read_truth_label(data_dir: str | os.PathLike, subset: str, case_id: str) -> Volume:
    """The true label of one volume: uint8 FLARE ids, (z, y, x), on the grid (spacing mm, origin,
    direction) and in the voxel order of the written image (z-flipped where the image is).

    Raises:
        FlareInputError: missing (see :func:`truth_label_path`) or unreadable file.
    """
    return read_label(truth_label_path(data_dir, subset, case_id))
