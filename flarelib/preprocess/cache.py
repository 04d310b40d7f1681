"""An on-disk cache of preprocessed training volumes, as nnU-Net keeps a preprocessed folder.

Every training stage reads its volumes through :func:`flarelib.train.stages.load_train_volume`
(reorient, resample, intensity: :func:`flarelib.preprocess.prepare_case`). Resampling a real MR or
CT volume takes seconds, and a study trains ~14 models on the same volumes, so the prepared arrays
are kept on disk, one folder per key, and read back bit-identical.

The key is a hash of everything the arrays depend on: each input file's resolved path, size and
modification time (an edited or replaced file is a new key), the spacing (mm, z y x), the
intensity mode, the modality, the label map (source ids to FLARE ids), the ``preprocess`` params
section and :data:`CACHE_VERSION` (raised whenever ``prepare_case`` changes what it makes). An
entry is ``<key>/image.npy`` (float32, z y x) and ``<key>/label.npy`` (uint8) when there is a
label, written atomically: a torn or unreadable entry is computed again, never used.

Where: ``$FLARE_PREPROCESSED``, else ``<outputs>/_preprocessed`` (``outputs_root()``);
``FLARE_PREPROCESSED=off`` turns the cache off. ``make clean`` removes it with ``outputs/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flarelib.paths import outputs_root, temp_path

__all__ = ["CACHE_VERSION", "ENV", "cache_dir", "cache_key", "load", "store"]

#: Raise when prepare_case's output for the same inputs changes (invalidates every entry).
CACHE_VERSION = 1
ENV = "FLARE_PREPROCESSED"


def cache_dir() -> Path | None:
    """The cache folder, or None when ``FLARE_PREPROCESSED=off``."""
    env = os.environ.get(ENV, "").strip()
    if env.lower() in ("off", "0", "false", "no"):
        return None
    return Path(env).expanduser() if env else outputs_root() / "_preprocessed"


def _identity(path: str | os.PathLike | None) -> list | None:
    if path is None:
        return None
    p = Path(path).resolve()
    st = p.stat()
    return [str(p), st.st_size, st.st_mtime_ns]


def cache_key(
    image: str | os.PathLike,
    label: str | os.PathLike | None,
    *,
    spacing_zyx: Sequence[float],
    intensity: str,
    modality: str,
    preprocess,
    label_map=None,
) -> str:
    """The entry name of one prepared case (see the module docstring); ``label_map``: how the label
    file's ids become FLARE ids (:class:`flarelib.labels.LabelMap`), part of the label's identity."""
    record = {
        "version": CACHE_VERSION,
        "image": _identity(image),
        "label": _identity(label),
        "spacing_zyx": [round(float(s), 6) for s in spacing_zyx],
        "intensity": intensity,
        "modality": modality,
        "preprocess": dataclasses.asdict(preprocess) if preprocess is not None else None,
        "label_map": None if label_map is None else sorted(dict(label_map.to_flare).items()),
    }
    blob = json.dumps(record, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def load(key: str, with_label: bool) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The cached ``(image, label)`` of ``key``, or None when absent, incomplete or unreadable."""
    root = cache_dir()
    if root is None:
        return None
    folder = root / key
    try:
        image = np.load(folder / "image.npy", allow_pickle=False)
        label = np.load(folder / "label.npy", allow_pickle=False) if with_label else None
    except (OSError, ValueError, EOFError):
        return None
    if label is not None and label.shape != image.shape:
        return None
    return image, label


def _save(path: Path, array: np.ndarray) -> None:
    tmp = temp_path(path, ".npy")
    try:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def store(key: str, image: np.ndarray, label: np.ndarray | None) -> Path | None:
    """Write one entry (the label first, so a present ``image.npy`` means a complete entry)."""
    root = cache_dir()
    if root is None:
        return None
    folder = root / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if label is not None:
            _save(folder / "label.npy", label)
        _save(folder / "image.npy", image)
    except OSError:
        return None  # a full or read-only disk costs speed, not the run
    return folder
