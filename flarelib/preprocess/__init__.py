"""Preprocessing (STUDY.md "Preprocessing"), one idea per module:

* :mod:`.resample`: resampling to a voxel size or onto a reference grid (optionally through a
  transform), keeping origin and direction;
* :mod:`.intensity`: CT window, MR scaling, z-score;
* :mod:`.body`: the Otsu body mask;
* :mod:`.zflip`: the LLD-MMR z-flip detection and fix;
* :mod:`.prepare`: the one path training and prediction share (LPS -> spacing -> intensity).

Arrays are ``(z, y, x)``; spacings are mm in the order their name says; world coordinates LPS mm.
Functions take and return :class:`~flarelib.io.Volume` unless their docstring says otherwise and
never modify their input.
"""

from flarelib.preprocess.body import body_mask
from flarelib.preprocess.intensity import ct_window, mr_scale, zscore
from flarelib.preprocess.prepare import INTENSITY_MODES, PreparedCase, intensity_map, prepare_case
from flarelib.preprocess.resample import resample, resample_to_reference
from flarelib.preprocess.zflip import EndStats, ZFlipDecision, detect_zflip, fix_zflip, flip_z

__all__ = [
    "INTENSITY_MODES",
    "EndStats",
    "PreparedCase",
    "ZFlipDecision",
    "body_mask",
    "ct_window",
    "detect_zflip",
    "fix_zflip",
    "flip_z",
    "intensity_map",
    "mr_scale",
    "prepare_case",
    "resample",
    "resample_to_reference",
    "zscore",
]
