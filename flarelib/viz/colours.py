"""The label colours: one fixed RGBA colour per FLARE id, so every figure agrees.

Plain tuples (no matplotlib import): :mod:`flarelib.viz.figures` builds its colormap from them and
:mod:`flarelib.viz.montage` its contours, legend and PNG palette.
"""

from __future__ import annotations

from flarelib.labels import NUM_CLASSES

__all__ = ["LABEL_RGBA"]

#: RGBA (0..1) of each FLARE id, indexed by id (see :data:`flarelib.labels.SHORT_NAMES`);
#: id 0 (background) is transparent black.
LABEL_RGBA: tuple[tuple[float, float, float, float], ...] = (
    (0, 0, 0, 0),
    (0.86, 0.37, 0.34, 1),
    (0.99, 0.80, 0.18, 1),
    (0.36, 0.72, 0.36, 1),
    (0.94, 0.60, 0.85, 1),
    (0.90, 0.10, 0.10, 1),
    (0.25, 0.45, 0.95, 1),
    (0.60, 0.95, 0.95, 1),
    (0.10, 0.80, 0.80, 1),
    (0.45, 0.85, 0.20, 1),
    (0.80, 0.55, 0.20, 1),
    (0.65, 0.40, 0.90, 1),
    (0.95, 0.75, 0.55, 1),
    (1.00, 0.55, 0.10, 1),
)
assert len(LABEL_RGBA) == NUM_CLASSES
