"""The "this phantom is complete" marker: ``GENERATED.json`` with the hash of the params that made it.

The one owner of the marker. :func:`flarelib.data.phantom.generate` removes it before writing (a
half-written phantom never looks complete), ``flarelib generate`` writes it when done, and
:func:`flarelib.datasets.ensure_data` reuses a folder whose marker holds the run's key and
regenerates otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flarelib.config import Params, params_hash
from flarelib.paths import atomic_write_text

__all__ = ["MARKER", "clear_marker", "marker_key", "phantom_key", "write_marker"]

MARKER = "GENERATED.json"


def phantom_key(params: Params) -> str:
    """Hash of everything the phantom depends on: its section and the master seed."""
    return params_hash({"phantom": params.phantom, "seed": params.run.seed})


def write_marker(params: Params, folder: str | os.PathLike) -> Path:
    """Mark ``folder`` as the complete phantom of ``params``; returns the marker's path."""
    text = json.dumps({"key": phantom_key(params), "profile": params.run.profile}) + "\n"
    return atomic_write_text(Path(folder) / MARKER, text)


def clear_marker(folder: str | os.PathLike) -> None:
    """Remove the marker of ``folder`` (nothing when it has none)."""
    (Path(folder) / MARKER).unlink(missing_ok=True)


def marker_key(folder: str | os.PathLike) -> str | None:
    """The key in the marker of ``folder``; None when there is no marker or it is unreadable."""
    path = Path(folder) / MARKER
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    key = doc.get("key") if isinstance(doc, dict) else None
    return key if isinstance(key, str) else None
