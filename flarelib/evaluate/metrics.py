"""FLARE24-exact organ scores (DSC, NSD), folder evaluation and the ``flarelib evaluate`` CLI.

This module gathers the public names of the evaluation so that ``from flarelib.evaluate.metrics
import score_case`` keeps working; the code lives in the modules below, layered bottom-up:

* :mod:`flarelib.evaluate.dice`: the one volumetric Dice (its both-empty rule an argument);
* :mod:`flarelib.evaluate.surfels`: DeepMind's neighbour codes and surfel areas (mm^2);
* :mod:`flarelib.evaluate.surface`: bounding boxes and the "surfel within tolerance" test
  (``method="probe"`` or ``"edt"``, the same answer);
* :mod:`flarelib.evaluate.scoring`: :func:`normalized_surface_dice` and :func:`score_case` with
  the official script's rules (tolerances in mm, absent in both, DSC < 0.2, z-range organs);
* :mod:`flarelib.evaluate.report`: :func:`evaluate_folder`, :func:`summary_table`,
  :func:`format_table_markdown` and the CLI (:func:`add_cli`, :func:`main_evaluate`).

Arrays are (z, y, x) label volumes; spacings are (z, y, x) in mm.
"""

from __future__ import annotations

from flarelib.evaluate.dice import dice
from flarelib.evaluate.report import (
    add_cli,
    evaluate_folder,
    format_table_markdown,
    header_spacing,
    main_evaluate,
    summary_table,
)
from flarelib.evaluate.scoring import (
    NSD_MIN_DSC,
    TOLERANCE_MM,
    Z_RANGE_ORGANS,
    normalized_surface_dice,
    score_case,
)
from flarelib.evaluate.surface import Method

__all__ = [
    "NSD_MIN_DSC",
    "TOLERANCE_MM",
    "Z_RANGE_ORGANS",
    "Method",
    "add_cli",
    "dice",
    "evaluate_folder",
    "format_table_markdown",
    "header_spacing",
    "main_evaluate",
    "normalized_surface_dice",
    "score_case",
    "summary_table",
]
