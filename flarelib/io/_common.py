"""Small helpers the io modules share: format suffixes, the gzip magic, message formatting."""

from __future__ import annotations

from pathlib import Path

_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_GZIP_MAGIC = b"\x1f\x8b"


def _suffix(path: Path) -> str:
    """The format suffix of ``path``: ``.nii.gz`` counts as one suffix."""
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def _fmt(values, digits: int = 4) -> str:
    return "(" + ", ".join(f"{float(v):.{digits}g}" for v in values) + ")"


def _first_line(exc: Exception | None) -> str:
    if exc is None:
        return "unknown reason"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    err = [ln for ln in lines if "ERROR" in ln or "rror" in ln]
    text = (err[-1] if err else lines[-1]) if lines else type(exc).__name__
    return text.replace("sitk::ERROR: ", "")[:200]
