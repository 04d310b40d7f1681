"""Small DICOM series for tests, written with SimpleITK as its DICOM series-writing example does:
one 2-D slice per file with the tags a series reader needs (series UID, position, orientation)."""

from __future__ import annotations

import locale
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

#: A root for test UIDs (numbers and dots only, as DICOM requires).
UID_ROOT = "1.2.826.0.1.3680043.2.1125"


def write_dicom_series(
    folder: str | Path,
    array_zyx: np.ndarray,
    spacing_zyx=(3.0, 1.5, 1.25),
    origin_xyz=(-20.0, 10.0, 5.0),
    direction=None,
    series_uid: str | None = None,
    description: str = "test series",
    prefix: str = "slice",
) -> list[Path]:
    """Write ``array_zyx`` (int16) as a DICOM series, one file per z slice; returns the files.

    Geometry: slice ``k`` sits at ``origin + k * spacing_z * direction[:, 2]`` (LPS mm); the
    in-plane axes are ``direction[:, 0]`` and ``direction[:, 1]``.
    """
    saved = locale.setlocale(locale.LC_CTYPE)  # GDCM sets the C locale: keep the test process's
    try:
        return _write(folder, array_zyx, spacing_zyx, origin_xyz, direction, series_uid, description, prefix)
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)


def _write(folder, array_zyx, spacing_zyx, origin_xyz, direction, series_uid, description, prefix):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=np.float64).reshape(3, 3)
    series_uid = series_uid or f"{UID_ROOT}.{time.time_ns() % 10**12}"
    vol = sitk.GetImageFromArray(np.asarray(array_zyx, dtype=np.int16))
    vol.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    vol.SetOrigin(tuple(float(o) for o in origin_xyz))
    vol.SetDirection(tuple(direction.ravel()))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    date, clock = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    iop = "\\".join(str(v) for v in (*direction[:, 0], *direction[:, 1]))
    common = [
        ("0008|0031", clock),  # series time
        ("0008|0021", date),  # series date
        ("0008|0008", "DERIVED\\SECONDARY"),  # image type
        ("0020|000e", series_uid),  # series instance UID
        ("0020|000d", series_uid + ".1"),  # study instance UID
        ("0020|0037", iop),  # image orientation (patient)
        ("0008|103e", description),  # series description
        ("0008|0060", "MR"),  # modality
        ("0018|0050", str(spacing_zyx[0])),  # slice thickness
    ]
    files = []
    for k in range(vol.GetDepth()):
        sl = vol[:, :, k]
        for tag, value in common:
            sl.SetMetaData(tag, value)
        pos = vol.TransformIndexToPhysicalPoint((0, 0, k))
        sl.SetMetaData("0020|0032", "\\".join(map(str, pos)))  # image position (patient)
        sl.SetMetaData("0020|0013", str(k + 1))  # instance number
        sl.SetMetaData("0008|0018", f"{series_uid}.{k + 1}")  # SOP instance UID
        path = folder / f"{prefix}_{k:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(sl)
        files.append(path)
    return files
