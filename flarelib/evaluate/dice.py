"""The one Dice of flarelib: ``2 |A & B| / (|A| + |B|)`` with the rule for two empty masks named.

Callers differ only in what "both empty" means, so the rule is an argument, never a second copy:

* ``empty=math.nan`` (default): undefined, as DeepMind's ``compute_dice_coefficient``; FLARE's
  scoring (:func:`flarelib.evaluate.metrics.score_case`) applies its absence rules before calling.
* ``empty=1.0``: agreement on absence, e.g. a registration check of two masks that both vanish.
* ``empty=None``: "skip this one": the function returns ``None`` and the caller leaves the pair
  out of its mean (training-time validation).
"""

from __future__ import annotations

import math

import numpy as np


def dice(a: np.ndarray, b: np.ndarray, *, empty: float | None = math.nan) -> float | None:
    """Volumetric Dice of two masks of one shape (nonzero = foreground, any number of axes).

    ``empty``: the value when both masks are empty (NaN, 1.0, or ``None`` to signal "skip").
    """
    a = np.asarray(a) != 0
    b = np.asarray(b) != 0
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return empty
    return 2.0 * int(np.count_nonzero(a & b)) / total
