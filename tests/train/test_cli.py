"""``flarelib train --params FILE --stage NAME`` on a tiny FLARE-layout dataset written on the fly."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import yaml

from flarelib.errors import FlareInputError
from flarelib.io import Volume, write_image
from flarelib.train.checkpoint import load_checkpoint
from flarelib.train.cli import add_cli
from flarelib.train.stages import augment_config, run_stage, stage_seed, training_hash


def _write_dataset(root):
    rng = np.random.default_rng(0)
    for i in range(2):
        lab = np.zeros((8, 32, 32), np.uint8)
        lab[2:6, 4:20, 4:16] = 1
        lab[2:6, 20:28, 4:10] = 2
        lab[2:6, 20:28, 24:30] = 13
        img = (lab * 40.0 + rng.normal(0, 10, lab.shape)).astype(np.float32)
        vol = Volume(img, (3.0, 1.5, 1.5), (0.0, 0.0, 0.0), np.eye(3))
        write_image(vol, root / "ct" / f"img_{i}.nii.gz")
        write_image(vol.with_array(lab), root / "ct" / f"lab_{i}.nii.gz")
        write_image(vol.with_array(img[:, ::-1].copy() * 0.5 + 100), root / "mr" / f"img_{i}.nii.gz")
    write_image(vol.with_array(img), root / "val" / "img_0.nii.gz")
    write_image(vol.with_array(lab), root / "val" / "lab_0.nii.gz")


def _params_file(tmp_path):
    _write_dataset(tmp_path / "data")
    params = {
        "run": {"name": "clitest", "profile": "smoke", "seed": 1},
        "data": {
            "track": "real",
            "root": str(tmp_path / "data"),
            "sequences_required": [],
            "subsets": {
                "ct": {
                    "role": "ct_labeled",
                    "images": "ct/img_{case}.nii.gz",
                    "labels": "ct/lab_{case}.nii.gz",
                },
                "mr": {
                    "role": "mr_unlabeled",
                    "modality": "MR",
                    "sequence": "T1W",
                    "images": "mr/img_{case}.nii.gz",
                },
                "val": {
                    "role": "mr_val",
                    "modality": "MR",
                    "images": "val/img_{case}.nii.gz",
                    "labels": "val/lab_{case}.nii.gz",
                },
            },
        },
        "preprocess": {"target_spacing_zyx": [3.0, 1.5, 1.5]},
        "unet": {"channels": [4, 8, 16], "pool_zyx": [[1, 2, 2], [2, 2, 2]]},
        "cyclegan": {
            "ngf": 2,
            "ndf": 2,
            "n_blocks": 1,
            "patch_zyx": [8, 32, 32],
            "epochs": 1,
            "decay_start_epoch": 0,
            "iterations_per_epoch": 2,
            "pool_size": 2,
        },
        "train": {
            "patch_zyx": [8, 32, 32],
            "batch_labeled": 1,
            "batch_unlabeled": 1,
            "iterations": 2,
            "checkpoint_every": 1,
            "validate_every": 0,
            "num_workers": 0,
            "threads": 1,
        },
        "infer": {"window_zyx": [8, 32, 32], "mirror_axes": []},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    return parser.parse_args(argv)


def test_train_cli_segmentation_stage(tmp_path, monkeypatch):
    monkeypatch.delenv("FLARE_DATA", raising=False)
    params_file = _params_file(tmp_path)
    out = tmp_path / "out"
    args = _parse(
        [
            "train",
            "--params",
            str(params_file),
            "--stage",
            "mt_stage1",
            "--out",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert args.func(args) == 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["stage"] == "mt_stage1" and ckpt["iteration"] == 2
    for name in ("train_log.csv", "val_log.csv", "params.yaml", "run.json", "model_best.pt"):
        assert (out / name).is_file(), name
    # a second stage in the same folder is refused, naming the file
    with pytest.raises(FlareInputError, match=r"checkpoint\.pt"):
        args = _parse(
            [
                "train",
                "--params",
                str(params_file),
                "--stage",
                "mt_stage2",
                "--out",
                str(out),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        args.func(args)


def test_train_cli_cyclegan_stage(tmp_path, monkeypatch):
    monkeypatch.delenv("FLARE_DATA", raising=False)
    from flarelib.config import load_params

    params_file = _params_file(tmp_path)
    with pytest.raises(FlareInputError, match="n_layers"):
        run_stage(load_params(params_file), "cyclegan", tmp_path / "gan", progress=False, device="cpu")
    params = load_params(params_file, {"cyclegan": {"n_layers": 1}})
    result = run_stage(params, "cyclegan", tmp_path / "gan", progress=False, device="cpu")
    assert result.iteration == 2
    ckpt = load_checkpoint(tmp_path / "gan" / "checkpoint.pt")
    assert set(ckpt["modules"]) == {"g_ab", "g_ba", "d_a", "d_b"}


def test_stage_seed_and_hash_depend_on_the_stage(tmp_path):
    from flarelib.config import Params

    p = Params()
    assert stage_seed(1, "a") != stage_seed(1, "b") and stage_seed(1, "a") == stage_seed(1, "a")
    assert training_hash(p, "mt_stage1") != training_hash(p, "mt_stage2")
    # stage1 trains on what the CycleGAN makes: another CycleGAN is another training
    import dataclasses

    q = dataclasses.replace(p, cyclegan=dataclasses.replace(p.cyclegan, epochs=7))
    assert training_hash(p, "stage1") != training_hash(q, "stage1")
    assert training_hash(p, "mt_stage1") == training_hash(q, "mt_stage1")


def test_augmentation_switch():
    import dataclasses

    from flarelib.config import TrainParams
    from flarelib.train.augment import AugmentConfig

    assert augment_config(TrainParams()) == AugmentConfig()
    none = augment_config(dataclasses.replace(TrainParams(), augmentation="none", swap_lr_labels=False))
    assert none == AugmentConfig.none(swap_lr_labels=False)
    assert none.p_mirror == 0 and none.p_rotation == 0 and none.p_gamma == 0
    # a different augmentation is a different training: its hash differs, so no resume across it
    from flarelib.config import Params

    p = Params()
    q = dataclasses.replace(p, train=dataclasses.replace(p.train, augmentation="none"))
    assert training_hash(p, "student") != training_hash(q, "student")


def test_train_cli_stage1_trains_on_fake_mr_from_the_runs_cyclegan(tmp_path, monkeypatch):
    monkeypatch.delenv("FLARE_DATA", raising=False)
    from flarelib.config import load_params

    params = load_params(_params_file(tmp_path), {"cyclegan": {"n_layers": 1}})
    # without a CycleGAN the stage names the missing checkpoint and how to make it
    with pytest.raises(FlareInputError, match=r"gan[/\\]checkpoint\.pt.*flarelib train --stage cyclegan"):
        gan = tmp_path / "gan" / "checkpoint.pt"
        run_stage(params, "stage1", tmp_path / "s1", progress=False, device="cpu", cyclegan=gan)
    run_stage(params, "cyclegan", tmp_path / "gan", progress=False, device="cpu")
    gan_path = tmp_path / "gan" / "checkpoint.pt"
    args = _parse(
        [
            "train",
            "--params",
            str(tmp_path / "params.yaml"),
            "--set",
            "cyclegan.n_layers=1",
            "--stage",
            "stage1",
            "--cyclegan",
            str(tmp_path / "gan" / "checkpoint.pt"),
            "--out",
            str(tmp_path / "s1"),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert args.func(args) == 0
    ckpt = load_checkpoint(tmp_path / "s1" / "checkpoint.pt")
    assert ckpt["stage"] == "stage1" and ckpt["iteration"] == 2
    import json

    record = json.loads((tmp_path / "s1" / "run.json").read_text())
    gan = load_checkpoint(tmp_path / "gan" / "checkpoint.pt")
    assert record["cyclegan"]["path"].endswith("checkpoint.pt")
    assert record["cyclegan"]["iteration"] == 2 and record["cyclegan"]["params_hash"] == gan["params_hash"]
    # a CycleGAN trained with other params is used, with a warning naming it
    other = load_params(tmp_path / "params.yaml", {"cyclegan": {"n_layers": 1, "lambda_identity": 1.0}})
    with pytest.warns(UserWarning, match=r"checkpoint\.pt: this CycleGAN was trained with other params"):
        run_stage(other, "stage1", tmp_path / "s1b", progress=False, device="cpu", cyclegan=gan_path)


def test_training_volumes_are_reoriented_to_lps_as_prediction_sees_them(tmp_path):
    """A case stored with y flipped (as BTCV and CHAOS are) trains on the LPS array that
    ``flarelib predict`` would feed the net, not on the array as stored."""
    from flarelib.config import Params
    from flarelib.data.layout import Case
    from flarelib.train.stages import load_train_volume

    rng = np.random.default_rng(3)
    lab = np.zeros((6, 20, 16), np.uint8)
    lab[1:5, 2:8, 3:12] = 1  # "liver" in the first rows of y
    img = (lab * 50.0 + rng.normal(0, 5, lab.shape)).astype(np.float32)
    lps = Volume(img, (3.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    flipped_dir = np.diag([1.0, -1.0, 1.0])
    # the same physical volume stored y-flipped: reversed rows, origin at the other end of y
    stored = Volume(img[:, ::-1].copy(), (3.0, 2.0, 2.0), (0.0, 19 * 2.0, 0.0), flipped_dir)
    for name, vol in (("lps", lps), ("flipped", stored)):
        write_image(vol, tmp_path / f"{name}_img.nii.gz")
        labels = lab if name == "lps" else lab[:, ::-1].copy()
        write_image(vol.with_array(labels), tmp_path / f"{name}_lab.nii.gz")
    loaded = {
        name: load_train_volume(
            Case(
                "s",
                "ct_labeled",
                name,
                tmp_path / f"{name}_img.nii.gz",
                tmp_path / f"{name}_lab.nii.gz",
                "CT",
            ),
            (3.0, 2.0, 2.0),
            "ct255",
            Params().preprocess,
        )
        for name in ("lps", "flipped")
    }
    assert np.array_equal(loaded["flipped"].label, loaded["lps"].label)
    assert np.allclose(loaded["flipped"].image, loaded["lps"].image)
    assert loaded["flipped"].label[2, 3, 5] == 1  # the organ sits where LPS puts it
