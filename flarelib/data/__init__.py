"""Datasets: manifests (dataset.json), FLARE24-style layouts and case discovery, and the data check.

``flarelib.data.check`` (``check_dataset``, the ``check-data`` command) is imported on first use so
that ``python -m flarelib.data.check`` runs cleanly.
"""

from __future__ import annotations

from typing import Any

from flarelib.data.layout import Case, discover, lld_patients, load_case, natural_key, parse_lld_case_id
from flarelib.data.manifest import Manifest, ManifestCase, load_manifest, write_manifest
from flarelib.data.roles import LABELLED_ROLES, UNLABELLED_ROLES, VALIDATION_ROLES, select_cases

__all__ = [
    "LABELLED_ROLES",
    "UNLABELLED_ROLES",
    "VALIDATION_ROLES",
    "Case",
    "CheckReport",
    "Manifest",
    "ManifestCase",
    "check_dataset",
    "discover",
    "lld_patients",
    "load_case",
    "load_manifest",
    "natural_key",
    "parse_lld_case_id",
    "select_cases",
    "write_manifest",
]


def __getattr__(name: str) -> Any:
    if name in ("check_dataset", "CheckReport"):
        from flarelib.data import check

        return getattr(check, name)
    raise AttributeError(f"module 'flarelib.data' has no attribute {name!r}")
