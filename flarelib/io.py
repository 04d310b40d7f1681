"""NIfTI read/write that keeps the full geometry, LPS reorientation, and atomic writes.

Conventions (the whole library follows them):

* ``Volume.array`` is indexed ``[z, y, x]`` = ``[k, j, i]``: numpy order, the reverse of the NIfTI /
  SimpleITK voxel index ``(i, j, k)``.
* ``spacing_zyx`` is in mm, in array order (z, y, x).
* ``origin_xyz`` and every world coordinate are in mm, in the LPS+ world of SimpleITK / DICOM
  (x grows to the patient's Left, y to Posterior, z to Superior). nibabel reports the same file in
  RAS+; the two differ by ``diag(-1, -1, 1)`` on the world side only.
* ``direction`` is the 3x3 LPS direction-cosine matrix exactly as SimpleITK holds it: column ``c`` is
  the world direction of voxel axis ``c`` in (i, j, k) = (x, y, z) order.

Orientation codes are the ITK/DICOM three-letter codes of ``DICOMOrientImageFilter``: letter ``c``
names the patient direction that voxel axis ``c`` (i, j, k order) points TO. The identity direction
is ``"LPS"``. This is the same convention as nibabel's ``aff2axcodes`` (which also names where each
axis points to), so for the same file the two give the SAME letters: checked on BTCV
``image_0.nii.gz``, where nibabel says ``('L', 'A', 'S')`` and this module says ``"LAS"``. The LPS vs
RAS choice of world axes changes the signs in the matrices, never the anatomical letters.

Every bad input stops with one :class:`~flarelib.errors.FlareInputError` line naming the file and
the fix (missing file, truncated or corrupt gzip, not a NIfTI, 2-D / 4-D / multi-component image,
NaN or inf voxels, image/label grid mismatch, non-integer or unknown label ids).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from flarelib.errors import FlareInputError
from flarelib.labels import LabelMap

__all__ = [
    "Volume",
    "check_same_grid",
    "orientation_code",
    "read_case",
    "read_image",
    "read_label",
    "reorient",
    "reorient_to_lps",
    "same_grid",
    "write_image",
]

#: Output suffixes :func:`write_image` accepts (single-file formats only, so the write stays atomic).
WRITE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".mha", ".nrrd")
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20

_ORIENT_PAIRS = ({"L", "R"}, {"P", "A"}, {"S", "I"})


def _suffix(path: Path) -> str:
    """The format suffix of ``path``: ``.nii.gz`` counts as one suffix."""
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def _fmt(values, digits: int = 4) -> str:
    return "(" + ", ".join(f"{float(v):.{digits}g}" for v in values) + ")"


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D voxel array with its full world geometry.

    Attributes:
        array: voxel data, axis order (z, y, x) = (k, j, i).
        spacing_zyx: voxel size in mm, order (z, y, x).
        origin_xyz: LPS world position (mm, order x, y, z) of the centre of voxel ``array[0, 0, 0]``.
        direction: 3x3 float64 LPS direction cosines; column ``c`` is the world direction of voxel
            axis ``c`` in (i, j, k) order (``np.array(img.GetDirection()).reshape(3, 3)``).
        path: the file it was read from (for messages only), or None.

    Equality compares the grid (shape, spacing, origin, direction) exactly, never the voxel values
    or the path; use :func:`same_grid` for a tolerant comparison.
    """

    array: np.ndarray = field(repr=False)
    spacing_zyx: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    direction: np.ndarray = field(repr=False)
    path: Path | None = None

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise ValueError(f"Volume.array must be 3-D (z, y, x), got shape {arr.shape}")
        spacing = tuple(float(s) for s in self.spacing_zyx)
        origin = tuple(float(o) for o in self.origin_xyz)
        if len(spacing) != 3 or len(origin) != 3:
            raise ValueError(f"spacing_zyx and origin_xyz need 3 values, got {spacing} and {origin}")
        if not all(s > 0 and np.isfinite(s) for s in spacing):
            raise ValueError(f"spacing_zyx must be positive and finite, got {spacing}")
        direction = np.array(self.direction, dtype=np.float64).reshape(3, 3)
        direction.setflags(write=False)
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "spacing_zyx", spacing)
        object.__setattr__(self, "origin_xyz", origin)
        object.__setattr__(self, "direction", direction)
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))

    # --- geometry -------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Volume):
            return NotImplemented
        return (
            self.shape == other.shape
            and self.spacing_zyx == other.spacing_zyx
            and self.origin_xyz == other.origin_xyz
            and np.array_equal(self.direction, other.direction)
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays: not hashable

    def __repr__(self) -> str:
        return (
            f"Volume(shape_zyx={self.shape}, dtype={self.array.dtype}, spacing_zyx={_fmt(self.spacing_zyx)}, "
            f"origin_xyz={_fmt(self.origin_xyz, 6)}, orientation={orientation_code(self)!r}, "
            f"path={str(self.path) if self.path else None!r})"
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape, order (z, y, x)."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_xyz(self) -> tuple[float, float, float]:
        """Voxel size in mm, order (x, y, z) = SimpleITK's ``GetSpacing()``."""
        return self.spacing_zyx[::-1]  # type: ignore[return-value]

    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix: homogeneous voxel index (i, j, k, 1) = (x, y, z, 1) -> LPS world (mm, 1)."""
        aff = np.eye(4)
        aff[:3, :3] = self.direction @ np.diag(self.spacing_xyz)
        aff[:3, 3] = self.origin_xyz
        return aff

    def world_coords(self, index_zyx: np.ndarray) -> np.ndarray:
        """LPS world positions (mm, columns x, y, z) of voxel indices given in (z, y, x) order.

        ``index_zyx`` is ``(N, 3)`` (or a single ``(3,)`` index); fractional indices are allowed.
        Returns ``(N, 3)`` (or ``(3,)``) float64.
        """
        idx = np.asarray(index_zyx, dtype=np.float64)
        single = idx.ndim == 1
        idx = np.atleast_2d(idx)
        if idx.shape[-1] != 3:
            raise ValueError(f"index_zyx must have 3 columns (z, y, x), got shape {idx.shape}")
        aff = self.affine_lps
        world = idx[:, ::-1] @ aff[:3, :3].T + aff[:3, 3]
        return world[0] if single else world

    def with_array(self, array: np.ndarray) -> Volume:
        """The same geometry (and path) with new voxel data of the same (z, y, x) shape."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise ValueError(f"with_array: shape {array.shape} does not match the volume's {self.shape}")
        return Volume(array, self.spacing_zyx, self.origin_xyz, self.direction, self.path)

    # --- SimpleITK bridge ---------------------------------------------------------------------
    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with the same voxels and geometry (bool is stored as uint8)."""
        arr = self.array
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr), isVector=False)
        img.SetSpacing(self.spacing_xyz)
        img.SetOrigin(self.origin_xyz)
        img.SetDirection(tuple(float(v) for v in self.direction.ravel()))
        return img

    @classmethod
    def from_sitk(cls, img: sitk.Image, path: str | Path | None = None) -> Volume:
        """Wrap a 3-D scalar SimpleITK image (voxels copied into a (z, y, x) array)."""
        if img.GetDimension() != 3:
            raise FlareInputError(
                path or "<image>",
                f"expected a 3-D image, got a {img.GetDimension()}-D one of size {img.GetSize()}",
                "pass a single 3-D volume",
            )
        if img.GetNumberOfComponentsPerPixel() != 1:
            raise FlareInputError(
                path or "<image>",
                f"expected one value per voxel, got {img.GetNumberOfComponentsPerPixel()} components",
                "save each component (channel) as its own 3-D file",
            )
        return cls(
            sitk.GetArrayFromImage(img),
            tuple(img.GetSpacing())[::-1],
            tuple(img.GetOrigin()),
            np.array(img.GetDirection(), dtype=np.float64).reshape(3, 3),
            Path(path) if path is not None else None,
        )


# --- reading ------------------------------------------------------------------------------------
def _check_exists(path: Path) -> None:
    if not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        hint = "check the path and the data root (env FLARE_DATA / params)"
        if parent.is_dir():
            near = sorted(p.name for p in parent.iterdir() if p.name.startswith(path.name.split(".")[0]))
            if near:
                hint += f"; similar names here: {', '.join(near[:5])}"
        raise FlareInputError(path, "file not found", hint)
    if path.is_dir():
        raise FlareInputError(path, "is a folder, not an image file", "pass the path of a .nii.gz file")


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


def _first_line(exc: Exception | None) -> str:
    if exc is None:
        return "unknown reason"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    err = [ln for ln in lines if "ERROR" in ln or "rror" in ln]
    text = (err[-1] if err else lines[-1]) if lines else type(exc).__name__
    return text.replace("sitk::ERROR: ", "")[:200]


def _read_sitk(path: str | Path) -> sitk.Image:
    """Read ``path`` as one 3-D scalar SimpleITK image, or raise a one-line FlareInputError."""
    path = Path(path)
    _check_exists(path)
    is_nifti = _suffix(path) in _NIFTI_SUFFIXES
    with open(path, "rb") as fh:
        is_gzip = fh.read(2) == _GZIP_MAGIC
    scan = _scan_file(path, inspect_nifti=is_nifti) if is_gzip or is_nifti else _Scan()
    fix_redo = "re-download or re-export the file (`gzip -t` checks a .gz)"
    if scan.gzip_problem is not None:
        raise FlareInputError(path, f"truncated or corrupt gzip: {scan.gzip_problem}", fix_redo)
    if scan.data_problem is not None:
        raise FlareInputError(path, scan.data_problem, fix_redo)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    if is_nifti:
        reader.SetImageIO("NiftiImageIO")
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise _diagnose(path, exc) from None
    dim, size = reader.GetDimension(), reader.GetSize()
    if dim == 4:
        raise FlareInputError(
            path,
            f"4-D image (size x,y,z,t = {size}): {size[3]} volumes in one file",
            "save each 3-D volume as its own file (e.g. nibabel.funcs.four_to_three)",
        )
    if dim != 3:
        raise FlareInputError(
            path,
            f"{dim}-D image (size {size}); a 3-D volume is needed",
            "stack the slices into one 3-D NIfTI",
        )
    if reader.GetNumberOfComponents() != 1:
        raise FlareInputError(
            path,
            f"{reader.GetNumberOfComponents()} values per voxel (vector/RGB image); one is needed",
            "save each component (channel) as its own 3-D file",
        )
    if scan.n_nan or scan.n_inf:
        raise _nonfinite_error(path, scan.n_nan, scan.n_inf, int(np.prod(size)))
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise _diagnose(path, exc) from None


def _nonfinite_error(path: Path, n_nan: int, n_inf: int, total: int) -> FlareInputError:
    return FlareInputError(
        path,
        f"{n_nan} NaN and {n_inf} inf voxels (of {total})",
        "repair or re-export the image (e.g. replace them with the background value) before using it",
    )


def _check_finite(arr: np.ndarray, path: Path) -> None:
    """Non-NIfTI formats keep NaN/inf through SimpleITK: check the array too."""
    if not np.issubdtype(arr.dtype, np.floating):
        return
    finite = np.isfinite(arr)
    if not finite.all():
        n_nan = int(np.isnan(arr).sum())
        raise _nonfinite_error(path, n_nan, int(arr.size - finite.sum()) - n_nan, arr.size)


def read_image(path: str | Path, *, dtype: np.dtype | type | None = np.float32) -> Volume:
    """Read a 3-D image (NIfTI ``.nii``/``.nii.gz``; other SimpleITK formats by their suffix).

    Voxels come back as ``array[z, y, x]`` with NIfTI ``scl_slope``/``scl_inter`` applied (so BTCV's
    uint8-on-disk CT reads in HU) and cast to ``dtype`` (``None`` keeps the type SimpleITK returns).
    Spacing (mm, z y x), origin (LPS mm) and direction (incl. oblique) are kept exactly as stored.
    A 4-D file whose 4th dimension is 1 reads as 3-D.

    Raises:
        FlareInputError: missing file, truncated/corrupt gzip, truncated voxel data, not a NIfTI
            (or a NIfTI-2, which SimpleITK cannot read), not 3-D or not scalar, NaN or inf voxels.
            SimpleITK alone would zero-fill truncated data and read NaN/inf as 0; this checks the
            file's bytes first (one extra decompression pass).
    """
    path = Path(path)
    vol = Volume.from_sitk(_read_sitk(path), path)
    _check_finite(vol.array, path)
    if dtype is not None and vol.array.dtype != np.dtype(dtype):
        vol = vol.with_array(vol.array.astype(dtype))
    return vol


def read_label(path: str | Path, label_map: LabelMap | None = None) -> Volume:
    """Read a 3-D label volume as uint8 ``array[z, y, x]``, geometry as :func:`read_image`.

    Stored values must be integers (any storage type: CHAOS stores float64 0.0..4.0). With
    ``label_map`` the dataset's own ids are mapped to FLARE ids (an id the map does not know is an
    error); without it the ids are kept and must lie in 0..255.

    Raises:
        FlareInputError: the :func:`read_image` errors, plus non-integer values, ids outside 0..255,
            ids unknown to ``label_map`` (listed, with the map's name).
    """
    path = Path(path)
    vol = Volume.from_sitk(_read_sitk(path), path)
    arr = vol.array
    if np.issubdtype(arr.dtype, np.floating):
        _check_finite(arr, path)
        frac = arr != np.round(arr)
        if frac.any():
            examples = ", ".join(f"{v:g}" for v in np.unique(arr[frac])[:5])
            raise FlareInputError(
                path,
                f"label file is not integer-valued: {int(frac.sum())} voxels hold fractions "
                f"(e.g. {examples})",
                "pass the label (segmentation) file, not an image; resample labels with nearest neighbour",
            )
        arr = arr.astype(np.int64)
    elif not np.issubdtype(arr.dtype, np.integer):
        raise FlareInputError(
            path, f"label voxels have type {arr.dtype}, not integers", "store labels as uint8 integer ids"
        )
    if label_map is not None:
        unknown = label_map.unknown_ids(arr)
        if unknown:
            known = sorted(label_map.to_flare)
            known_txt = f"{known[0]}..{known[-1]}" if len(known) > 20 else str(known)
            raise FlareInputError(
                path,
                f"label ids {unknown} are not in the '{label_map.name}' label map (known ids: {known_txt})",
                f"check that this file belongs to the '{label_map.name}' dataset, "
                "or add the ids to its label_to_flare table in dataset.json",
            )
        out = label_map.lut()[arr]  # ids checked above: every one is in the table
    else:
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise FlareInputError(
                path,
                f"label ids span {lo}..{hi}, outside 0..255 (uint8)",
                "pass the dataset's label_map to map its ids to FLARE ids",
            )
        out = arr.astype(np.uint8, copy=False)
    return vol.with_array(np.ascontiguousarray(out, dtype=np.uint8))


def read_case(
    image_path: str | Path, label_path: str | Path, label_map: LabelMap | None = None
) -> tuple[Volume, Volume]:
    """Read an image (float32) and its label (uint8, FLARE ids when ``label_map`` is given).

    Raises:
        FlareInputError: anything :func:`read_image` / :func:`read_label` raise, or grids that disagree.
    """
    image = read_image(image_path)
    label = read_label(label_path, label_map)
    check_same_grid(image, label)
    return image, label


# --- grids ----------------------------------------------------------------------------------------
def _grid_differences(a: Volume, b: Volume, atol_mm: float, atol_dir: float) -> list[str]:
    diffs = []
    if a.shape != b.shape:
        diffs.append(f"shape (z,y,x) {a.shape} vs {b.shape}")
    if not np.allclose(a.spacing_zyx, b.spacing_zyx, rtol=0, atol=atol_mm):
        diffs.append(f"spacing_zyx (mm) {_fmt(a.spacing_zyx, 6)} vs {_fmt(b.spacing_zyx, 6)}")
    if not np.allclose(a.origin_xyz, b.origin_xyz, rtol=0, atol=atol_mm):
        diffs.append(f"origin_xyz (LPS mm) {_fmt(a.origin_xyz, 6)} vs {_fmt(b.origin_xyz, 6)}")
    if not np.allclose(a.direction, b.direction, rtol=0, atol=atol_dir):
        dmax = float(np.abs(a.direction - b.direction).max())
        diffs.append(
            f"direction {orientation_code(a)} vs {orientation_code(b)} (max cosine difference {dmax:.3g})"
        )
    return diffs


def same_grid(a: Volume, b: Volume, *, atol_mm: float = 1e-3, atol_dir: float = 1e-4) -> bool:
    """True when both volumes share shape (z,y,x), spacing and origin (within ``atol_mm`` mm) and
    direction cosines (within ``atol_dir``), i.e. voxel ``[z, y, x]`` is the same place in both."""
    return not _grid_differences(a, b, atol_mm, atol_dir)


def check_same_grid(image: Volume, label: Volume) -> None:
    """Raise a FlareInputError naming both files (and what differs) unless they share a grid."""
    diffs = _grid_differences(image, label, 1e-3, 1e-4)
    if diffs:
        img_name = image.path if image.path is not None else "<image>"
        raise FlareInputError(
            label.path if label.path is not None else "<label>",
            f"label grid does not match image {img_name}: " + "; ".join(diffs),
            "pair the label with its own image, or resample the label onto the image grid "
            "(nearest neighbour)",
        )


# --- orientation ----------------------------------------------------------------------------------
def orientation_code(vol: Volume) -> str:
    """ITK/DICOM 3-letter code: where voxel axes i, j, k (x, y, z) point TO, e.g. ``"LPS"``.

    Same as SimpleITK's ``DICOMOrientImageFilter_GetOrientationFromDirectionCosines`` (oblique
    directions get the closest code) and the same letters as nibabel's ``aff2axcodes`` on the
    same file (see the module docstring).
    """
    return sitk.DICOMOrientImageFilter_GetOrientationFromDirectionCosines(
        tuple(float(v) for v in vol.direction.ravel())
    )


def _check_code(code: str) -> str:
    code = str(code).upper()
    letters = set(code)
    if len(code) != 3 or len(letters) != 3 or any(len(pair & letters) != 1 for pair in _ORIENT_PAIRS):
        raise ValueError(
            f"orientation code {code!r} is not valid: use one letter from each of L/R, A/P, S/I, e.g. 'LPS'"
        )
    return code


def reorient(vol: Volume, code: str) -> Volume:
    """Permute/flip the voxels so axes i, j, k point to ``code`` (e.g. ``"LPS"``); exact, no resampling.

    Origin and direction are updated (``sitk.DICOMOrient``) so every voxel keeps its world position;
    the dtype is kept.
    """
    code = _check_code(code)
    if orientation_code(vol) == code:
        return vol
    out = Volume.from_sitk(sitk.DICOMOrient(vol.to_sitk(), code), vol.path)
    if out.array.dtype != vol.array.dtype:
        out = out.with_array(out.array.astype(vol.array.dtype))
    return out


def reorient_to_lps(vol: Volume) -> tuple[Volume, str]:
    """Reorient to ``"LPS"``; returns ``(reoriented, original_code)``.

    Go back with ``reorient(reoriented, original_code)``.
    """
    code = orientation_code(vol)
    return reorient(vol, "LPS"), code


# --- writing --------------------------------------------------------------------------------------
def _cast_for_write(arr: np.ndarray, dtype: np.dtype | type | None) -> np.ndarray:
    if dtype is None:
        return arr.astype(np.uint8) if arr.dtype == np.bool_ else arr
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer) and np.issubdtype(arr.dtype, np.floating):
        info = np.iinfo(dtype)
        arr = np.clip(np.rint(arr), info.min, info.max)
    return arr.astype(dtype, copy=False)


def write_image(
    vol: Volume, path: str | Path, *, dtype: np.dtype | type | None = None, compress: bool = True
) -> Path:
    """Write ``vol`` (voxels + spacing/origin/direction) atomically; returns the final path.

    The data go to a hidden temporary file in the target folder, which is then renamed over ``path``
    (``os.replace``): readers see the old file or the new one, never a partial one, and a failed
    write leaves no temporary file. Parent folders are created. The format follows the suffix
    (``.nii.gz``, ``.nii``, ``.mha``, ``.nrrd``). ``dtype=None`` keeps the array's type (uint8 labels
    stay uint8; bool becomes uint8); a float -> integer cast rounds and clips. ``compress`` is passed
    to SimpleITK: for NIfTI the suffix alone decides (``.nii.gz`` is always gzip, ``.nii`` never);
    for ``.mha``/``.nrrd`` it switches compression.

    Raises:
        FlareInputError: unsupported suffix, or the file could not be written.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in WRITE_SUFFIXES:
        raise FlareInputError(
            path,
            f"cannot write format {suffix or '(no suffix)'!r}",
            f"name the file with one of {WRITE_SUFFIXES}",
        )
    img = vol.with_array(_cast_for_write(vol.array, dtype)).to_sitk()
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name[: -len(suffix)]
    tmp = path.with_name(f".{stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{suffix}")
    try:
        try:
            sitk.WriteImage(img, str(tmp), bool(compress))
        except RuntimeError as exc:
            raise FlareInputError(
                path,
                f"could not write the image ({_first_line(exc)})",
                "check the folder is writable and has space",
            ) from None
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path
