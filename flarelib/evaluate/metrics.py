"""FLARE24-exact organ scores: Dice (DSC) and normalized surface Dice (NSD).

Reproduces the official FLARE24 Task 2/3 evaluation script, JunMa11/FLARE
``FLARE24/T2andT3_FLARE24_DSC_NSD_Eval.py`` (commit aad2cc28), which scores each case and organ
with DeepMind's surface-distance code (``from SurfaceDice import ...``: FLARE's copy of DeepMind's
original module, the same lookup table and algorithm as the ``surface-distance`` package):

* per-organ NSD tolerance in mm (:data:`TOLERANCE_MM`), spacing from the ground-truth header;
* organ absent in both ground truth and prediction: DSC = NSD = 1; present in only one: 0 and 0
  (decided on the whole volume, before any z-range restriction);
* ``DSC < 0.2``: NSD = 0 (not computed);
* aorta, IVC and esophagus (ids 5, 6, 10): both masks are restricted to the ground truth's z-range
  with the slice ``[z_lower:z_upper]``, which drops the last ground-truth slice. That is the
  default here (``official_zrange_off_by_one=True``); ``False`` uses the inclusive range.
  When that slice is empty (the ground-truth organ lies in one slice) the official script crashes;
  here the organ scores NaN with a warning.
* The official CSV rounds to 4 decimals; the values here are not rounded.

NSD is DeepMind's surfel definition (marching-cubes surface elements on the voxel-corner grid,
each with its area in mm^2, and a surfel counts as overlapping when its distance to the other
surface is <= the tolerance). Two equivalent ways compute the "distance <= tolerance" test:

* ``method="probe"`` (default): for every surfel, test the other surface at the integer
  corner-grid offsets whose distance is within the tolerance, nearest first, stopping at the first
  hit. Exact: the distance of each offset is computed in floating point exactly like SciPy's EDT
  does it (the only possible difference: a distance equal to the tolerance to the last bit, where
  the EDT's pick among equidistant features may round differently). Cost grows with the surface,
  not the bounding-box volume; points far from the other surface fall back to the EDT.
* ``method="edt"``: SciPy's exact Euclidean feature transform on the union bounding box, as
  DeepMind does (same grid, same axis order, so the same distances bit for bit).

Both work on the bounding box of ``gt | pred`` only (plus the one-voxel corner margin), which
gives the same surfels and distances as the full volume: surfels exist only at mask boundaries
and every distance is to a surfel inside that box.

Arrays are (z, y, x) label volumes; spacings are (z, y, x) in mm. The official script runs on
nibabel's (x, y, z) arrays; the neighbour code and the distance evaluation here use the same
(x, y, z) conventions, so the surfel areas and distances are identical.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import ndimage

from flarelib.errors import FlareInputError
from flarelib.evaluate.dice import dice as dice  # re-exported: callers import it from here
from flarelib.labels import ORGAN_IDS, SHORT_NAMES, LabelMap, label_map_from_manifest_entry

if TYPE_CHECKING:
    import pandas as pd

#: NSD tolerance per FLARE organ id, in mm (official ``label_tolerance``, same order as the ids).
TOLERANCE_MM: dict[int, float] = {
    1: 5.0,  # liver
    2: 3.0,  # right kidney
    3: 3.0,  # spleen
    4: 5.0,  # pancreas
    5: 2.0,  # aorta
    6: 2.0,  # inferior vena cava
    7: 2.0,  # right adrenal gland
    8: 2.0,  # left adrenal gland
    9: 2.0,  # gallbladder
    10: 3.0,  # esophagus
    11: 5.0,  # stomach
    12: 7.0,  # duodenum
    13: 3.0,  # left kidney
}
#: Organs scored only inside the ground truth's z-range (aorta, IVC, esophagus).
Z_RANGE_ORGANS: frozenset[int] = frozenset({5, 6, 10})
#: Below this DSC the official script sets NSD = 0 without computing it (FLARE23 used 0.1).
NSD_MIN_DSC = 0.2

Method = Literal["probe", "edt"]

# --------------------------------------------------------------------------------------------
# Surfel lookup table.
# Ported from DeepMind's surface-distance (github.com/deepmind/surface-distance,
# surface_distance/lookup_tables.py, _NEIGHBOUR_CODE_TO_NORMALS), Copyright 2018 Google Inc.,
# Licensed under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).
# The same table is in FLARE's SurfaceDice.py. For every 2x2x2 neighbour code (bit weights
# [[[128, 64], [32, 16]], [[8, 4], [2, 1]]] over the (x, y, z) corner offsets) it lists the
# normals of the marching-cubes triangles; a normal's length encodes the triangle's area.
# --------------------------------------------------------------------------------------------
# fmt: off
_NEIGHBOUR_CODE_TO_NORMALS: tuple[tuple[tuple[float, float, float], ...], ...] = (
    ((0.0, 0.0, 0.0),),
    ((0.125, 0.125, 0.125),),
    ((-0.125, -0.125, 0.125),),
    ((-0.25, -0.25, 0.0), (0.25, 0.25, -0.0)),
    ((0.125, -0.125, 0.125),),
    ((-0.25, -0.0, -0.25), (0.25, 0.0, 0.25)),
    ((0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((0.5, 0.0, -0.0), (0.25, 0.25, 0.25), (0.125, 0.125, 0.125)),
    ((-0.125, 0.125, 0.125),),
    ((0.125, 0.125, 0.125), (-0.125, 0.125, 0.125)),
    ((-0.25, 0.0, 0.25), (-0.25, 0.0, 0.25)),
    ((0.5, 0.0, 0.0), (-0.25, -0.25, 0.25), (-0.125, -0.125, 0.125)),
    ((0.25, -0.25, 0.0), (0.25, -0.25, 0.0)),
    ((0.5, 0.0, 0.0), (0.25, -0.25, 0.25), (-0.125, 0.125, -0.125)),
    ((-0.5, 0.0, 0.0), (-0.25, 0.25, 0.25), (-0.125, 0.125, 0.125)),
    ((0.5, 0.0, 0.0), (0.5, 0.0, 0.0)),
    ((0.125, -0.125, -0.125),),
    ((0.0, -0.25, -0.25), (0.0, 0.25, 0.25)),
    ((-0.125, -0.125, 0.125), (0.125, -0.125, -0.125)),
    ((0.0, -0.5, 0.0), (0.25, 0.25, 0.25), (0.125, 0.125, 0.125)),
    ((0.125, -0.125, 0.125), (0.125, -0.125, -0.125)),
    ((0.0, 0.0, -0.5), (0.25, 0.25, 0.25), (-0.125, -0.125, -0.125)),
    ((-0.125, -0.125, 0.125), (0.125, -0.125, 0.125), (0.125, -0.125, -0.125)),
    ((-0.125, -0.125, -0.125), (-0.25, -0.25, -0.25), (0.25, 0.25, 0.25), (0.125, 0.125, 0.125)),
    ((-0.125, 0.125, 0.125), (0.125, -0.125, -0.125)),
    ((0.0, -0.25, -0.25), (0.0, 0.25, 0.25), (-0.125, 0.125, 0.125)),
    ((-0.25, 0.0, 0.25), (-0.25, 0.0, 0.25), (0.125, -0.125, -0.125)),
    ((0.125, 0.125, 0.125), (0.375, 0.375, 0.375), (0.0, -0.25, 0.25), (-0.25, 0.0, 0.25)),
    ((0.125, -0.125, -0.125), (0.25, -0.25, 0.0), (0.25, -0.25, 0.0)),
    ((0.375, 0.375, 0.375), (0.0, 0.25, -0.25), (-0.125, -0.125, -0.125), (-0.25, 0.25, 0.0)),
    ((-0.5, 0.0, 0.0), (-0.125, -0.125, -0.125), (-0.25, -0.25, -0.25), (0.125, 0.125, 0.125)),
    ((-0.5, 0.0, 0.0), (-0.125, -0.125, -0.125), (-0.25, -0.25, -0.25)),
    ((0.125, -0.125, 0.125),),
    ((0.125, 0.125, 0.125), (0.125, -0.125, 0.125)),
    ((0.0, -0.25, 0.25), (0.0, 0.25, -0.25)),
    ((0.0, -0.5, 0.0), (0.125, 0.125, -0.125), (0.25, 0.25, -0.25)),
    ((0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((0.125, -0.125, 0.125), (-0.25, -0.0, -0.25), (0.25, 0.0, 0.25)),
    ((0.0, -0.25, 0.25), (0.0, 0.25, -0.25), (0.125, -0.125, 0.125)),
    ((-0.375, -0.375, 0.375), (-0.0, 0.25, 0.25), (0.125, 0.125, -0.125), (-0.25, -0.0, -0.25)),
    ((-0.125, 0.125, 0.125), (0.125, -0.125, 0.125)),
    ((0.125, 0.125, 0.125), (0.125, -0.125, 0.125), (-0.125, 0.125, 0.125)),
    ((-0.0, 0.0, 0.5), (-0.25, -0.25, 0.25), (-0.125, -0.125, 0.125)),
    ((0.25, 0.25, -0.25), (0.25, 0.25, -0.25), (0.125, 0.125, -0.125), (-0.125, -0.125, 0.125)),
    ((0.125, -0.125, 0.125), (0.25, -0.25, 0.0), (0.25, -0.25, 0.0)),
    ((0.5, 0.0, 0.0), (0.25, -0.25, 0.25), (-0.125, 0.125, -0.125), (0.125, -0.125, 0.125)),
    ((0.0, 0.25, -0.25), (0.375, -0.375, -0.375), (-0.125, 0.125, 0.125), (0.25, 0.25, 0.0)),
    ((-0.5, 0.0, 0.0), (-0.25, -0.25, 0.25), (-0.125, -0.125, 0.125)),
    ((0.25, -0.25, 0.0), (-0.25, 0.25, 0.0)),
    ((0.0, 0.5, 0.0), (-0.25, 0.25, 0.25), (0.125, -0.125, -0.125)),
    ((0.0, 0.5, 0.0), (0.125, -0.125, 0.125), (-0.25, 0.25, -0.25)),
    ((0.0, 0.5, 0.0), (0.0, -0.5, 0.0)),
    ((0.25, -0.25, 0.0), (-0.25, 0.25, 0.0), (0.125, -0.125, 0.125)),
    ((-0.375, -0.375, -0.375), (-0.25, 0.0, 0.25), (-0.125, -0.125, -0.125), (-0.25, 0.25, 0.0)),
    ((0.125, 0.125, 0.125), (0.0, -0.5, 0.0), (-0.25, -0.25, -0.25), (-0.125, -0.125, -0.125)),
    ((0.0, -0.5, 0.0), (-0.25, -0.25, -0.25), (-0.125, -0.125, -0.125)),
    ((-0.125, 0.125, 0.125), (0.25, -0.25, 0.0), (-0.25, 0.25, 0.0)),
    ((0.0, 0.5, 0.0), (0.25, 0.25, -0.25), (-0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((-0.375, 0.375, -0.375), (-0.25, -0.25, 0.0), (-0.125, 0.125, -0.125), (-0.25, 0.0, 0.25)),
    ((0.0, 0.5, 0.0), (0.25, 0.25, -0.25), (-0.125, -0.125, 0.125)),
    ((0.25, -0.25, 0.0), (-0.25, 0.25, 0.0), (0.25, -0.25, 0.0), (0.25, -0.25, 0.0)),
    ((-0.25, -0.25, 0.0), (-0.25, -0.25, 0.0), (-0.125, -0.125, 0.125)),
    ((0.125, 0.125, 0.125), (-0.25, -0.25, 0.0), (-0.25, -0.25, 0.0)),
    ((-0.25, -0.25, 0.0), (-0.25, -0.25, 0.0)),
    ((-0.125, -0.125, 0.125),),
    ((0.125, 0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (-0.25, -0.25, 0.0), (0.25, 0.25, -0.0)),
    ((0.0, -0.25, 0.25), (0.0, -0.25, 0.25)),
    ((0.0, 0.0, 0.5), (0.25, -0.25, 0.25), (0.125, -0.125, 0.125)),
    ((0.0, -0.25, 0.25), (0.0, -0.25, 0.25), (-0.125, -0.125, 0.125)),
    ((0.375, -0.375, 0.375), (0.0, -0.25, -0.25), (-0.125, 0.125, -0.125), (0.25, 0.25, 0.0)),
    ((-0.125, -0.125, 0.125), (-0.125, 0.125, 0.125)),
    ((0.125, 0.125, 0.125), (-0.125, -0.125, 0.125), (-0.125, 0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (-0.25, 0.0, 0.25), (-0.25, 0.0, 0.25)),
    ((0.5, 0.0, 0.0), (-0.25, -0.25, 0.25), (-0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((-0.0, 0.5, 0.0), (-0.25, 0.25, -0.25), (0.125, -0.125, 0.125)),
    ((-0.25, 0.25, -0.25), (-0.25, 0.25, -0.25), (-0.125, 0.125, -0.125), (-0.125, 0.125, -0.125)),
    ((-0.25, 0.0, -0.25), (0.375, -0.375, -0.375), (0.0, 0.25, -0.25), (-0.125, 0.125, 0.125)),
    ((0.5, 0.0, 0.0), (-0.25, 0.25, -0.25), (0.125, -0.125, 0.125)),
    ((-0.25, 0.0, 0.25), (0.25, 0.0, -0.25)),
    ((-0.0, 0.0, 0.5), (-0.25, 0.25, 0.25), (-0.125, 0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (-0.25, 0.0, 0.25), (0.25, 0.0, -0.25)),
    ((-0.25, -0.0, -0.25), (-0.375, 0.375, 0.375), (-0.25, -0.25, 0.0), (-0.125, 0.125, 0.125)),
    ((0.0, 0.0, -0.5), (0.25, 0.25, -0.25), (-0.125, -0.125, 0.125)),
    ((-0.0, 0.0, 0.5), (0.0, 0.0, 0.5)),
    ((0.125, 0.125, 0.125), (0.125, 0.125, 0.125), (0.25, 0.25, 0.25), (0.0, 0.0, 0.5)),
    ((0.125, 0.125, 0.125), (0.25, 0.25, 0.25), (0.0, 0.0, 0.5)),
    ((-0.25, 0.0, 0.25), (0.25, 0.0, -0.25), (-0.125, 0.125, 0.125)),
    ((-0.0, 0.0, 0.5), (0.25, -0.25, 0.25), (0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((-0.25, 0.0, 0.25), (-0.25, 0.0, 0.25), (-0.25, 0.0, 0.25), (0.25, 0.0, -0.25)),
    ((0.125, -0.125, 0.125), (0.25, 0.0, 0.25), (0.25, 0.0, 0.25)),
    ((0.25, 0.0, 0.25), (-0.375, -0.375, 0.375), (-0.25, 0.25, 0.0), (-0.125, -0.125, 0.125)),
    ((-0.0, 0.0, 0.5), (0.25, -0.25, 0.25), (0.125, -0.125, 0.125)),
    ((0.125, 0.125, 0.125), (0.25, 0.0, 0.25), (0.25, 0.0, 0.25)),
    ((0.25, 0.0, 0.25), (0.25, 0.0, 0.25)),
    ((-0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((0.125, 0.125, 0.125), (-0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (0.0, -0.25, 0.25), (0.0, 0.25, -0.25)),
    ((0.0, -0.5, 0.0), (0.125, 0.125, -0.125), (0.25, 0.25, -0.25), (-0.125, -0.125, 0.125)),
    ((0.0, -0.25, 0.25), (0.0, -0.25, 0.25), (0.125, -0.125, 0.125)),
    ((0.0, 0.0, 0.5), (0.25, -0.25, 0.25), (0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((0.0, -0.25, 0.25), (0.0, -0.25, 0.25), (0.0, -0.25, 0.25), (0.0, 0.25, -0.25)),
    ((0.0, 0.25, 0.25), (0.0, 0.25, 0.25), (0.125, -0.125, -0.125)),
    ((-0.125, 0.125, 0.125), (0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((-0.125, 0.125, 0.125), (0.125, -0.125, 0.125), (-0.125, -0.125, 0.125), (0.125, 0.125, 0.125)),
    ((-0.0, 0.0, 0.5), (-0.25, -0.25, 0.25), (-0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((0.125, 0.125, 0.125), (0.125, -0.125, 0.125), (0.125, -0.125, -0.125)),
    ((-0.0, 0.5, 0.0), (-0.25, 0.25, -0.25), (0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((0.125, 0.125, 0.125), (-0.125, -0.125, 0.125), (0.125, -0.125, -0.125)),
    ((0.0, -0.25, -0.25), (0.0, 0.25, 0.25), (0.125, 0.125, 0.125)),
    ((0.125, 0.125, 0.125), (0.125, -0.125, -0.125)),
    ((0.5, 0.0, -0.0), (0.25, -0.25, -0.25), (0.125, -0.125, -0.125)),
    ((-0.25, 0.25, 0.25), (-0.125, 0.125, 0.125), (-0.25, 0.25, 0.25), (0.125, -0.125, -0.125)),
    ((0.375, -0.375, 0.375), (0.0, 0.25, 0.25), (-0.125, 0.125, -0.125), (-0.25, 0.0, 0.25)),
    ((0.0, -0.5, 0.0), (-0.25, 0.25, 0.25), (-0.125, 0.125, 0.125)),
    ((-0.375, -0.375, 0.375), (0.25, -0.25, 0.0), (0.0, 0.25, 0.25), (-0.125, -0.125, 0.125)),
    ((-0.125, 0.125, 0.125), (-0.25, 0.25, 0.25), (0.0, 0.0, 0.5)),
    ((0.125, 0.125, 0.125), (0.0, 0.25, 0.25), (0.0, 0.25, 0.25)),
    ((0.0, 0.25, 0.25), (0.0, 0.25, 0.25)),
    ((0.5, 0.0, -0.0), (0.25, 0.25, 0.25), (0.125, 0.125, 0.125), (0.125, 0.125, 0.125)),
    ((0.125, -0.125, 0.125), (-0.125, -0.125, 0.125), (0.125, 0.125, 0.125)),
    ((-0.25, -0.0, -0.25), (0.25, 0.0, 0.25), (0.125, 0.125, 0.125)),
    ((0.125, 0.125, 0.125), (0.125, -0.125, 0.125)),
    ((-0.25, -0.25, 0.0), (0.25, 0.25, -0.0), (0.125, 0.125, 0.125)),
    ((0.125, 0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((0.125, 0.125, 0.125), (0.125, 0.125, 0.125)),
    ((0.125, 0.125, 0.125),),
    ((0.125, 0.125, 0.125),),
    ((0.125, 0.125, 0.125), (0.125, 0.125, 0.125)),
    ((0.125, 0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((-0.25, -0.25, 0.0), (0.25, 0.25, -0.0), (0.125, 0.125, 0.125)),
    ((0.125, 0.125, 0.125), (0.125, -0.125, 0.125)),
    ((-0.25, -0.0, -0.25), (0.25, 0.0, 0.25), (0.125, 0.125, 0.125)),
    ((0.125, -0.125, 0.125), (-0.125, -0.125, 0.125), (0.125, 0.125, 0.125)),
    ((0.5, 0.0, -0.0), (0.25, 0.25, 0.25), (0.125, 0.125, 0.125), (0.125, 0.125, 0.125)),
    ((0.0, 0.25, 0.25), (0.0, 0.25, 0.25)),
    ((0.125, 0.125, 0.125), (0.0, 0.25, 0.25), (0.0, 0.25, 0.25)),
    ((-0.125, 0.125, 0.125), (-0.25, 0.25, 0.25), (0.0, 0.0, 0.5)),
    ((-0.375, -0.375, 0.375), (0.25, -0.25, 0.0), (0.0, 0.25, 0.25), (-0.125, -0.125, 0.125)),
    ((0.0, -0.5, 0.0), (-0.25, 0.25, 0.25), (-0.125, 0.125, 0.125)),
    ((0.375, -0.375, 0.375), (0.0, 0.25, 0.25), (-0.125, 0.125, -0.125), (-0.25, 0.0, 0.25)),
    ((-0.25, 0.25, 0.25), (-0.125, 0.125, 0.125), (-0.25, 0.25, 0.25), (0.125, -0.125, -0.125)),
    ((0.5, 0.0, -0.0), (0.25, -0.25, -0.25), (0.125, -0.125, -0.125)),
    ((0.125, 0.125, 0.125), (0.125, -0.125, -0.125)),
    ((0.0, -0.25, -0.25), (0.0, 0.25, 0.25), (0.125, 0.125, 0.125)),
    ((0.125, 0.125, 0.125), (-0.125, -0.125, 0.125), (0.125, -0.125, -0.125)),
    ((-0.0, 0.5, 0.0), (-0.25, 0.25, -0.25), (0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((0.125, 0.125, 0.125), (0.125, -0.125, 0.125), (0.125, -0.125, -0.125)),
    ((-0.0, 0.0, 0.5), (-0.25, -0.25, 0.25), (-0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((-0.125, 0.125, 0.125), (0.125, -0.125, 0.125), (-0.125, -0.125, 0.125), (0.125, 0.125, 0.125)),
    ((-0.125, 0.125, 0.125), (0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((0.0, 0.25, 0.25), (0.0, 0.25, 0.25), (0.125, -0.125, -0.125)),
    ((0.0, -0.25, -0.25), (0.0, 0.25, 0.25), (0.0, 0.25, 0.25), (0.0, 0.25, 0.25)),
    ((0.0, 0.0, 0.5), (0.25, -0.25, 0.25), (0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((0.0, -0.25, 0.25), (0.0, -0.25, 0.25), (0.125, -0.125, 0.125)),
    ((0.0, -0.5, 0.0), (0.125, 0.125, -0.125), (0.25, 0.25, -0.25), (-0.125, -0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (0.0, -0.25, 0.25), (0.0, 0.25, -0.25)),
    ((0.125, 0.125, 0.125), (-0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((0.25, 0.0, 0.25), (0.25, 0.0, 0.25)),
    ((0.125, 0.125, 0.125), (0.25, 0.0, 0.25), (0.25, 0.0, 0.25)),
    ((-0.0, 0.0, 0.5), (0.25, -0.25, 0.25), (0.125, -0.125, 0.125)),
    ((0.25, 0.0, 0.25), (-0.375, -0.375, 0.375), (-0.25, 0.25, 0.0), (-0.125, -0.125, 0.125)),
    ((0.125, -0.125, 0.125), (0.25, 0.0, 0.25), (0.25, 0.0, 0.25)),
    ((-0.25, -0.0, -0.25), (0.25, 0.0, 0.25), (0.25, 0.0, 0.25), (0.25, 0.0, 0.25)),
    ((-0.0, 0.0, 0.5), (0.25, -0.25, 0.25), (0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((-0.25, 0.0, 0.25), (0.25, 0.0, -0.25), (-0.125, 0.125, 0.125)),
    ((0.125, 0.125, 0.125), (0.25, 0.25, 0.25), (0.0, 0.0, 0.5)),
    ((0.125, 0.125, 0.125), (0.125, 0.125, 0.125), (0.25, 0.25, 0.25), (0.0, 0.0, 0.5)),
    ((-0.0, 0.0, 0.5), (0.0, 0.0, 0.5)),
    ((0.0, 0.0, -0.5), (0.25, 0.25, -0.25), (-0.125, -0.125, 0.125)),
    ((-0.25, -0.0, -0.25), (-0.375, 0.375, 0.375), (-0.25, -0.25, 0.0), (-0.125, 0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (-0.25, 0.0, 0.25), (0.25, 0.0, -0.25)),
    ((-0.0, 0.0, 0.5), (-0.25, 0.25, 0.25), (-0.125, 0.125, 0.125)),
    ((-0.25, 0.0, 0.25), (0.25, 0.0, -0.25)),
    ((0.5, 0.0, 0.0), (-0.25, 0.25, -0.25), (0.125, -0.125, 0.125)),
    ((-0.25, 0.0, -0.25), (0.375, -0.375, -0.375), (0.0, 0.25, -0.25), (-0.125, 0.125, 0.125)),
    ((-0.25, 0.25, -0.25), (-0.25, 0.25, -0.25), (-0.125, 0.125, -0.125), (-0.125, 0.125, -0.125)),
    ((-0.0, 0.5, 0.0), (-0.25, 0.25, -0.25), (0.125, -0.125, 0.125)),
    ((0.5, 0.0, 0.0), (-0.25, -0.25, 0.25), (-0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (-0.25, 0.0, 0.25), (-0.25, 0.0, 0.25)),
    ((0.125, 0.125, 0.125), (-0.125, -0.125, 0.125), (-0.125, 0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (-0.125, 0.125, 0.125)),
    ((0.375, -0.375, 0.375), (0.0, -0.25, -0.25), (-0.125, 0.125, -0.125), (0.25, 0.25, 0.0)),
    ((0.0, -0.25, 0.25), (0.0, -0.25, 0.25), (-0.125, -0.125, 0.125)),
    ((0.0, 0.0, 0.5), (0.25, -0.25, 0.25), (0.125, -0.125, 0.125)),
    ((0.0, -0.25, 0.25), (0.0, -0.25, 0.25)),
    ((-0.125, -0.125, 0.125), (-0.25, -0.25, 0.0), (0.25, 0.25, -0.0)),
    ((-0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((0.125, 0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((-0.125, -0.125, 0.125),),
    ((-0.25, -0.25, 0.0), (-0.25, -0.25, 0.0)),
    ((0.125, 0.125, 0.125), (-0.25, -0.25, 0.0), (-0.25, -0.25, 0.0)),
    ((-0.25, -0.25, 0.0), (-0.25, -0.25, 0.0), (-0.125, -0.125, 0.125)),
    ((-0.25, -0.25, 0.0), (-0.25, -0.25, 0.0), (-0.25, -0.25, 0.0), (0.25, 0.25, -0.0)),
    ((0.0, 0.5, 0.0), (0.25, 0.25, -0.25), (-0.125, -0.125, 0.125)),
    ((-0.375, 0.375, -0.375), (-0.25, -0.25, 0.0), (-0.125, 0.125, -0.125), (-0.25, 0.0, 0.25)),
    ((0.0, 0.5, 0.0), (0.25, 0.25, -0.25), (-0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((-0.125, 0.125, 0.125), (0.25, -0.25, 0.0), (-0.25, 0.25, 0.0)),
    ((0.0, -0.5, 0.0), (-0.25, -0.25, -0.25), (-0.125, -0.125, -0.125)),
    ((0.125, 0.125, 0.125), (0.0, -0.5, 0.0), (-0.25, -0.25, -0.25), (-0.125, -0.125, -0.125)),
    ((-0.375, -0.375, -0.375), (-0.25, 0.0, 0.25), (-0.125, -0.125, -0.125), (-0.25, 0.25, 0.0)),
    ((0.25, -0.25, 0.0), (-0.25, 0.25, 0.0), (0.125, -0.125, 0.125)),
    ((0.0, 0.5, 0.0), (0.0, -0.5, 0.0)),
    ((0.0, 0.5, 0.0), (0.125, -0.125, 0.125), (-0.25, 0.25, -0.25)),
    ((0.0, 0.5, 0.0), (-0.25, 0.25, 0.25), (0.125, -0.125, -0.125)),
    ((0.25, -0.25, 0.0), (-0.25, 0.25, 0.0)),
    ((-0.5, 0.0, 0.0), (-0.25, -0.25, 0.25), (-0.125, -0.125, 0.125)),
    ((0.0, 0.25, -0.25), (0.375, -0.375, -0.375), (-0.125, 0.125, 0.125), (0.25, 0.25, 0.0)),
    ((0.5, 0.0, 0.0), (0.25, -0.25, 0.25), (-0.125, 0.125, -0.125), (0.125, -0.125, 0.125)),
    ((0.125, -0.125, 0.125), (0.25, -0.25, 0.0), (0.25, -0.25, 0.0)),
    ((0.25, 0.25, -0.25), (0.25, 0.25, -0.25), (0.125, 0.125, -0.125), (-0.125, -0.125, 0.125)),
    ((-0.0, 0.0, 0.5), (-0.25, -0.25, 0.25), (-0.125, -0.125, 0.125)),
    ((0.125, 0.125, 0.125), (0.125, -0.125, 0.125), (-0.125, 0.125, 0.125)),
    ((-0.125, 0.125, 0.125), (0.125, -0.125, 0.125)),
    ((-0.375, -0.375, 0.375), (-0.0, 0.25, 0.25), (0.125, 0.125, -0.125), (-0.25, -0.0, -0.25)),
    ((0.0, -0.25, 0.25), (0.0, 0.25, -0.25), (0.125, -0.125, 0.125)),
    ((0.125, -0.125, 0.125), (-0.25, -0.0, -0.25), (0.25, 0.0, 0.25)),
    ((0.125, -0.125, 0.125), (0.125, -0.125, 0.125)),
    ((0.0, -0.5, 0.0), (0.125, 0.125, -0.125), (0.25, 0.25, -0.25)),
    ((0.0, -0.25, 0.25), (0.0, 0.25, -0.25)),
    ((0.125, 0.125, 0.125), (0.125, -0.125, 0.125)),
    ((0.125, -0.125, 0.125),),
    ((-0.5, 0.0, 0.0), (-0.125, -0.125, -0.125), (-0.25, -0.25, -0.25)),
    ((-0.5, 0.0, 0.0), (-0.125, -0.125, -0.125), (-0.25, -0.25, -0.25), (0.125, 0.125, 0.125)),
    ((0.375, 0.375, 0.375), (0.0, 0.25, -0.25), (-0.125, -0.125, -0.125), (-0.25, 0.25, 0.0)),
    ((0.125, -0.125, -0.125), (0.25, -0.25, 0.0), (0.25, -0.25, 0.0)),
    ((0.125, 0.125, 0.125), (0.375, 0.375, 0.375), (0.0, -0.25, 0.25), (-0.25, 0.0, 0.25)),
    ((-0.25, 0.0, 0.25), (-0.25, 0.0, 0.25), (0.125, -0.125, -0.125)),
    ((0.0, -0.25, -0.25), (0.0, 0.25, 0.25), (-0.125, 0.125, 0.125)),
    ((-0.125, 0.125, 0.125), (0.125, -0.125, -0.125)),
    ((-0.125, -0.125, -0.125), (-0.25, -0.25, -0.25), (0.25, 0.25, 0.25), (0.125, 0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (0.125, -0.125, 0.125), (0.125, -0.125, -0.125)),
    ((0.0, 0.0, -0.5), (0.25, 0.25, 0.25), (-0.125, -0.125, -0.125)),
    ((0.125, -0.125, 0.125), (0.125, -0.125, -0.125)),
    ((0.0, -0.5, 0.0), (0.25, 0.25, 0.25), (0.125, 0.125, 0.125)),
    ((-0.125, -0.125, 0.125), (0.125, -0.125, -0.125)),
    ((0.0, -0.25, -0.25), (0.0, 0.25, 0.25)),
    ((0.125, -0.125, -0.125),),
    ((0.5, 0.0, 0.0), (0.5, 0.0, 0.0)),
    ((-0.5, 0.0, 0.0), (-0.25, 0.25, 0.25), (-0.125, 0.125, 0.125)),
    ((0.5, 0.0, 0.0), (0.25, -0.25, 0.25), (-0.125, 0.125, -0.125)),
    ((0.25, -0.25, 0.0), (0.25, -0.25, 0.0)),
    ((0.5, 0.0, 0.0), (-0.25, -0.25, 0.25), (-0.125, -0.125, 0.125)),
    ((-0.25, 0.0, 0.25), (-0.25, 0.0, 0.25)),
    ((0.125, 0.125, 0.125), (-0.125, 0.125, 0.125)),
    ((-0.125, 0.125, 0.125),),
    ((0.5, 0.0, -0.0), (0.25, 0.25, 0.25), (0.125, 0.125, 0.125)),
    ((0.125, -0.125, 0.125), (-0.125, -0.125, 0.125)),
    ((-0.25, -0.0, -0.25), (0.25, 0.0, 0.25)),
    ((0.125, -0.125, 0.125),),
    ((-0.25, -0.25, 0.0), (0.25, 0.25, -0.0)),
    ((-0.125, -0.125, 0.125),),
    ((0.125, 0.125, 0.125),),
    ((0.0, 0.0, 0.0),),
)
# fmt: on


def _spacing3(spacing_zyx: Sequence[float]) -> tuple[float, float, float]:
    """The spacing as three positive finite floats (z, y, x) in mm; ValueError otherwise."""
    values = tuple(float(s) for s in spacing_zyx)
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing_zyx must be three positive finite mm values, got {spacing_zyx!r}")
    return values  # type: ignore[return-value]


@functools.lru_cache(maxsize=64)
def _surface_area_table(spacing_xyz: tuple[float, float, float]) -> np.ndarray:
    """Surfel area (mm^2) of each of the 256 neighbour codes, computed as DeepMind computes it.

    ``spacing_xyz`` is in (x, y, z) order, DeepMind's ``spacing_mm`` for nibabel arrays. The same
    floating-point operations in the same order as ``create_table_neighbour_code_to_surface_area``.
    """
    table = np.zeros(256)
    for code, normals in enumerate(_NEIGHBOUR_CODE_TO_NORMALS):
        normals_arr = np.array(normals)
        total = 0.0
        for row in range(normals_arr.shape[0]):
            n = np.zeros(3)
            n[0] = normals_arr[row, 0] * spacing_xyz[1] * spacing_xyz[2]
            n[1] = normals_arr[row, 1] * spacing_xyz[0] * spacing_xyz[2]
            n[2] = normals_arr[row, 2] * spacing_xyz[0] * spacing_xyz[1]
            total += np.linalg.norm(n)
        table[code] = total
    table.flags.writeable = False
    return table


def _neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """DeepMind's neighbour code at every voxel corner of a (z, y, x) boolean mask.

    Returns uint8 of shape ``mask.shape + 1``: entry ``[k, j, i]`` encodes the 2x2x2 voxels
    ``mask[k-1:k+1, j-1:j+1, i-1:i+1]`` (outside the mask = 0) with the kernel
    ``[[[128, 64], [32, 16]], [[8, 4], [2, 1]]]`` indexed (x, y, z), i.e. the value DeepMind's
    ``correlate`` gives at ``[i, j, k]`` of the (x, y, z) mask zero-padded by one voxel at the end.
    Computed separably: z bits (2, 1), then y (4, 1), then x (16, 1).
    """
    padded = np.zeros(tuple(s + 2 for s in mask.shape), np.uint8)
    padded[1:-1, 1:-1, 1:-1] = mask
    code = (padded[:-1] << 1) | padded[1:]
    code = (code[:, :-1] << 2) | code[:, 1:]
    return (code[:, :, :-1] << 4) | code[:, :, 1:]


def _tight_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box of the True voxels of a 3-D boolean mask, or None when it has none."""
    boxes = ndimage.find_objects(np.asarray(mask, bool).view(np.uint8), max_label=1)
    return boxes[0]


def _label_boxes(labels: np.ndarray, max_label: int) -> list[tuple[slice, slice, slice] | None]:
    """Bounding box of each label 1..max_label of a 3-D label volume (None where absent).

    Same result as ``ndimage.find_objects(labels, max_label)``; for uint8 volumes it is computed
    about 3x faster from per-axis OR-projections of one presence bit per label.
    """
    if labels.dtype != np.uint8 or max_label > 15:
        return list(ndimage.find_objects(labels, max_label=max_label))
    bits = np.left_shift(np.uint16(1), labels)  # label l -> bit l (0 for l >= 16)
    plane_yx = np.bitwise_or.reduce(bits, axis=0)
    along = (
        np.bitwise_or.reduce(bits.reshape(bits.shape[0], -1), axis=1),
        np.bitwise_or.reduce(plane_yx, axis=1),
        np.bitwise_or.reduce(plane_yx, axis=0),
    )
    boxes: list[tuple[slice, slice, slice] | None] = []
    for label in range(1, max_label + 1):
        present = [np.flatnonzero(p & np.uint16(1 << label)) for p in along]
        if present[0].size == 0:
            boxes.append(None)
        else:
            boxes.append(tuple(slice(int(i[0]), int(i[-1]) + 1) for i in present))  # type: ignore[arg-type]
    return boxes


def _union_box(a: Sequence[slice], b: Sequence[slice]) -> tuple[slice, slice, slice]:
    za, ya, xa = a
    zb, yb, xb = b
    return (
        slice(min(za.start, zb.start), max(za.stop, zb.stop)),
        slice(min(ya.start, yb.start), max(ya.stop, yb.stop)),
        slice(min(xa.start, xb.start), max(xa.stop, xb.stop)),
    )


@functools.lru_cache(maxsize=256)
def _probe_offsets(spacing_zyx: tuple[float, float, float], tolerance_mm: float) -> np.ndarray:
    """Integer (z, y, x) corner-grid offsets within ``tolerance_mm``, nearest first, shape (n, 3).

    The distance of an offset is evaluated like SciPy's ``distance_transform_edt`` evaluates the
    distance to the nearest feature on DeepMind's (x, y, z) grid: ``sqrt((dx*dx + dy*dy) + dz*dz)``
    with ``d = offset * spacing`` in float64, and kept when ``<= tolerance_mm`` as in
    ``compute_surface_dice_at_tolerance``.
    """
    radius = [math.floor(tolerance_mm / s) + 1 for s in spacing_zyx]
    oz, oy, ox = np.meshgrid(*(np.arange(-r, r + 1) for r in radius), indexing="ij")
    dz = oz.astype(np.float64) * spacing_zyx[0]
    dy = oy.astype(np.float64) * spacing_zyx[1]
    dx = ox.astype(np.float64) * spacing_zyx[2]
    dist = np.sqrt((dx * dx + dy * dy) + dz * dz)
    keep = dist <= tolerance_mm
    order = np.argsort(dist[keep], kind="stable")
    offsets = np.stack([oz[keep], oy[keep], ox[keep]], axis=1)[order]
    offsets.flags.writeable = False
    return offsets


#: Probing hands the still-unresolved points to the EDT once (points x offsets left) exceeds this
#: many times the box volume (one EDT voxel costs about as much as 30-50 probes on this CPU).
_PROBE_TO_EDT = 32
#: Offsets always probed before that switch is considered (the nearest ~2 voxels).
_PROBE_FIRST = 31
#: Upper bound of one vectorised probe block (points x offsets), to bound memory.
_PROBE_BLOCK = 1 << 21
#: Tolerance boxes larger than this many offsets (sub-0.2 mm voxels) go straight to the EDT.
_PROBE_MAX_OFFSETS = 1 << 20


def _within_tolerance_probe(
    query: tuple[np.ndarray, np.ndarray, np.ndarray],
    target: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    tolerance_mm: float,
) -> np.ndarray:
    """For each query corner (index arrays into ``target``'s grid): is a True corner of ``target``
    within ``tolerance_mm``?

    Probes the offsets of :func:`_probe_offsets` nearest first, in blocks that double in size; a
    point leaves at its first hit. Points far from the other surface need every offset, so when,
    after the nearest ``_PROBE_FIRST`` offsets, the work left exceeds ``_PROBE_TO_EDT`` x the box
    volume, the points left go to the EDT (same answer).
    """
    if math.prod(2 * math.floor(tolerance_mm / s) + 3 for s in spacing_zyx) > _PROBE_MAX_OFFSETS:
        return _within_tolerance_edt(query, target, spacing_zyx, tolerance_mm)
    offsets = _probe_offsets(spacing_zyx, tolerance_mm)
    rad = np.abs(offsets).max(axis=0)
    padded = np.zeros(tuple(int(s + 2 * r) for s, r in zip(target.shape, rad, strict=True)), bool)
    padded[
        rad[0] : rad[0] + target.shape[0],
        rad[1] : rad[1] + target.shape[1],
        rad[2] : rad[2] + target.shape[2],
    ] = target
    flat = padded.ravel()
    strides = np.array([padded.shape[1] * padded.shape[2], padded.shape[2], 1], np.int64)
    steps = offsets @ strides
    active = (query[0] + rad[0]) * strides[0] + (query[1] + rad[1]) * strides[1] + (query[2] + rad[2])
    position = np.arange(active.size)
    hit = np.zeros(active.size, bool)
    done, block = 0, 1
    while done < steps.size and active.size:
        if done >= _PROBE_FIRST and active.size * (steps.size - done) > _PROBE_TO_EDT * target.size:
            rest = _within_tolerance_edt(tuple(q[position] for q in query), target, spacing_zyx, tolerance_mm)
            hit[position[rest]] = True
            return hit
        block = max(1, min(block, _PROBE_BLOCK // active.size))
        chunk = steps[done : done + block]
        found = flat[active[:, None] + chunk[None, :]].any(axis=1)
        done += chunk.size
        block *= 2
        if found.any():
            hit[position[found]] = True
            keep = ~found
            active, position = active[keep], position[keep]
    return hit


def _within_tolerance_edt(
    query: tuple[np.ndarray, np.ndarray, np.ndarray],
    target: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    tolerance_mm: float,
) -> np.ndarray:
    """Same answer through SciPy's exact feature transform, on DeepMind's (x, y, z) grid, with the
    distance of each query evaluated exactly as ``distance_transform_edt`` evaluates it."""
    feature = ndimage.distance_transform_edt(
        ~target.T, sampling=spacing_zyx[::-1], return_distances=False, return_indices=True
    )
    qx, qy, qz = query[2], query[1], query[0]
    sq = None
    for axis, q, s in ((0, qx, spacing_zyx[2]), (1, qy, spacing_zyx[1]), (2, qz, spacing_zyx[0])):
        d = (feature[axis][qx, qy, qz] - q).astype(np.float64) * s
        d = d * d
        sq = d if sq is None else sq + d
    return np.sqrt(sq) <= tolerance_mm


_WITHIN = {"probe": _within_tolerance_probe, "edt": _within_tolerance_edt}


def _nsd_of_box(
    gt: np.ndarray,
    pred: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    tolerance_mm: float,
    method: Method,
) -> float:
    """NSD of two boolean (z, y, x) masks cropped to (at least) the bounding box of their union."""
    within = _WITHIN[method]
    table = _surface_area_table(spacing_zyx[::-1])
    code_gt, code_pred = _neighbour_codes(gt), _neighbour_codes(pred)
    border_gt = (code_gt != 0) & (code_gt != 255)
    border_pred = (code_pred != 0) & (code_pred != 255)
    idx_gt, idx_pred = np.nonzero(border_gt), np.nonzero(border_pred)
    area_gt, area_pred = table[code_gt[idx_gt]], table[code_pred[idx_pred]]
    if idx_gt[0].size == 0 and idx_pred[0].size == 0:
        return math.nan  # both empty: DeepMind's 0 / 0
    if idx_gt[0].size == 0 or idx_pred[0].size == 0:
        return 0.0  # one empty: every distance is inf (DeepMind with NumPy 1; it crashes on NumPy 2)
    hit_gt = within(idx_gt, border_pred, spacing_zyx, tolerance_mm)
    hit_pred = within(idx_pred, border_gt, spacing_zyx, tolerance_mm)
    overlap = area_gt[hit_gt].sum() + area_pred[hit_pred].sum()
    return float(overlap / (area_gt.sum() + area_pred.sum()))


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError(
            f"ground truth and prediction must be 3-D of one shape, got {gt.shape} and {pred.shape}"
        )


def normalized_surface_dice(
    gt_mask: np.ndarray,
    pred_mask: np.ndarray,
    spacing_zyx: Sequence[float],
    tolerance_mm: float,
    *,
    method: Method = "probe",
) -> float:
    """DeepMind's surface Dice at ``tolerance_mm`` of two boolean (z, y, x) masks, spacing in mm.

    Equals ``compute_surface_dice_at_tolerance(compute_surface_distances(gt.T, pred.T,
    spacing_zyx[::-1]), tolerance_mm)`` (the official script's call on nibabel (x, y, z) arrays)
    to rounding: only the summation order of the surfel areas differs. Both empty: NaN; one empty:
    0. No FLARE rules here (absence, DSC < 0.2, z-range): see :func:`score_case`.
    """
    if method not in _WITHIN:
        raise ValueError(f"method must be one of {sorted(_WITHIN)}, got {method!r}")
    gt_mask, pred_mask = np.asarray(gt_mask, bool), np.asarray(pred_mask, bool)
    _check_pair(gt_mask, pred_mask)
    spacing = _spacing3(spacing_zyx)
    box = _tight_box(gt_mask | pred_mask)
    if box is None:
        return math.nan
    return _nsd_of_box(gt_mask[box], pred_mask[box], spacing, float(tolerance_mm), method)


def score_case(
    gt: np.ndarray,
    pred: np.ndarray,
    spacing_zyx: Sequence[float],
    *,
    organs: Iterable[int] = ORGAN_IDS,
    not_annotated: Iterable[int] = (),
    official_zrange_off_by_one: bool = True,
    tolerance_mm: Mapping[int, float] | None = None,
    method: Method = "probe",
) -> dict[int, tuple[float, float]]:
    """FLARE24 scores of one case: ``{organ id: (DSC, NSD)}`` as fractions in [0, 1].

    ``gt`` and ``pred`` are (z, y, x) integer label volumes with FLARE ids on one grid;
    ``spacing_zyx`` is the ground truth's spacing in mm. Organs in ``not_annotated`` are omitted
    (never scored as background). ``tolerance_mm`` overrides entries of :data:`TOLERANCE_MM`.
    Rules of the official script: see the module docstring. A z-ranged organ whose ground truth
    lies in a single slice scores (NaN, NaN) with ``official_zrange_off_by_one`` (the official
    script crashes there).
    """
    if method not in _WITHIN:
        raise ValueError(f"method must be one of {sorted(_WITHIN)}, got {method!r}")
    gt, pred = np.asarray(gt), np.asarray(pred)
    _check_pair(gt, pred)
    for name, arr in (("gt", gt), ("pred", pred)):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise TypeError(f"{name} must be an integer label volume, got dtype {arr.dtype}")
    spacing = _spacing3(spacing_zyx)
    tolerances = {**TOLERANCE_MM, **(tolerance_mm or {})}
    skip = {int(o) for o in not_annotated}
    wanted = [int(o) for o in organs if int(o) not in skip]
    if not wanted:
        return {}
    unknown = [o for o in wanted if o not in tolerances]
    if unknown:
        raise ValueError(f"no NSD tolerance for organ ids {unknown}")
    top = max(wanted)
    gt_boxes = _label_boxes(gt.view(np.uint8) if gt.dtype == bool else gt, top)
    pred_boxes = _label_boxes(pred.view(np.uint8) if pred.dtype == bool else pred, top)

    scores: dict[int, tuple[float, float]] = {}
    for organ in wanted:
        gt_box, pred_box = gt_boxes[organ - 1], pred_boxes[organ - 1]
        if gt_box is None and pred_box is None:
            scores[organ] = (1.0, 1.0)
            continue
        if gt_box is None or pred_box is None:
            scores[organ] = (0.0, 0.0)
            continue
        box = _union_box(gt_box, pred_box)
        if organ in Z_RANGE_ORGANS:
            z_lower = gt_box[0].start
            z_stop = gt_box[0].stop - 1 if official_zrange_off_by_one else gt_box[0].stop
            if z_stop <= z_lower:
                warnings.warn(
                    f"organ {organ} ({SHORT_NAMES.get(organ, organ)}): the ground truth lies in one "
                    "slice, so the official z-range [z_lower:z_upper] is empty (the official script "
                    "crashes); scored NaN",
                    RuntimeWarning,
                    stacklevel=2,
                )
                scores[organ] = (math.nan, math.nan)
                continue
            box = (slice(max(box[0].start, z_lower), min(box[0].stop, z_stop)), box[1], box[2])
        gt_crop, pred_crop = gt[box] == organ, pred[box] == organ
        if organ in Z_RANGE_ORGANS:  # the z cut can shrink the box: make it tight again
            tight = _tight_box(gt_crop | pred_crop)  # never None: gt has voxels in slice z_lower
            gt_crop, pred_crop = gt_crop[tight], pred_crop[tight]
        n_gt, n_pred = int(np.count_nonzero(gt_crop)), int(np.count_nonzero(pred_crop))
        dsc = 2 * int(np.count_nonzero(gt_crop & pred_crop)) / (n_gt + n_pred)
        if dsc < NSD_MIN_DSC:
            nsd = 0.0
        else:
            nsd = _nsd_of_box(gt_crop, pred_crop, spacing, float(tolerances[organ]), method)
        scores[organ] = (dsc, nsd)
    return scores


# --------------------------------------------------------------------------------------------
# Folders, tables, CLI
# --------------------------------------------------------------------------------------------
_NIFTI_SUFFIXES = (".nii.gz", ".nii")


def _case_name(path: Path) -> str:
    name = path.name
    for suffix in _NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _case_pairs(pred: Path, gt: Path, gt_glob: str) -> list[tuple[str, Path, Path]]:
    """``(case, pred_file, gt_file)`` for every ground truth: the prediction has the same file name."""
    if not gt.exists():
        raise FlareInputError(gt, "ground truth not found", "pass an existing label file or folder")
    if not pred.exists():
        raise FlareInputError(pred, "prediction not found", "pass an existing label file or folder")
    if gt.is_file():
        pred_file = pred / gt.name if pred.is_dir() else pred
        if not pred_file.is_file():
            raise FlareInputError(
                pred_file, f"no prediction for ground truth {gt.name}", "name it like the GT"
            )
        return [(_case_name(gt), pred_file, gt)]
    if not pred.is_dir():
        raise FlareInputError(pred, "ground truth is a folder but the prediction is a file", "pass a folder")
    gts = sorted(p for p in gt.glob(gt_glob) if p.is_file())
    if not gts:
        raise FlareInputError(gt, f"no ground-truth files match '{gt_glob}'", "check the folder or --gt-glob")
    missing = [p.name for p in gts if not (pred / p.name).is_file()]
    if missing:
        shown = ", ".join(missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        raise FlareInputError(
            pred,
            f"{len(missing)} of {len(gts)} cases have no prediction: {shown}",
            "predict every case; a prediction has the same file name as its ground truth",
        )
    return [(_case_name(p), pred / p.name, p) for p in gts]


def header_spacing(spacing_zyx: Sequence[float]) -> tuple[float, float, float]:
    """Spacing as the official script sees it: NIfTI pixdim are float32 (nibabel ``get_zooms``)."""
    return tuple(float(np.float32(s)) for s in spacing_zyx)  # type: ignore[return-value]


def evaluate_folder(
    pred_dir: str | Path,
    gt_dir: str | Path,
    *,
    label_map: LabelMap | None = None,
    organs: Iterable[int] = ORGAN_IDS,
    official_zrange_off_by_one: bool = True,
    gt_glob: str = "*.nii.gz",
    method: Method = "probe",
    progress: bool = True,
) -> pd.DataFrame:
    """Score every ground truth in ``gt_dir`` against the prediction of the same file name.

    ``pred_dir`` / ``gt_dir`` may also be single files. Ground truths are read with ``label_map``
    (dataset ids -> FLARE ids; its ``not_annotated`` organs are omitted); predictions must hold
    FLARE ids. Spacing comes from the ground-truth header. Returns one row per case and organ:
    ``case, organ, organ_name, dsc, nsd`` (fractions). Raises FlareInputError for missing
    predictions (all listed), unreadable files or mismatched grids.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from flarelib.io import check_same_grid, read_label

    pairs = _case_pairs(Path(pred_dir), Path(gt_dir), gt_glob)
    not_annotated = label_map.not_annotated if label_map is not None else frozenset()
    organs = tuple(organs)
    rows = []
    for case, pred_path, gt_path in tqdm(pairs, desc="evaluate", unit="case", disable=not progress):
        gt_vol = read_label(gt_path, label_map)
        pred_vol = read_label(pred_path)
        check_same_grid(gt_vol, pred_vol)
        if pred_vol.array.max(initial=0) > max(ORGAN_IDS):
            bad = sorted(int(v) for v in np.unique(pred_vol.array) if v > max(ORGAN_IDS))
            raise FlareInputError(
                pred_path, f"prediction holds label ids {bad} that are not FLARE ids 0..13", "write FLARE ids"
            )
        scores = score_case(
            gt_vol.array,
            pred_vol.array,
            header_spacing(gt_vol.spacing_zyx),
            organs=organs,
            not_annotated=not_annotated,
            official_zrange_off_by_one=official_zrange_off_by_one,
            method=method,
        )
        rows.extend(
            {"case": case, "organ": o, "organ_name": SHORT_NAMES[o], "dsc": d, "nsd": n}
            for o, (d, n) in scores.items()
        )
    return pd.DataFrame(rows, columns=["case", "organ", "organ_name", "dsc", "nsd"])


def summary_table(df: pd.DataFrame, *, ddof: int = 1) -> pd.DataFrame:
    """The paper's Table 4 layout: one row per organ (id order) plus ``Average``, in percent.

    Columns ``n_cases, dsc_mean, dsc_std, nsd_mean, nsd_std``; the index holds the organ's short
    name. Organ rows: mean and standard deviation over cases. ``Average``: each case's mean over its
    scored organs, then mean and standard deviation over cases. (The paper's Average std, 4.66 DSC,
    is far below the spread of its organ means, 12.2, so it is a spread over cases; with every organ
    scored in every case the Average mean equals the mean of the organ means.) ``ddof=1``: sample
    standard deviation (the paper does not say which). NaN scores are skipped.
    """
    import pandas as pd

    pct = df.assign(dsc=df["dsc"] * 100.0, nsd=df["nsd"] * 100.0)
    cols = ["n_cases", "dsc_mean", "dsc_std", "nsd_mean", "nsd_std"]

    def stats(frame: pd.DataFrame) -> list[float]:
        return [
            int(frame["dsc"].count()),
            frame["dsc"].mean(),
            frame["dsc"].std(ddof=ddof),
            frame["nsd"].mean(),
            frame["nsd"].std(ddof=ddof),
        ]

    rows, names = [], []
    for organ, group in pct.groupby("organ", sort=True):
        names.append(SHORT_NAMES.get(int(organ), str(organ)))
        rows.append(stats(group))
    per_case = pct.groupby("case", sort=True)[["dsc", "nsd"]].mean()
    names.append("Average")
    rows.append(stats(per_case))
    out = pd.DataFrame(rows, index=pd.Index(names, name="organ"), columns=cols)
    return out.astype({"n_cases": int})


def format_table_markdown(summary: pd.DataFrame, *, decimals: int = 2) -> str:
    """Markdown of a :func:`summary_table`: ``| Organ | DSC (%) | NSD (%) |`` with ``mean ± std``."""

    def cell(mean: float, std: float) -> str:
        if not math.isfinite(mean):
            return "n/a"
        return f"{mean:.{decimals}f} ± {std:.{decimals}f}" if math.isfinite(std) else f"{mean:.{decimals}f}"

    lines = ["| Organ | DSC (%) | NSD (%) |", "|---|---|---|"]
    for name, row in summary.iterrows():
        lines.append(
            f"| {name} | {cell(row['dsc_mean'], row['dsc_std'])} | {cell(row['nsd_mean'], row['nsd_std'])} |"
        )
    return "\n".join(lines) + "\n"


def load_label_map(manifest: str | Path, dataset: str | None = None) -> LabelMap:
    """The label map of ``dataset`` (``NAME`` or ``NAME:VARIANT``) in a dataset.json manifest.

    Without ``dataset`` the manifest must hold exactly one dataset.
    """
    path = Path(manifest)
    if not path.is_file():
        raise FlareInputError(path, "manifest not found", "pass the dataset.json of your data")
    try:
        datasets = json.loads(path.read_text(encoding="utf-8"))["datasets"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise FlareInputError(path, f"not a dataset manifest ({exc})", "pass a dataset.json") from exc
    name, _, variant = (dataset or "").partition(":")
    if not name:
        if len(datasets) != 1:
            raise FlareInputError(path, f"holds datasets {sorted(datasets)}", "name one with --dataset")
        name = next(iter(datasets))
    if name not in datasets:
        raise FlareInputError(path, f"no dataset '{name}' (has {sorted(datasets)})", "check --dataset")
    try:
        return label_map_from_manifest_entry(name, datasets[name], variant or None)
    except (KeyError, ValueError) as exc:
        raise FlareInputError(path, f"dataset '{name}': {exc}", "fix the manifest entry") from exc


def main_evaluate(
    pred: str | Path,
    gt: str | Path,
    out_csv: str | Path,
    manifest: str | Path | None = None,
    dataset: str | None = None,
    *,
    official_zrange_off_by_one: bool = True,
    gt_glob: str = "*.nii.gz",
    method: Method = "probe",
) -> pd.DataFrame:
    """Score ``pred`` against ``gt`` (files or folders), write the per-case CSV atomically, print
    the Table-4 summary as markdown, and return the per-case table."""
    from flarelib.paths import atomic_write_text

    if dataset and manifest is None:
        raise FlareInputError("--dataset", "needs --manifest", "pass the dataset.json that defines it")
    label_map = load_label_map(manifest, dataset) if manifest is not None else None
    df = evaluate_folder(
        pred,
        gt,
        label_map=label_map,
        official_zrange_off_by_one=official_zrange_off_by_one,
        gt_glob=gt_glob,
        method=method,
    )
    atomic_write_text(Path(out_csv), df.to_csv(index=False))
    print(format_table_markdown(summary_table(df)), end="")
    print(f"{len(df['case'].unique())} cases; per-case scores written to {out_csv}")
    return df


def _run_cli(args: argparse.Namespace) -> int:
    main_evaluate(
        args.pred,
        args.gt,
        args.out,
        manifest=args.manifest,
        dataset=args.dataset,
        official_zrange_off_by_one=not args.inclusive_zrange,
        gt_glob=args.gt_glob,
    )
    return 0


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``flarelib evaluate PRED GT --out results.csv [--manifest M --dataset NAME]``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="FLARE24-exact DSC/NSD of predictions against ground-truth labels",
        description=(
            "Score predictions (FLARE ids) against ground truth exactly as the official FLARE24 "
            "Task 2/3 script does, write one CSV row per case and organ, print the Table-4 summary."
        ),
    )
    parser.add_argument("pred", type=Path, help="prediction label file or folder (FLARE ids)")
    parser.add_argument("gt", type=Path, help="ground-truth label file or folder (same file names)")
    parser.add_argument(
        "--out", type=Path, required=True, help="CSV to write (case, organ, organ_name, dsc, nsd)"
    )
    parser.add_argument("--manifest", type=Path, help="dataset.json mapping the GT's ids to FLARE ids")
    parser.add_argument("--dataset", help="dataset in the manifest (NAME or NAME:VARIANT)")
    parser.add_argument(
        "--gt-glob", default="*.nii.gz", help="ground-truth files in a GT folder (default %(default)s)"
    )
    parser.add_argument(
        "--inclusive-zrange",
        action="store_true",
        help="score aorta/IVC/esophagus over the full GT z-range (the official script drops its last slice)",
    )
    parser.set_defaults(func=_run_cli)
    return parser
