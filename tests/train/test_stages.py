"""The stage API in the 2d configuration: a 2-D U-Net trains on one-slice patches, resumes exactly and
predicts a volume on its exact grid; a 2-D CycleGAN trains and translates slice by slice; params that
do not fit the configuration are refused naming the key; the new keys' defaults keep old hashes."""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np
import pytest
import torch

import flarelib.train.stages as stages
from flarelib.config import LATE_KEYS_NEUTRAL, Params, params_hash, params_to_dict
from flarelib.errors import FlareInputError
from flarelib.infer.pipeline import CasePredictor
from flarelib.io import Volume
from flarelib.models.unet import UNet3D
from flarelib.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_checkpoint
from flarelib.train.cyclegan import translate_volume
from flarelib.train.fake_mr import load_translator, translate_to_fake_mr
from flarelib.train.intensity_aug import GIN
from flarelib.train.sampling import FAKE_MR, TrainVolume
from flarelib.train.stages import OPERATIONAL_TRAIN_FIELDS, train_cyclegan, train_segmentation, training_hash

CONV_TYPES = (torch.nn.Conv3d, torch.nn.ConvTranspose3d)


def params_2d(**train) -> Params:
    p = Params()
    return dataclasses.replace(
        p,
        run=dataclasses.replace(p.run, seed=3, profile="smoke"),
        preprocess=dataclasses.replace(p.preprocess, target_spacing_zyx=(4.0, 3.0, 3.0)),
        unet=dataclasses.replace(
            p.unet, channels=(4, 8, 16), pool_zyx=((1, 2, 2), (1, 2, 2)), configuration="2d"
        ),
        cyclegan=dataclasses.replace(
            p.cyclegan,
            ngf=2,
            ndf=2,
            n_blocks=1,
            n_layers=1,
            patch_zyx=(1, 32, 32),
            epochs=1,
            decay_start_epoch=0,
            iterations_per_epoch=2,
            pool_size=2,
        ),
        train=dataclasses.replace(
            p.train,
            **{
                "patch_zyx": (1, 32, 32),
                "batch_labeled": 4,
                "batch_unlabeled": 4,
                "iterations": 4,
                "optimizer": "adam",
                "lr": 1e-3,
                "checkpoint_every": 2,
                "validate_every": 0,
                "num_workers": 0,
                "amp": False,
                "augmentation": "nnunet",
                "intensity_aug": "gin",
                **train,
            },
        ),
        infer=dataclasses.replace(p.infer, window_zyx=(1, 32, 32), mirror_axes=(), runtime="torch"),
        postprocess=dataclasses.replace(p.postprocess, enabled=False),
    )


def _volumes(make_volume):
    labeled = [dataclasses.replace(make_volume(i), modality="CT") for i in (0, 1)]
    unlabeled = [make_volume(2, labeled=False)]
    return labeled, unlabeled, [make_volume(3)]


def _train(params, out, make_volume, **kw):
    labeled, unlabeled, validation = _volumes(make_volume)
    return train_segmentation(
        params, "mt2d", out, labeled, unlabeled, validation, device="cpu", progress=False, **kw
    )


def test_2d_trains_checkpoints_resumes_exactly_and_predicts_on_the_exact_grid(
    make_volume, tmp_path, monkeypatch
):
    params = params_2d()
    full = _train(params, tmp_path / "full", make_volume)
    assert full.iteration == 4 and len(full.history) == 4
    assert all(np.isfinite(r["loss"]) for r in full.history)

    # interrupted after 2 iterations (what a crash after the checkpoint would leave), then resumed
    with monkeypatch.context() as m:
        m.setattr(stages, "train", functools.partial(stages.train, stop_after=2))
        part = _train(params, tmp_path / "resumed", make_volume)
    assert part.iteration == 2
    resumed = _train(params, tmp_path / "resumed", make_volume)
    assert [int(r["iteration"]) for r in resumed.history] == [3, 4]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history[2:]]
    a = load_checkpoint(tmp_path / "full" / CHECKPOINT_NAME)
    b = load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)
    for name in ("student", "teacher"):
        assert all(torch.equal(a["modules"][name][k], b["modules"][name][k]) for k in a["modules"][name])
    assert (tmp_path / "full" / BEST_NAME).is_file()  # the 2-D validator ran at the end

    # predict a volume through the whole per-case pipeline, from the checkpoint
    rng = np.random.default_rng(0)
    direction = np.array([[0.98, -0.17, 0.0], [0.17, 0.98, 0.0], [0.0, 0.0, 1.0]]) @ np.diag(
        [-1.0, -1.0, 1.0]
    )
    vol = Volume(
        rng.normal(100, 20, (7, 30, 26)).astype(np.float32), (5.0, 2.5, 3.5), (12.5, -3.0, 40.0), direction
    )
    from flarelib.checkpoint import load_model

    model, _, info = load_model(tmp_path / "resumed" / CHECKPOINT_NAME, params)
    assert isinstance(model, UNet3D) and model.configuration == "2d" and info["weights"] == "teacher"
    assert all(m.kernel_size[0] == 1 for m in model.modules() if isinstance(m, CONV_TYPES))
    predictor = CasePredictor(model, params, device="cpu")
    out = predictor.predict_volume(vol)
    assert out.shape == vol.shape and out.array.dtype == np.uint8
    assert out.spacing_zyx == vol.spacing_zyx and out.origin_xyz == vol.origin_xyz
    np.testing.assert_array_equal(out.direction, vol.direction)
    assert predictor.sliding.last_step_fractions[0] == 1.0  # one slice per step along z


def test_2d_params_that_do_not_fit_are_refused_naming_the_key(make_volume, tmp_path):
    p = params_2d()
    bad = [
        (
            dataclasses.replace(p, train=dataclasses.replace(p.train, patch_zyx=(4, 32, 32))),
            "train.patch_zyx",
        ),
        (
            dataclasses.replace(p, infer=dataclasses.replace(p.infer, window_zyx=(4, 32, 32))),
            "infer.window_zyx",
        ),
        (
            dataclasses.replace(p, unet=dataclasses.replace(p.unet, pool_zyx=((1, 2, 2), (2, 2, 2)))),
            "unet.pool_zyx",
        ),
    ]
    for params, key in bad:
        with pytest.raises(FlareInputError, match=re.escape(key) + ": .*Fix"):
            _train(params, tmp_path / "x", make_volume)
    cyc = dataclasses.replace(p, cyclegan=dataclasses.replace(p.cyclegan, patch_zyx=(4, 32, 32)))
    ct = [TrainVolume(np.full((6, 40, 40), 100.0, np.float32))]
    with pytest.raises(FlareInputError, match=r"cyclegan\.patch_zyx: .*one slice"):
        train_cyclegan(cyc, tmp_path / "gan", ct, ct, device="cpu", progress=False)
    small = dataclasses.replace(p, cyclegan=dataclasses.replace(p.cyclegan, patch_zyx=(1, 30, 32)))
    with pytest.raises(FlareInputError, match=r"cyclegan\.patch_zyx: .*multiples of 4 in y and x"):
        train_cyclegan(small, tmp_path / "gan", ct, ct, device="cpu", progress=False)


def test_2d_cyclegan_trains_and_translates_slice_by_slice(tmp_path):
    params = params_2d()
    rng = np.random.default_rng(1)
    a = [TrainVolume(np.clip(rng.normal(100, 30, (6, 40, 40)), 0, 255).astype(np.float32)) for _ in range(2)]
    b = [TrainVolume(255 - v.image) for v in a]
    result = train_cyclegan(params, tmp_path / "gan", a, b, device="cpu", progress=False)
    assert result.iteration == 2
    ckpt = tmp_path / "gan" / CHECKPOINT_NAME
    expect = training_hash(params, "cyclegan")
    generator, record = load_translator(ckpt, params, expect_hash=expect)
    assert record["params_hash"] == expect and generator.configuration == "2d"
    kernels = {tuple(m.kernel_size) for m in generator.modules() if isinstance(m, CONV_TYPES)}
    assert kernels == {(1, 7, 7), (1, 3, 3)}
    # whole-volume translation with (1, 32, 32) tiles: each slice once, as the net run slice by slice
    image = np.clip(rng.normal(100, 30, (5, 32, 32)), 0, 255).astype(np.float32)
    fake = translate_volume(generator, image, params.cyclegan.patch_zyx)
    with torch.no_grad():
        slices = [
            generator(torch.from_numpy(image[z : z + 1] / 127.5 - 1.0)[None, None])[0, 0] for z in range(5)
        ]
    ref = np.clip((torch.cat(slices).numpy() + 1.0) * 127.5, 0, 255)
    np.testing.assert_allclose(fake, ref, rtol=0, atol=1e-3)
    # stage 1's fake MR: a larger CT volume, the CT's grid and label, one-slice tiles
    lab = np.zeros((6, 40, 40), np.uint8)
    lab[1:5, 10:30, 10:30] = 1
    ct = TrainVolume(a[0].image, lab, name="ct", spacing_zyx=(4.0, 3.0, 3.0), modality="CT")
    (mr,) = translate_to_fake_mr(generator, [ct], params.cyclegan.patch_zyx)
    assert mr.shape == ct.shape and mr.modality == FAKE_MR and np.array_equal(mr.label, lab)
    assert np.isfinite(mr.image).all()


def test_new_keys_at_their_defaults_keep_the_hashes_of_older_checkpoints():
    p = Params()
    d = params_to_dict(p)
    del d["unet"]["configuration"], d["train"]["intensity_aug"], d["train"]["init_from"]
    for section, key in LATE_KEYS_NEUTRAL:
        del d[section][key]
    train = {k: v for k, v in d["train"].items() if k not in OPERATIONAL_TRAIN_FIELDS}
    keep = {
        "seed": d["run"]["seed"],
        "data": d["data"],
        "phantom": d["phantom"],
        "preprocess": d["preprocess"],
    }
    old_seg = params_hash({"stage": "mt", **keep, "unet": d["unet"], "train": train})
    old_gan = params_hash({"stage": "cyclegan", **keep, "cyclegan": d["cyclegan"]})
    assert training_hash(p, "mt") == old_seg and training_hash(p, "cyclegan") == old_gan
    two_d = params_2d()
    three_d = dataclasses.replace(two_d, unet=dataclasses.replace(two_d.unet, configuration="3d"))
    assert training_hash(two_d, "cyclegan") != training_hash(three_d, "cyclegan")  # the switch builds it
    assert training_hash(two_d, "mt") != training_hash(three_d, "mt")
    gin = dataclasses.replace(p, train=dataclasses.replace(p.train, intensity_aug="gin"))
    assert training_hash(gin, "mt") != training_hash(p, "mt")


def test_intensity_aug_without_ct_volumes_warns(make_volume, tmp_path):
    params = params_2d(iterations=1, intensity_aug="randconv")
    with pytest.warns(UserWarning, match=r"randconv remaps labelled CT and fake MR only"):
        train_segmentation(params, "mt2d", tmp_path, [make_volume(0)], [], device="cpu", progress=False)


def test_stage1_intensity_aug_randomises_stage_1_alone_and_hashes_as_intensity_aug(
    make_volume, tmp_path, monkeypatch
):
    params = params_2d(iterations=1, intensity_aug="none", stage1_intensity_aug="gin")
    seen = []

    def no_training(system, batches, *args, **kwargs):  # what the training loop is handed
        seen.append(batches.labeled.intensity_aug)

    monkeypatch.setattr(stages, "train", no_training)
    labeled, unlabeled, _ = _volumes(make_volume)
    fakes = [dataclasses.replace(v, modality=FAKE_MR) for v in labeled]
    for stage in ("stage1", "mt2d"):
        train_segmentation(params, stage, tmp_path / stage, fakes, unlabeled, device="cpu", progress=False)
    stage1_aug, other_aug = seen
    assert isinstance(stage1_aug, GIN) and other_aug is None
    asked_directly = params_2d(iterations=1, intensity_aug="gin")
    resolved = stages.stage_params(params, "stage1")
    assert resolved.train == asked_directly.train
    assert training_hash(resolved, "stage1") == training_hash(asked_directly, "stage1")
    assert stages.stage_params(params, "mt2d") is params
    inherit = params_2d(intensity_aug="randconv")
    assert stages.stage_params(inherit, "stage1") is inherit


def test_stage1_oversampling_and_iterations_apply_to_stage_1_alone():
    params = params_2d(iterations=3)
    own = dataclasses.replace(
        params,
        train=dataclasses.replace(
            params.train, stage1_foreground_oversample=1.0, stage1_batch_unlabeled=1, stage1_iterations=9
        ),
    )
    resolved = stages.stage_params(own, "stage1")
    assert resolved.train.foreground_oversample == 1.0 and resolved.train.iterations == 9
    assert resolved.train.batch_unlabeled == 1 != params.train.batch_unlabeled
    assert resolved.train.stage1_foreground_oversample is None and resolved.train.stage1_iterations == 0
    assert resolved.train.stage1_batch_unlabeled is None
    asked_directly = dataclasses.replace(
        params,
        train=dataclasses.replace(params.train, foreground_oversample=1.0, batch_unlabeled=1, iterations=9),
    )
    assert training_hash(resolved, "stage1") == training_hash(asked_directly, "stage1")
    assert stages.stage_params(own, "mt2d") is own


def test_a_refinement_round_trains_its_own_iterations_not_stage_1s(tmp_path):
    from flarelib.study.refine_rounds import round_params

    params = params_2d(iterations=3)
    own = dataclasses.replace(
        params,
        train=dataclasses.replace(params.train, stage1_iterations=9),
        cyclegan=dataclasses.replace(params.cyclegan, refine_iterations=4),
    )
    assert stages.stage_params(round_params(own, tmp_path / "m.pt"), "stage1").train.iterations == 4
    inherit = dataclasses.replace(own, cyclegan=dataclasses.replace(own.cyclegan, refine_iterations=0))
    assert stages.stage_params(round_params(inherit, tmp_path / "m.pt"), "stage1").train.iterations == 3


def test_init_from_starts_both_networks_from_a_checkpoint_and_refuses_a_misfit(
    make_volume, tmp_path, monkeypatch
):
    params = params_2d(iterations=2, intensity_aug="none")
    _train(params, tmp_path / "first", make_volume)
    start = load_checkpoint(tmp_path / "first" / CHECKPOINT_NAME)["modules"]["teacher"]
    warm = params_2d(intensity_aug="none", init_from=str(tmp_path / "first" / CHECKPOINT_NAME))
    assert training_hash(warm, "mt2d") != training_hash(params_2d(intensity_aug="none"), "mt2d")
    seen = {}

    def first_step(system, *args, **kwargs):  # what the training loop is handed
        seen.update(student=system.student.state_dict(), teacher=system.teacher.state_dict())

    monkeypatch.setattr(stages, "train", first_step)
    _train(warm, tmp_path / "warm", make_volume)
    for name in ("student", "teacher"):
        assert all(torch.equal(seen[name][k], start[k]) for k in start), name
    wider = dataclasses.replace(warm, unet=dataclasses.replace(warm.unet, channels=(8, 16, 32)))
    with pytest.raises(FlareInputError, match="init_from: weights do not fit"):
        _train(wider, tmp_path / "wider", make_volume)


def test_content_slab_cuts_the_empty_slices_a_resampled_volume_has_outside_its_field_of_view():
    from flarelib.train.stages import _content_slab

    vol = np.zeros((10, 8, 8), np.float32)
    vol[3:7, 1:7, 1:7] = 50.0
    vol[8, 0, 0] = 1.0  # a lone voxel (interpolation ringing) does not count as content
    assert _content_slab(vol).shape == (4, 8, 8)
    assert np.array_equal(_content_slab(vol), vol[3:7])
    empty = np.zeros((5, 4, 4), np.float32)
    assert _content_slab(empty) is empty


def test_refinement_keys_leave_the_cyclegan_alone_and_organ_targets_enter_the_stage_1_hash():
    p = Params()
    refine = dataclasses.replace(
        p, cyclegan=dataclasses.replace(p.cyclegan, refine_rounds=2, refine_iterations=9)
    )
    # the CycleGAN trains before any refinement: its checkpoint stays current
    assert training_hash(refine, "cyclegan") == training_hash(p, "cyclegan")
    # stage 1 trains on what the rounds ask for; a round's organ targets are part of its data
    assert training_hash(refine, "stage1") != training_hash(p, "stage1")
    base = training_hash(p, "stage1")
    assert training_hash(p, "stage1", {1: 120.0}) != base
    assert training_hash(p, "stage1", {1: 120.0}) != training_hash(p, "stage1", {1: 121.0})
    assert training_hash(p, "stage1", {}) == base
