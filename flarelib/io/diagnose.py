"""Why a file cannot be read: one pass over its bytes (gzip integrity, the voxel bytes a NIfTI
header promises, NaN / inf float voxels) and the one-line diagnosis after a SimpleITK failure
(empty, truncated or corrupt gzip, NIfTI-2, text or other non-NIfTI content).

SimpleITK does none of these checks itself: it reads a truncated file without complaint (the
missing voxels come back as zeros) and turns NaN/inf into 0.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flarelib.errors import FlareInputError
from flarelib.io._common import _GZIP_MAGIC, _NIFTI_SUFFIXES, _first_line, _suffix

_CHUNK = 1 << 20

_FLOAT_CODES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 / float64


@dataclass(frozen=True)
class _Layout:
    """Where a single-file NIfTI keeps its voxels: bytes ``[first, first + nbytes)``."""

    first: int
    nbytes: int
    float_dtype: np.dtype | None  # float32/float64 (with byte order) or None for other types


def _nifti_layout(head: bytes) -> _Layout | None:
    """The voxel layout a single-file NIfTI-1/2 header promises, or None (not NIfTI, header/image
    pairs, nonsense dims)."""
    if len(head) < 348:
        return None
    for order in "<>":
        size = int(np.frombuffer(head, f"{order}i4", 1, 0)[0])
        if size == 348 and head[344:348] == b"n+1\x00":
            code = int(np.frombuffer(head, f"{order}i2", 1, 70)[0])
            bitpix = int(np.frombuffer(head, f"{order}i2", 1, 72)[0])
            dims = [int(d) for d in np.frombuffer(head, f"{order}i2", 8, 40)]
            first = max(int(np.frombuffer(head, f"{order}f4", 1, 108)[0]), 352)
        elif size == 540 and len(head) >= 540 and head[4:8] == b"n+2\x00":
            code = int(np.frombuffer(head, f"{order}i2", 1, 12)[0])
            bitpix = int(np.frombuffer(head, f"{order}i2", 1, 14)[0])
            dims = [int(d) for d in np.frombuffer(head, f"{order}i8", 8, 16)]
            first = max(int(np.frombuffer(head, f"{order}i8", 1, 168)[0]), 544)
        else:
            continue
        if not 1 <= dims[0] <= 7 or bitpix <= 0 or bitpix % 8:
            return None
        nvox = int(np.prod([max(d, 1) for d in dims[1 : dims[0] + 1]]))
        fdtype = np.dtype(order + _FLOAT_CODES[code]) if code in _FLOAT_CODES else None
        return _Layout(first, nvox * bitpix // 8, fdtype)
    return None


class _VoxelScan:
    """Fed a NIfTI byte stream in pieces: counts NaN/inf float voxels and the bytes present.

    Needed because SimpleITK's NIfTI reader silently turns NaN/inf into 0 and zero-fills voxel data
    missing from a short file.
    """

    def __init__(self) -> None:
        self.n_nan = 0
        self.n_inf = 0
        self.layout: _Layout | None = None
        self._head = bytearray()
        self._parsed = False
        self.n_bytes = 0  # stream length so far
        self._rest = b""  # bytes of a value split between two pieces

    def feed(self, data: bytes) -> None:
        if not self._parsed:
            self._head += data
            if len(self._head) < 544:
                return
            data = self._parse()
        self._count(data)

    def finish(self) -> None:
        if not self._parsed:
            self._count(self._parse())

    @property
    def missing_bytes(self) -> int:
        """How many voxel-data bytes the header promises beyond the end of the stream."""
        if self.layout is None:
            return 0
        return max(self.layout.first + self.layout.nbytes - self.n_bytes, 0)

    def _parse(self) -> bytes:
        head, self._head = bytes(self._head), bytearray()
        self.layout, self._parsed = _nifti_layout(head), True
        return head

    def _count(self, data: bytes) -> None:
        begin = self.n_bytes
        self.n_bytes += len(data)
        if self.layout is None or self.layout.float_dtype is None:
            return
        dtype, first = self.layout.float_dtype, self.layout.first
        lo, hi = max(first, begin), min(first + self.layout.nbytes, self.n_bytes)
        if hi <= lo:
            return
        piece = data[lo - begin : hi - begin]
        buf = self._rest + piece if self._rest else piece
        whole = len(buf) - len(buf) % dtype.itemsize
        values = np.frombuffer(buf, dtype, whole // dtype.itemsize)
        self._rest = buf[whole:]
        n_bad = values.size - int(np.count_nonzero(np.isfinite(values)))
        if n_bad:
            n_nan = int(np.count_nonzero(np.isnan(values)))
            self.n_nan += n_nan
            self.n_inf += n_bad - n_nan


@dataclass
class _Scan:
    gzip_problem: str | None = None
    data_problem: str | None = None
    n_nan: int = 0
    n_inf: int = 0


def _scan_file(path: Path, *, inspect_nifti: bool = True) -> _Scan:
    """One pass over the file's bytes, before SimpleITK reads it.

    Checks that the gzip stream (if any) is complete and CRC-correct and, with ``inspect_nifti``,
    that the NIfTI holds all the voxel bytes its header promises, counting NaN / inf float voxels.
    SimpleITK does none of this: it reads a truncated file without complaint (the missing voxels
    come back as zeros) and turns NaN/inf into 0. Output is decompressed in bounded pieces and
    dropped, so memory stays small.
    """
    scan = _VoxelScan() if inspect_nifti else None
    with open(path, "rb") as fh:
        is_gzip = fh.read(2) == _GZIP_MAGIC
    dec = None
    members = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                if not is_gzip:
                    if scan is None:
                        break
                    scan.feed(chunk)
                    continue
                data = chunk
                while data:
                    if dec is None:
                        dec = zlib.decompressobj(wbits=31)
                    out = dec.decompress(data, _CHUNK * 16)
                    if scan is not None:
                        scan.feed(out)
                    if dec.eof:  # one gzip member done; what follows may be another member
                        members += 1
                        data, dec = dec.unused_data, None
                    else:
                        data = dec.unconsumed_tail
        if dec is not None:
            out = dec.flush()
            if scan is not None:
                scan.feed(out)
            if dec.eof:
                members, dec = members + 1, None
    except zlib.error as exc:
        return _Scan(gzip_problem=f"corrupt gzip data ({exc})")
    if is_gzip and (dec is not None or members == 0):
        return _Scan(gzip_problem="truncated gzip data (the compressed stream ends early)")
    if scan is None:
        return _Scan()
    scan.finish()
    result = _Scan(n_nan=scan.n_nan, n_inf=scan.n_inf)
    if scan.missing_bytes and scan.layout is not None:
        need = scan.layout.nbytes
        result.data_problem = (
            f"truncated file: {scan.missing_bytes} of the {need} voxel-data bytes its header promises "
            "are missing"
        )
    return result


def _read_head(path: Path, n: int = 544) -> bytes:
    """The first ``n`` bytes of the file, decompressed if it is gzip (best effort)."""
    with open(path, "rb") as fh:
        raw = fh.read(1 << 16)
    if raw.startswith(_GZIP_MAGIC):
        try:
            return zlib.decompressobj(wbits=31).decompress(raw, n)
        except zlib.error:
            return b""
    return raw[:n]


def _nifti_header_problem(head: bytes) -> str | None:
    """None if ``head`` starts with a NIfTI-1/2 header, else a short description of what it is."""
    sample = head[:200]
    if sample and all(32 <= c < 127 or c in (9, 10, 13) for c in sample):
        return "not a NIfTI file (it is text)"
    if len(head) < 348:
        return f"not a NIfTI file (too short for a NIfTI header: {len(head)} bytes)"
    for order in ("<", ">"):
        size = int(np.frombuffer(head[:4], dtype=f"{order}i4")[0])
        if size == 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
            return None
        if size == 540 and head[4:8] in (b"n+2\x00", b"ni2\x00"):
            return None
    return "not a NIfTI file (no NIfTI header magic)"


def _is_nifti2(head: bytes) -> bool:
    return len(head) >= 8 and head[4:8] in (b"n+2\x00", b"ni2\x00")


def _diagnose(path: Path, exc: Exception | None) -> FlareInputError:
    """Explain why SimpleITK could not read ``path`` (called only after a failure)."""
    fix_redo = "re-download or re-export the file (and check it with `gzip -t`)"
    if path.stat().st_size == 0:
        return FlareInputError(path, "empty file (0 bytes)", fix_redo)
    with open(path, "rb") as fh:
        is_gzip = fh.read(2) == _GZIP_MAGIC
    if is_gzip:
        gz = _scan_file(path, inspect_nifti=False).gzip_problem
        if gz is not None:
            return FlareInputError(path, f"truncated or corrupt gzip: {gz}", fix_redo)
    head = _read_head(path)
    if _is_nifti2(head):
        return FlareInputError(
            path,
            "NIfTI-2 file, which SimpleITK cannot read",
            "convert it to NIfTI-1: "
            "nibabel.save(nibabel.Nifti1Image.from_image(nibabel.load(file)), new_file)",
        )
    if _suffix(path) in _NIFTI_SUFFIXES:
        problem = _nifti_header_problem(head)
        if problem is not None:
            if not is_gzip and _suffix(path) == ".nii.gz":
                problem = f"named .nii.gz but not gzip-compressed, and {problem}"
            return FlareInputError(path, problem, "pass a NIfTI (.nii or .nii.gz) image")
    return FlareInputError(path, f"SimpleITK cannot read it ({_first_line(exc)})", fix_redo)


def _nifti_spacing_problem(head: bytes) -> str | None:
    """What is wrong with the voxel sizes (``pixdim[1..3]``, mm) of a NIfTI-1/2 header, or None.

    SimpleITK never says: it reads a zero voxel size as 1 mm and a negative one as its absolute
    value with the axis flipped, so distances, scores and the affine of anything written on that
    grid are silently wrong. ``pixdim[0]`` (qfac) and the time axis are not voxel sizes.
    """
    if len(head) < 348:
        return None
    for order in "<>":
        size = int(np.frombuffer(head, f"{order}i4", 1, 0)[0])
        if size == 348:
            dims = np.frombuffer(head, f"{order}i2", 8, 40)
            pixdim = np.frombuffer(head, f"{order}f4", 8, 76).astype(np.float64)
        elif size == 540 and len(head) >= 540:
            dims = np.frombuffer(head, f"{order}i8", 8, 16)
            pixdim = np.frombuffer(head, f"{order}f8", 8, 104)
        else:
            continue
        n = min(max(int(dims[0]), 0), 3)
        sizes = [float(v) for v in pixdim[1 : 1 + n]]
        bad = [(a, v) for a, v in zip("xyz", sizes, strict=False) if not (np.isfinite(v) and v > 0)]
        if not bad:
            return None
        what = ", ".join(f"{axis} = {v:g}" for axis, v in bad)
        if all(v < 0 for _, v in bad):
            quirk = "SimpleITK would flip that axis"
        elif all(v == 0 for _, v in bad):
            quirk = "SimpleITK would read it as 1 mm"
        else:
            quirk = "SimpleITK would read 0 as 1 mm and flip a negative axis"
        return (
            f"voxel size {what} mm in the NIfTI header (pixdim[1..{n}] = "
            f"{', '.join(f'{v:g}' for v in sizes)}); it must be positive ({quirk}, so every "
            "distance would be wrong)"
        )
    return None
