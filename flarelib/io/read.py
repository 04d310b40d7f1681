"""Reading: open a path as a :class:`~flarelib.io.volume.Volume` (image, label, image + label).

Every file goes through :func:`_read_sitk`: existence, the byte scan of :mod:`flarelib.io.diagnose`,
the NIfTI header's voxel sizes, then SimpleITK, with one clear
:class:`~flarelib.errors.FlareInputError` for each bad input.

**Formats.** NIfTI-1 (``.nii``, ``.nii.gz``), MetaImage (``.mha``), NRRD (``.nrrd``) and anything
else SimpleITK reads as one 3-D scalar file; and DICOM: a *folder* holding the slices of one series
is read as one volume (SimpleITK's ``ImageSeriesReader``, slices sorted by position, the geometry of
the series kept). A folder holding several series is refused with their UIDs listed: name one as
``FOLDER::SERIES_UID`` (:data:`SERIES_SEP`). A single DICOM slice file is refused (it is a 2-D
image): pass its folder.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from flarelib.errors import FlareInputError
from flarelib.io._common import _GZIP_MAGIC, _NIFTI_SUFFIXES, _first_line, _fmt, _suffix
from flarelib.io.diagnose import _diagnose, _nifti_spacing_problem, _read_head, _Scan, _scan_file
from flarelib.io.grid import check_same_grid
from flarelib.io.volume import Volume
from flarelib.labels import LabelMap

__all__ = [
    "SERIES_SEP",
    "check_slices",
    "dicom_series",
    "read_case",
    "read_header",
    "read_image",
    "read_label",
    "split_series",
]

#: ``FOLDER::SERIES_UID`` names one DICOM series of a folder that holds several.
SERIES_SEP = "::"

_FIX_SPACING = "re-export the file with its true voxel size in mm"


def _check_exists(path: Path) -> None:
    if not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        hint = "check the path and the data root (env FLARE_DATA / params)"
        if parent.is_dir():
            near = sorted(p.name for p in parent.iterdir() if p.name.startswith(path.name.split(".")[0]))
            if near:
                hint += f"; similar names here: {', '.join(near[:5])}"
        raise FlareInputError(path, "file not found", hint)


@contextlib.contextmanager
def _quiet_itk():
    """ITK's warnings (printed straight to stderr) off: our messages say what matters."""
    old = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(old)


def split_series(path: str | Path) -> tuple[Path, str | None]:
    """``"FOLDER::UID"`` -> ``(FOLDER, UID)``; any other path -> ``(path, None)``."""
    text = str(path)
    if SERIES_SEP in text:
        folder, _, uid = text.rpartition(SERIES_SEP)
        return Path(folder), uid.strip() or None
    return Path(path), None


def dicom_series(folder: str | Path) -> dict[str, list[str]]:
    """The DICOM series in ``folder`` (not its subfolders): ``{series UID: slice files, sorted by
    position}`` (GDCM's grouping and order, as ``ImageSeriesReader`` reads them); ``{}`` if none."""
    folder = str(folder)
    with _quiet_itk():
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
        return {uid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)) for uid in ids}


def _series_label(uid: str, files: list[str]) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    desc = ""
    with contextlib.suppress(RuntimeError), _quiet_itk():
        reader.ReadImageInformation()
        if reader.HasMetaDataKey("0008|103e"):
            desc = reader.GetMetaData("0008|103e").strip()
    n = len(files)
    return f"{uid} ({n} slice{'s' if n != 1 else ''}{', ' + repr(desc) if desc else ''})"


def _check_spacing(path: Path | str, spacing_xyz) -> None:
    bad = [f"{a} = {v:g}" for a, v in zip("xyz", spacing_xyz, strict=False) if not (np.isfinite(v) and v > 0)]
    if bad:
        raise FlareInputError(
            path,
            f"voxel size {', '.join(bad)} mm (spacing {_fmt(spacing_xyz)}): it must be positive",
            _FIX_SPACING,
        )


def _check_dims(path: Path | str, dim: int, size, components: int) -> None:
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
    if components != 1:
        raise FlareInputError(
            path,
            f"{components} values per voxel (vector/RGB image); one is needed",
            "save each component (channel) as its own 3-D file",
        )


def _is_dicom_file(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    with open(path, "rb") as fh:
        return fh.read(132)[128:132] == b"DICM"


def _single_slice_error(path: Path) -> FlareInputError:
    return FlareInputError(
        path,
        "a single DICOM slice (one 2-D image of a series); a 3-D volume is needed",
        f"pass the folder holding every slice of the series ({path.parent}): "
        "flarelib reads a DICOM folder as one volume",
    )


def _pick_series(folder: Path, uid: str | None) -> tuple[str, list[str]]:
    if not folder.is_dir():
        _check_exists(folder)
        raise FlareInputError(folder, "is a file, not a folder of DICOM slices", f"drop '{SERIES_SEP}UID'")
    series = dicom_series(folder)
    if not series:
        raise FlareInputError(
            folder,
            "is a folder holding no DICOM series, not an image file",
            "pass an image file (.nii.gz, .nii, .mha, .nrrd) or a folder of the DICOM slices of one series",
        )
    if uid is None:
        if len(series) > 1:
            listing = "; ".join(_series_label(u, f) for u, f in series.items())
            raise FlareInputError(
                folder,
                f"holds {len(series)} DICOM series: {listing}",
                f"name one as FOLDER{SERIES_SEP}UID, e.g. {folder}{SERIES_SEP}{next(iter(series))}",
            )
        uid = next(iter(series))
    elif uid not in series:
        raise FlareInputError(
            f"{folder}{SERIES_SEP}{uid}",
            f"{folder} holds no DICOM series {uid} (it holds {', '.join(series)})",
            f"name one of those after '{SERIES_SEP}'",
        )
    return uid, series[uid]


def _slice_positions_problem(reader: sitk.ImageSeriesReader, img: sitk.Image) -> str | None:
    """Uneven gaps between the slices (a missing slice): ITK would stack them as evenly spaced."""
    normal = np.array(img.GetDirection(), dtype=np.float64).reshape(3, 3)[:, 2]
    pos = []
    for i in range(img.GetDepth()):
        if not reader.HasMetaDataKey(i, "0020|0032"):
            return None
        try:
            pos.append(
                float(np.dot([float(v) for v in reader.GetMetaData(i, "0020|0032").split("\\")], normal))
            )
        except ValueError:
            return None
    gaps = np.abs(np.diff(pos))
    if gaps.size and (gaps.max() - gaps.min()) > max(1e-3, 0.01 * float(np.median(gaps))):
        lo, hi = gaps.min(), gaps.max()
        return f"uneven slice spacing ({lo:.4g} to {hi:.4g} mm between slices): a slice is missing"
    return None


def _read_dicom(folder: Path, uid: str | None, where: str) -> sitk.Image:
    """The 3-D volume of one DICOM series in ``folder`` (see the module docstring)."""
    uid, files = _pick_series(folder, uid)
    if len(files) == 1:  # a multi-frame file is a volume; one 2-D slice is not
        one = sitk.ImageFileReader()
        one.SetFileName(files[0])
        with contextlib.suppress(RuntimeError), _quiet_itk():
            one.ReadImageInformation()
            if one.GetDimension() == 2 or one.GetSize()[2] == 1:
                raise FlareInputError(
                    where,
                    f"DICOM series {uid} holds a single 2-D slice; a 3-D volume is needed",
                    "put every slice file of the series in the folder",
                )
        return _read_sitk(Path(files[0]))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        with _quiet_itk():
            img = reader.Execute()
    except RuntimeError as exc:
        raise FlareInputError(
            where,
            f"SimpleITK cannot read DICOM series {uid} ({_first_line(exc)})",
            "check that every slice file of the series is complete",
        ) from None
    _check_dims(where, img.GetDimension(), img.GetSize(), img.GetNumberOfComponentsPerPixel())
    _check_spacing(where, img.GetSpacing())
    problem = _slice_positions_problem(reader, img)
    if problem is not None:
        raise FlareInputError(where, problem, "add the missing slice files to the folder")
    return img


def _check_nifti_header(path: Path) -> None:
    problem = _nifti_spacing_problem(_read_head(path))
    if problem is not None:
        raise FlareInputError(path, problem, _FIX_SPACING)


def _read_sitk(path: str | Path) -> sitk.Image:
    """Read ``path`` as one 3-D scalar SimpleITK image, or raise a one-line FlareInputError.

    A folder (or ``FOLDER::UID``) is read as a DICOM series (module docstring)."""
    folder, uid = split_series(path)
    if uid is not None or folder.is_dir():
        return _read_dicom(folder, uid, str(path))
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
    if is_nifti:
        _check_nifti_header(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    if is_nifti:
        reader.SetImageIO("NiftiImageIO")
    try:
        with _quiet_itk():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        raise _diagnose(path, exc) from None
    dim, size = reader.GetDimension(), reader.GetSize()
    if not is_nifti and (dim == 2 or (dim == 3 and size[2] == 1)) and _is_dicom_file(path):
        raise _single_slice_error(path)
    _check_dims(path, dim, size, reader.GetNumberOfComponents())
    _check_spacing(path, reader.GetSpacing())
    if scan.n_nan or scan.n_inf:
        raise _nonfinite_error(path, scan.n_nan, scan.n_inf, int(np.prod(size)))
    try:
        with _quiet_itk():
            return reader.Execute()
    except RuntimeError as exc:
        raise _diagnose(path, exc) from None


def read_header(path: str | Path) -> Volume:
    """Geometry of a 3-D image from its header only: a Volume whose array is a zero-copy broadcast
    of one zero to the (z, y, x) shape (no voxels are read; a DICOM series is read whole).

    Checks what :func:`read_image` checks from the header (existence, NIfTI voxel sizes, 3-D
    scalar, a single DICOM slice), not the voxel bytes (gzip integrity, NaN). Raises
    FlareInputError."""
    folder, uid = split_series(path)
    if uid is not None or folder.is_dir():
        img = _read_dicom(folder, uid, str(path))
        size, spacing, origin, direction = (
            img.GetSize(),
            img.GetSpacing(),
            img.GetOrigin(),
            img.GetDirection(),
        )
    else:
        path = Path(path)
        _check_exists(path)
        is_nifti = _suffix(path) in _NIFTI_SUFFIXES
        if is_nifti:
            _check_nifti_header(path)
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            with _quiet_itk():
                reader.ReadImageInformation()
        except RuntimeError as exc:
            raise _diagnose(path, exc) from None
        size = reader.GetSize()
        if not is_nifti and (len(size) == 2 or size[2] == 1) and _is_dicom_file(path):
            raise _single_slice_error(path)
        _check_dims(path, reader.GetDimension(), size, reader.GetNumberOfComponents())
        _check_spacing(path, reader.GetSpacing())
        spacing, origin, direction = reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection()
    return Volume(
        np.broadcast_to(np.zeros((), np.uint8), tuple(size)[::-1]),
        tuple(spacing)[::-1],
        tuple(origin),
        np.array(direction, dtype=np.float64).reshape(3, 3),
        Path(str(path)),
    )


def check_slices(vol: Volume, path: str | Path | None = None) -> None:
    """Raise unless ``vol`` is a 3-D volume: at least 2 voxels along every axis (a one-slice
    "volume" is a 2-D image, which neither the 3-D network nor the z-flip check can use)."""
    thin = [a for a, n in zip("zyx", vol.shape, strict=True) if n < 2]
    if thin:
        size = ", ".join(str(n) for n in vol.shape[::-1])
        what = "a one-slice volume" if thin == ["z"] else f"only one voxel along {', '.join(thin)}"
        raise FlareInputError(
            path or vol.path or "<image>",
            f"{what} (size x, y, z = {size}): a 2-D image, and a 3-D volume is needed",
            "pass the whole 3-D volume (every slice in one file or one DICOM folder)",
        )


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
    """Read a 3-D image: NIfTI ``.nii``/``.nii.gz``, other SimpleITK formats (``.mha``, ``.nrrd``)
    by their suffix, or a folder holding one DICOM series (``FOLDER::UID`` for one of several).

    Voxels come back as ``array[z, y, x]`` with NIfTI ``scl_slope``/``scl_inter`` applied (so BTCV's
    uint8-on-disk CT reads in HU) and cast to ``dtype`` (``None`` keeps the type SimpleITK returns).
    Spacing (mm, z y x), origin (LPS mm) and direction (incl. oblique) are kept exactly as stored.
    A 4-D file whose 4th dimension is 1 reads as 3-D.

    Raises:
        FlareInputError: missing file, truncated/corrupt gzip, truncated voxel data, not a NIfTI
            (or a NIfTI-2, which SimpleITK cannot read), not 3-D or not scalar, NaN or inf voxels,
            a voxel size that is zero or negative (in the raw NIfTI header: SimpleITK would read 0
            as 1 mm), a single DICOM slice, a folder with no or several DICOM series.
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
