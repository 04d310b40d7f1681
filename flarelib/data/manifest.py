"""Read and write ``dataset.json`` manifests (the format of ``../shared/data/dataset.json``).

A manifest maps each dataset's own label ids to FLARE ids (``label_to_flare``), lists the FLARE organs
the dataset does not annotate (``flare_not_annotated``) and enumerates its files, either as a
``cases`` list (``{"id", "image", "label"?, "split"?, ...}``) or, for TotalSegmentator-style
datasets, as a ``files`` mapping whose label entries name their ``image`` and label ``task``
(the label variant, e.g. ``total`` / ``total_mr``). File paths in a manifest are relative to the
folder holding it.

Only geometry-free bookkeeping lives here; voxels are read by :mod:`flarelib.io`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flarelib.errors import FlareInputError
from flarelib.labels import ORGANS, LabelMap, label_map_from_manifest_entry
from flarelib.paths import atomic_write_text

SCHEMA_VERSION = 1

#: The ``conventions`` block written into every manifest (same wording as the real data's).
CONVENTIONS: dict[str, str] = {
    "affine": "NIfTI RAS+ world (nibabel); SimpleITK reports the same geometry in LPS",
    "orientation": "nibabel aff2axcodes: the patient direction each voxel axis (i,j,k) points to",
    "label_to_flare": "source label id -> FLARE24 id (0 = background)",
    "flare_not_annotated": "FLARE organs absent from the annotation protocol: IGNORE them in loss and "
    "metrics; do not treat their voxels as background",
    "source_labels_mapped_to_background": "annotated source structures that are not FLARE organs",
}


@dataclass(frozen=True)
class ManifestCase:
    """One image (and its label, if any) listed in a manifest.

    ``image`` / ``label`` are absolute paths (manifest folder + the relative path in the file);
    ``id`` is the case id as a string; ``split`` the manifest's split name or None; ``variant`` the
    label set (TotalSegmentator task) or None; ``label_map`` maps the label's ids to FLARE ids
    (None when there is no label).
    """

    dataset: str
    id: str
    image: Path
    label: Path | None
    split: str | None
    label_map: LabelMap | None = field(default=None, compare=False)
    variant: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest. ``path`` is the JSON file; ``root`` the folder its paths are relative to."""

    path: Path
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def datasets(self) -> dict[str, Mapping[str, Any]]:
        """``{name: entry}`` in file order."""
        return dict(self.raw["datasets"])

    def _entry(self, dataset: str) -> Mapping[str, Any]:
        datasets = self.raw["datasets"]
        if dataset not in datasets:
            raise FlareInputError(
                self.path,
                f"no dataset {dataset!r} in the manifest",
                f"use one of {', '.join(sorted(datasets)) or '(none)'} in the params' data.subsets",
            )
        return datasets[dataset]

    def variants(self, dataset: str) -> list[str]:
        """Label sets of a multi-variant dataset (e.g. ``['total', 'total_mr']``); ``[]`` otherwise."""
        raw = self._entry(dataset)["label_to_flare"]
        first = next(iter(raw.values()), None)
        return list(raw) if isinstance(first, Mapping) else []

    def label_map(self, dataset: str, variant: str | None = None) -> LabelMap:
        """The :class:`LabelMap` of ``dataset`` (``variant`` picks a label set where there are several).

        Raises :class:`FlareInputError` naming the manifest for an unknown dataset or variant.
        """
        entry = self._entry(dataset)
        variants = self.variants(dataset)
        if variants and variant is None:
            raise FlareInputError(
                self.path,
                f"dataset {dataset!r} has several label sets ({', '.join(variants)})",
                "name one as label_variant in the subset layout",
            )
        if variants and variant not in variants:
            raise FlareInputError(
                self.path,
                f"dataset {dataset!r} has no label set {variant!r}",
                f"use one of {', '.join(variants)}",
            )
        if not variants:
            variant = None  # single-map datasets ignore the variant
        try:
            return label_map_from_manifest_entry(dataset, entry, variant)
        except (ValueError, KeyError, TypeError) as exc:
            raise FlareInputError(
                self.path, f"dataset {dataset!r}: bad label_to_flare ({exc})", "fix the manifest"
            ) from None

    def cases(self, dataset: str) -> list[ManifestCase]:
        """Every image of ``dataset`` with its label, split and label map, in manifest order.

        ``cases`` lists give one case per entry; a ``files`` mapping gives one case per label entry
        (``image`` + ``task``; the task is the label variant) plus one unlabeled case for each image
        no label entry names.
        """
        entry = self._entry(dataset)
        out: list[ManifestCase] = []
        if "cases" in entry:
            split_of = {}
            for split, ids in (entry.get("splits") or {}).items():
                for i in ids:
                    split_of.setdefault(str(i), split)
            maps: dict[str | None, LabelMap] = {}
            for n, case in enumerate(entry["cases"]):
                if not isinstance(case, Mapping) or "image" not in case or "id" not in case:
                    raise FlareInputError(
                        self.path,
                        f"dataset {dataset!r}: cases[{n}] needs 'id' and 'image'",
                        "fix the manifest",
                    )
                cid = str(case["id"])
                label = case.get("label")
                lmap = None
                if label is not None:
                    variant = case.get("variant")
                    if variant not in maps:
                        maps[variant] = self.label_map(dataset, variant)
                    lmap = maps[variant]
                out.append(
                    ManifestCase(
                        dataset=dataset,
                        id=cid,
                        image=self.root / case["image"],
                        label=self.root / label if label is not None else None,
                        split=case.get("split", split_of.get(cid)),
                        label_map=lmap,
                        variant=case.get("variant"),
                    )
                )
        elif "files" in entry:
            files = entry["files"]
            key_of_path = {f.get("file"): k for k, f in files.items() if isinstance(f, Mapping)}
            paired: set[str] = set()
            for key, f in files.items():
                if not isinstance(f, Mapping) or "file" not in f:
                    raise FlareInputError(
                        self.path, f"dataset {dataset!r}: files[{key!r}] needs 'file'", "fix the manifest"
                    )
                if "image" not in f:
                    continue
                variant = f.get("task")
                image_key = key_of_path.get(f["image"], key)
                paired.add(image_key)
                out.append(
                    ManifestCase(
                        dataset=dataset,
                        id=image_key,
                        image=self.root / f["image"],
                        label=self.root / f["file"],
                        split=f.get("split"),
                        label_map=self.label_map(dataset, variant),
                        variant=variant,
                    )
                )
            labels = {f["file"] for f in files.values() if "image" in f}
            for key, f in files.items():
                if "image" in f or key in paired or f["file"] in labels:
                    continue
                out.append(ManifestCase(dataset, key, self.root / f["file"], None, f.get("split")))
        else:
            raise FlareInputError(
                self.path,
                f"dataset {dataset!r} has neither 'cases' nor 'files'",
                "list its files under 'cases'",
            )
        return out

    def all_cases(self) -> list[ManifestCase]:
        """:meth:`cases` of every dataset, in manifest order."""
        return [c for name in self.raw["datasets"] for c in self.cases(name)]


def _validate(raw: Any, path: Path, *, files_required: bool = True) -> None:
    if not isinstance(raw, Mapping):
        raise FlareInputError(path, "a manifest must be a JSON object", "see ../shared/data/dataset.json")
    version = raw.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise FlareInputError(
            path, f"schema_version {version!r} is not supported", f"write schema_version {SCHEMA_VERSION}"
        )
    datasets = raw.get("datasets")
    if not isinstance(datasets, Mapping):
        raise FlareInputError(
            path,
            "missing key 'datasets' (a mapping of dataset name -> entry)",
            "add it; see ../shared/data/dataset.json",
        )
    for name, entry in datasets.items():
        if not isinstance(entry, Mapping):
            raise FlareInputError(path, f"datasets[{name!r}] must be an object", "fix the manifest")
        for key in ("label_to_flare",):
            if key not in entry:
                raise FlareInputError(
                    path, f"datasets[{name!r}] is missing key {key!r}", "add its source id -> FLARE id map"
                )
        if not isinstance(entry["label_to_flare"], Mapping) or not entry["label_to_flare"]:
            raise FlareInputError(
                path, f"datasets[{name!r}].label_to_flare must be a non-empty object", "fix the manifest"
            )
        if files_required and "cases" not in entry and "files" not in entry:
            raise FlareInputError(
                path, f"datasets[{name!r}] has neither 'cases' nor 'files'", "list its files under 'cases'"
            )
        if "cases" in entry and not isinstance(entry["cases"], list):
            raise FlareInputError(path, f"datasets[{name!r}].cases must be a list", "fix the manifest")
        if "files" in entry and not isinstance(entry["files"], Mapping):
            raise FlareInputError(path, f"datasets[{name!r}].files must be an object", "fix the manifest")


def load_manifest(path: str | os.PathLike, *, files_required: bool = True) -> Manifest:
    """Read and validate a manifest; every dataset's label map is checked (ids must be FLARE 0..13).

    ``files_required=False`` accepts datasets that list no files (neither ``cases`` nor ``files``):
    a manifest read only for its label maps, as ``flarelib evaluate --manifest`` does.

    Raises :class:`FlareInputError` naming the file when it is missing, not JSON, or lacks keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FlareInputError(
            path,
            "manifest not found",
            "check data.root / data.manifest (phantom track: run `flarelib generate`)",
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FlareInputError(
            path,
            f"not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})",
            "fix or regenerate the manifest",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlareInputError(path, f"cannot read the manifest ({exc})", "check the file") from None
    _validate(raw, path, files_required=files_required)
    manifest = Manifest(path.resolve(), raw)
    for name in raw["datasets"]:
        for variant in manifest.variants(name) or [None]:
            manifest.label_map(name, variant)
    return manifest


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return Path(obj).as_posix()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def write_manifest(
    path: str | os.PathLike, datasets: Mapping[str, Mapping[str, Any]], generated_by: str = "flarelib"
) -> Path:
    """Write a manifest (schema_version 1, flare24_labels, conventions, ``datasets``) atomically.

    ``datasets`` is ``{name: entry}`` with at least ``label_to_flare`` and ``cases`` (or ``files``);
    case paths are relative to the manifest's folder (``Path`` values are written as POSIX strings,
    numpy scalars/arrays as plain numbers/lists). The result is validated like :func:`load_manifest`
    before anything is written. Returns the path.
    """
    path = Path(path)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "generated_by": generated_by,
        "conventions": dict(CONVENTIONS),
        "flare24_labels": {str(k): v for k, v in ORGANS.items()},
        "datasets": {str(k): v for k, v in datasets.items()},
    }
    text = json.dumps(doc, indent=1, default=_jsonable) + "\n"
    raw = json.loads(text)
    _validate(raw, path)
    manifest = Manifest(path, raw)
    for name in raw["datasets"]:
        for variant in manifest.variants(name) or [None]:
            manifest.label_map(name, variant)
    return atomic_write_text(path, text)
