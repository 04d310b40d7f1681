import numpy as np
import pytest

from flarelib.evaluate.translation import LARGE_ORGANS, organ_regions, translation_figures


def _scene():
    """A body (value 50) with 9 organ blocks of distinct brightness, fat (200) and muscle (20)."""
    rng = np.random.default_rng(0)
    label = np.zeros((8, 40, 90), np.uint8)
    true = np.zeros(label.shape, np.float32)
    true[1:7, 2:38, 2:88] = 50.0
    values = {}
    for k, (_name, organ) in enumerate(LARGE_ORGANS.items()):
        label[2:6, 5:15, 3 + 9 * k : 10 + 9 * k] = organ
        values[organ] = 60.0 + 15 * k
        true[label == organ] = values[organ]
    fat = np.zeros(label.shape, bool)
    fat[2:6, 20:30, 5:40] = True
    muscle = np.zeros(label.shape, bool)
    muscle[2:6, 20:30, 50:85] = True
    true[fat], true[muscle] = 200.0, 20.0
    true += rng.normal(0, 1.0, true.shape).astype(np.float32)
    true[0], true[7] = 0.0, 0.0
    regions = {**organ_regions(label), "fat": fat, "muscle": muscle}
    return true, label, regions, true > 10


def test_a_perfect_translation_scores_zero_error():
    true, _, regions, body = _scene()
    fig = translation_figures(true * 3.0 + 7.0, true, regions, body)  # same contrast, other gain
    assert fig.organ_mae == pytest.approx(0.0, abs=1e-4)  # float32 rounding
    assert fig.order_fraction == 1.0
    assert fig.ssim_body == pytest.approx(1.0, abs=1e-6)
    assert len(fig.means) == 11


def test_a_known_intensity_change_gives_the_expected_error():
    true, label, regions, body = _scene()
    fake = true.copy()
    fake[label == LARGE_ORGANS["liver"]] += 30.0  # the liver (60) passes the right kidney (75)
    fig = translation_figures(fake, true, regions, body)
    # min and max unchanged (0 and ~203), so 0..255 scaling multiplies every difference by 255/range
    scale = 255.0 / (true.max() - true.min())
    assert fig.organ_mae == pytest.approx(30.0 * scale / 9, rel=1e-3)
    assert fig.means["liver"][0] - fig.means["liver"][1] == pytest.approx(30.0 * scale, rel=1e-3)
    # the order fraction is the share of the 55 region pairs whose order the change kept
    true_means = {k: v[1] for k, v in fig.means.items()}
    fake_means = {k: v[0] for k, v in fig.means.items()}
    names = list(true_means)
    agree = [
        np.sign(fake_means[a] - fake_means[b]) == np.sign(true_means[a] - true_means[b])
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    assert fig.order_fraction == pytest.approx(np.mean(agree))
    assert fig.order_fraction < 1.0
    assert fig.ssim_body < 1.0


def test_ct_like_contrast_inverts_the_order():
    true, _, regions, body = _scene()
    fig = translation_figures(255.0 - true, true, regions, body)  # every brightness reversed
    assert fig.order_fraction == 0.0
