import math

import numpy as np
import pytest

from flarelib.evaluate.dice import dice


def test_dice_known_overlap():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[:2] = True  # 32 voxels
    b[1:3] = True  # 32 voxels, 16 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0
    assert dice(a, ~a) == 0.0


@pytest.mark.parametrize("rule", [math.nan, 1.0, None])
def test_dice_empty_rule_is_explicit(rule):
    z = np.zeros((3, 3), np.uint8)
    got = dice(z, z, empty=rule)
    if rule is None:
        assert got is None
    elif math.isnan(rule):
        assert math.isnan(got)
    else:
        assert got == rule
    # one empty, one not: always 0, whatever the rule for both-empty
    o = z.copy()
    o[1, 1] = 3
    assert dice(z, o, empty=rule) == 0.0


def test_dice_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))
