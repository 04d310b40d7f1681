"""CT -> fake MR for stage 1: labels and grid carried over, z-scored, clear errors on wrong checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flarelib.config import Params
from flarelib.errors import FlareInputError
from flarelib.models.cyclegan import generator_from_params
from flarelib.train.checkpoint import save_checkpoint
from flarelib.train.fake_mr import load_translator, translate_to_fake_mr
from flarelib.train.sampling import TrainVolume


def _params():
    import dataclasses

    p = Params()
    return dataclasses.replace(p, cyclegan=dataclasses.replace(p.cyclegan, ngf=2, n_blocks=1))


def _ct(seed=0):
    rng = np.random.default_rng(seed)
    lab = np.zeros((10, 36, 40), np.uint8)
    lab[2:8, 5:20, 6:30] = 1
    lab[3:7, 22:30, 10:18] = 3
    img = np.clip(lab * 60.0 + 50 + rng.normal(0, 5, lab.shape), 0, 255).astype(np.float32)
    annotated = np.ones(14, bool)
    annotated[12] = False
    return TrainVolume(img, lab, annotated, name="ct_a", spacing_zyx=(4.0, 3.0, 3.0))


def test_fake_mr_keeps_label_grid_and_mask_and_is_zscored(tmp_path):
    p = _params()
    torch.manual_seed(0)
    g = generator_from_params(p.cyclegan)
    ckpt = tmp_path / "gan.pt"
    save_checkpoint(ckpt, {"modules": {"g_ab": g.state_dict(), "g_ba": g.state_dict()}, "stage": "cyclegan"})
    loaded, record = load_translator(ckpt, p)
    assert not loaded.training and record["path"] == str(ckpt)
    ct = _ct()
    (fake,) = translate_to_fake_mr(loaded, [ct], (8, 16, 16))
    assert fake.name == "ct_a_fake" and fake.spacing_zyx == ct.spacing_zyx
    assert fake.image.shape == ct.image.shape and fake.image.dtype == np.float32
    assert np.array_equal(fake.label, ct.label) and np.array_equal(fake.annotated, ct.annotated)
    assert abs(float(fake.image.mean())) < 1e-4 and abs(float(fake.image.std()) - 1) < 1e-3
    # it is the generator's output, not the CT: a different generator gives a different image
    torch.manual_seed(1)
    (other,) = translate_to_fake_mr(generator_from_params(p.cyclegan).eval(), [ct], (8, 16, 16))
    assert not np.allclose(other.image, fake.image)


def test_load_translator_errors_name_the_file(tmp_path):
    p = _params()
    with pytest.raises(FlareInputError, match=r"missing\.pt.*flarelib train --stage cyclegan"):
        load_translator(tmp_path / "missing.pt", p)
    seg = tmp_path / "seg.pt"
    save_checkpoint(seg, {"modules": {"teacher": {}, "student": {}}})
    with pytest.raises(FlareInputError, match=r"seg\.pt.*not a CycleGAN checkpoint"):
        load_translator(seg, p)
    g = generator_from_params(p.cyclegan)
    wide = tmp_path / "wide.pt"
    save_checkpoint(wide, {"modules": {"g_ab": g.state_dict()}})
    import dataclasses

    q = dataclasses.replace(p, cyclegan=dataclasses.replace(p.cyclegan, ngf=4))
    with pytest.raises(FlareInputError, match=r"wide\.pt.*does not match params\.cyclegan"):
        load_translator(wide, q)


def test_unlabelled_ct_is_refused():
    p = _params()
    g = generator_from_params(p.cyclegan).eval()
    with pytest.raises(FlareInputError, match="no label"):
        translate_to_fake_mr(g, [TrainVolume(np.zeros((8, 16, 16), np.float32), name="u")], (8, 16, 16))


def test_fake_background_zero_keeps_the_body_and_clears_air_and_table():
    from flarelib.train.fake_mr import zero_outside_body

    ct = np.zeros((8, 40, 40), np.float32)
    _, y, x = np.indices(ct.shape)
    body = (y - 18) ** 2 + (x - 20) ** 2 <= 12**2
    ct[body] = 150.0
    fat = np.zeros_like(body)
    fat[:, 8:12, 10:30] = True  # fat (about -110 HU) at the body's edge: body, whatever Otsu says
    ct[fat] = 30.0
    body |= fat
    ct[:, 16:20, 16:20] = 0.0  # gas inside the body: a hole, filled
    ct[:, 36, 5:35] = 200.0  # the table, apart from the body
    fake = np.full(ct.shape, 77.0, np.float32)
    out = zero_outside_body(fake, ct)
    assert np.all(out[body] == 77.0)
    assert np.all(out[~body] == 0.0)
    torch.manual_seed(0)
    g = generator_from_params(_params().cyclegan).eval()
    vol = TrainVolume(
        ct, np.zeros(ct.shape, np.uint8), np.ones(14, bool), name="c", spacing_zyx=(4.0, 3.0, 3.0)
    )
    (kept,) = translate_to_fake_mr(g, [vol], (8, 16, 16), background="keep")
    (zeroed,) = translate_to_fake_mr(g, [vol], (8, 16, 16), background="zero")
    assert np.ptp(kept.image[~body]) > 0
    assert np.ptp(zeroed.image[~body]) == 0  # one value (0, then z-scored) outside the body


def test_body_mask_of_ct_stored_already_clipped_above_air():
    # BTCV's copy stores air at -125 HU: 22 on the [-160, 240] window's 0..255 scale, not 0
    from flarelib.train.fake_mr import ct_body_mask

    air = (-125 + 160) / 400 * 255
    ct = np.full((6, 40, 40), air, np.float32)
    ct[:, :, :2] = 0.0  # resampling padding, darker than the air
    _, y, x = np.indices(ct.shape)
    body = (y - 20) ** 2 + (x - 20) ** 2 <= 12**2
    ct[body] = 150.0
    ct[body & (y < 12)] = (-100 + 160) / 400 * 255  # subcutaneous fat: body
    mask = ct_body_mask(ct)
    assert np.array_equal(mask, body)
    # a field of view inside the body (no air at all) is body everywhere
    assert ct_body_mask(np.full((4, 8, 8), 120.0, np.float32)).all()


def test_generator_input_inverts_the_body_alone_and_keeps_the_window_otherwise():
    from flarelib.train.fake_mr import clear_ct_air, ct_body_mask, generator_input

    ct = np.zeros((6, 40, 40), np.float32)
    _, y, x = np.indices(ct.shape)
    body = (y - 20) ** 2 + (x - 20) ** 2 <= 12**2
    ct[body] = 150.0  # enhanced organ
    ct[body & (y < 12)] = 38.0  # fat
    ct[:, 36, 5:35] = 200.0  # the table
    assert np.array_equal(ct_body_mask(ct), body)
    inv = generator_input(ct, "zero", "inverted")
    assert np.all(inv[body & (y < 12)] == 255.0 - 38.0) and np.all(inv[body & (y >= 12)] == 105.0)
    assert np.all(inv[~body] == 0.0)  # air and table black, as MR's background, whatever background says
    assert np.array_equal(generator_input(ct, "keep", "inverted"), inv)
    assert np.array_equal(generator_input(ct, "zero"), clear_ct_air(ct))
    assert generator_input(ct, "keep") is ct
    with pytest.raises(FlareInputError, match=r"cyclegan\.ct_input"):
        generator_input(ct, "zero", "negated")


def test_organ_targets_move_each_organ_of_the_fake_to_its_brightness():
    p = _params()
    torch.manual_seed(0)
    g = generator_from_params(p.cyclegan).eval()
    ct = _ct()
    (plain,) = translate_to_fake_mr(g, [ct], (8, 16, 16))
    (a,) = translate_to_fake_mr(g, [ct], (8, 16, 16), organ_targets={1: 40.0, 3: 220.0}, refine_erode=0)
    (b,) = translate_to_fake_mr(g, [ct], (8, 16, 16), organ_targets={1: 220.0, 3: 40.0}, refine_erode=0)
    # z-scored like any fake, the label kept; the organs' order follows the targets
    assert abs(float(a.image.mean())) < 1e-4 and np.array_equal(a.label, ct.label)
    assert np.median(a.image[ct.label == 1]) < np.median(a.image[ct.label == 3])
    assert np.median(b.image[ct.label == 1]) > np.median(b.image[ct.label == 3])
    assert not np.allclose(a.image, plain.image)
