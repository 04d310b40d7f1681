"""The phantom's subsets: their names, case ids, and where each is written (``params.data.subsets``).

The generator writes five subsets, named as in ``params/data/phantom.yaml``: ``ct_manual``,
``ct_pseudo``, ``lld_mmr``, ``amos_mr``, ``mr_val``. Where their files go is not decided here: each
subset's ``images`` / ``labels`` templates (``{case}`` = case id, relative to the output folder) come
from the params' ``data.subsets`` (:class:`flarelib.config.SubsetLayout`), resolved with
:func:`flarelib.data.layout.fill`, the same function case discovery uses, so the generator writes
exactly where :func:`flarelib.data.discover` looks. Params composed without the phantom data track
(no phantom subset in ``data.subsets``) get the layout of ``params/data/phantom.yaml``.
"""

from __future__ import annotations

import functools
from pathlib import PurePosixPath

from flarelib.config import Params, SubsetLayout, load_params
from flarelib.data.layout import fill, template_regex
from flarelib.errors import FlareInputError
from flarelib.paths import project_root

__all__ = [
    "LABELLED",
    "MODALITY",
    "SUBSETS",
    "case_ids",
    "default_layouts",
    "image_file",
    "label_file",
    "phantom_layouts",
    "top_folders",
]

#: Subset names (as in params/data/phantom.yaml), in generation order; the index seeds each subset.
SUBSETS: tuple[str, ...] = ("ct_manual", "ct_pseudo", "lld_mmr", "amos_mr", "mr_val")
#: Subsets whose labels the generator writes (true labels; simulated pseudo-labels for ct_pseudo).
LABELLED: frozenset[str] = frozenset({"ct_manual", "ct_pseudo", "mr_val"})
#: Modality of each subset's images.
MODALITY: dict[str, str] = {
    "ct_manual": "CT",
    "ct_pseudo": "CT",
    "lld_mmr": "MR",
    "amos_mr": "MR",
    "mr_val": "MR",
}

_CASE_FORMAT = {
    "ct_manual": "FLARE22_Tr_{:04d}",
    "ct_pseudo": "FLARE23_Ps_{:04d}",
    "lld_mmr": "MR-{:04d}",
    "amos_mr": "amos_{:04d}",
    "mr_val": "MRval_{:04d}",
}


def case_ids(subset: str, n: int) -> list[str]:
    """Case ids of a subset (LLD-MMR: patient ids, the files add ``_<tag>``)."""
    return [_CASE_FORMAT[subset].format(i + 1) for i in range(n)]


@functools.cache
def default_layouts() -> dict[str, SubsetLayout]:
    """The subsets of ``params/data/phantom.yaml`` (read through the strict loader)."""
    return dict(load_params(project_root() / "params" / "data" / "phantom.yaml").data.subsets)


def phantom_layouts(params: Params) -> dict[str, SubsetLayout]:
    """``{subset: SubsetLayout}`` of the five phantom subsets, in :data:`SUBSETS` order.

    From ``params.data.subsets``; when it names none of them, from :func:`default_layouts`.

    Raises:
        FlareInputError: only some phantom subsets have a layout; a template lacks ``{case}``; a
            subset the generator labels has no ``labels`` template, or one it does not label has
            one; a layout's modality is not the subset's.
    """
    given = params.data.subsets
    present = [name for name in SUBSETS if name in given]
    if not present:
        given = default_layouts()
    elif len(present) < len(SUBSETS):
        missing = [name for name in SUBSETS if name not in given]
        raise FlareInputError(
            "data.subsets",
            f"names phantom subsets {present} but not {missing}",
            "give every phantom subset a layout (as params/data/phantom.yaml does), or none",
        )
    layouts = {}
    for name in SUBSETS:
        layout, where = given[name], f"data.subsets.{name}"
        template_regex(layout.images, f"{where}.images")
        if (layout.labels is not None) != (name in LABELLED):
            state = "writes labels for" if name in LABELLED else "writes no labels for"
            fix = "add a labels template" if name in LABELLED else "remove its labels template"
            raise FlareInputError(f"{where}.labels", f"the phantom {state} this subset", fix)
        if layout.labels is not None:
            template_regex(layout.labels, f"{where}.labels")
        if layout.modality != MODALITY[name]:
            raise FlareInputError(
                f"{where}.modality",
                f"the phantom writes {MODALITY[name]} here",
                f"set modality: {MODALITY[name]}",
            )
        layouts[name] = layout
    return layouts


def image_file(layout: SubsetLayout, case_id: str) -> str:
    """The image path of ``case_id`` relative to the output folder (POSIX)."""
    return fill(layout.images, case_id)


def label_file(layout: SubsetLayout, case_id: str) -> str | None:
    """The label path of ``case_id`` relative to the output folder; None when the subset has none."""
    return None if layout.labels is None else fill(layout.labels, case_id)


def top_folders(layouts: dict[str, SubsetLayout]) -> list[str]:
    """First path components of every template (the folders a phantom owns), in order, once each."""
    tops: list[str] = []
    for layout in layouts.values():
        for template in (layout.images, layout.labels):
            if template is not None:
                parts = PurePosixPath(template).parts
                if len(parts) > 1 and parts[0] not in tops:
                    tops.append(parts[0])
    return tops
