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
NaN or inf voxels, a zero or negative voxel size in the header, image/label grid mismatch,
non-integer or unknown label ids, a single DICOM slice, a folder with several DICOM series).

Formats read: NIfTI-1 (``.nii``, ``.nii.gz``), ``.mha``, ``.nrrd`` (any single file SimpleITK
reads), and DICOM: a folder holding one series is one volume; ``FOLDER::SERIES_UID`` picks one of
several (:mod:`flarelib.io.read`). Files are written as NIfTI, ``.mha`` or ``.nrrd``.

Modules: :mod:`~flarelib.io.volume` (the :class:`Volume`), :mod:`~flarelib.io.read` (open a path as
a Volume), :mod:`~flarelib.io.write` (atomic writes), :mod:`~flarelib.io.grid` (same grid or not),
:mod:`~flarelib.io.orientation` (codes, reorientation) and :mod:`~flarelib.io.diagnose` (why a file
cannot be read). Import from ``flarelib.io``: every name below is re-exported here.
"""

from __future__ import annotations

from flarelib.errors import FlareInputError as FlareInputError
from flarelib.io._common import _GZIP_MAGIC as _GZIP_MAGIC
from flarelib.io._common import _NIFTI_SUFFIXES as _NIFTI_SUFFIXES
from flarelib.io._common import _first_line as _first_line
from flarelib.io._common import _fmt as _fmt
from flarelib.io._common import _suffix as _suffix
from flarelib.io.diagnose import _CHUNK as _CHUNK
from flarelib.io.diagnose import _FLOAT_CODES as _FLOAT_CODES
from flarelib.io.diagnose import _diagnose as _diagnose
from flarelib.io.diagnose import _is_nifti2 as _is_nifti2
from flarelib.io.diagnose import _Layout as _Layout
from flarelib.io.diagnose import _nifti_header_problem as _nifti_header_problem
from flarelib.io.diagnose import _nifti_layout as _nifti_layout
from flarelib.io.diagnose import _read_head as _read_head
from flarelib.io.diagnose import _Scan as _Scan
from flarelib.io.diagnose import _scan_file as _scan_file
from flarelib.io.diagnose import _VoxelScan as _VoxelScan
from flarelib.io.grid import _grid_differences as _grid_differences
from flarelib.io.grid import check_same_grid, same_grid
from flarelib.io.orientation import _ORIENT_PAIRS as _ORIENT_PAIRS
from flarelib.io.orientation import _check_code as _check_code
from flarelib.io.orientation import orientation_code, reorient, reorient_to_lps
from flarelib.io.read import SERIES_SEP as SERIES_SEP
from flarelib.io.read import _check_exists as _check_exists
from flarelib.io.read import _check_finite as _check_finite
from flarelib.io.read import _nonfinite_error as _nonfinite_error
from flarelib.io.read import _read_sitk as _read_sitk
from flarelib.io.read import check_slices, dicom_series, read_case, read_header, read_image, read_label
from flarelib.io.read import split_series as split_series
from flarelib.io.volume import Volume
from flarelib.io.write import WRITE_SUFFIXES as WRITE_SUFFIXES
from flarelib.io.write import _cast_for_write as _cast_for_write
from flarelib.io.write import write_image
from flarelib.labels import LabelMap as LabelMap

__all__ = [
    "Volume",
    "check_same_grid",
    "check_slices",
    "dicom_series",
    "orientation_code",
    "read_case",
    "read_header",
    "read_image",
    "read_label",
    "reorient",
    "reorient_to_lps",
    "same_grid",
    "write_image",
]
