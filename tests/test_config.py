"""flarelib.config: strict loading, extends, typed values, round trip, composition."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from flarelib.config import (
    Params,
    compose_params,
    dump_params,
    load_params,
    load_stage_params,
    params_from_dict,
    params_hash,
    parse_override,
)
from flarelib.errors import FlareInputError

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_base_yaml_states_the_dataclass_defaults():
    # base.yaml documents the defaults; it must not drift from the schema.
    assert load_params(ROOT / "params" / "base.yaml") == Params()


def test_profiles_and_tracks_load(tmp_path):
    for profile in ("smoke", "quick", "full"):
        for track in ("phantom", "real", "flare24"):
            p = compose_params(ROOT / "params" / "runs" / "default.yaml", profile, track)
            assert p.run.profile == profile
            assert p.data.track == track
            assert p.data.subsets


def test_extends_relative_and_override_order(tmp_path):
    write(tmp_path / "a" / "base.yaml", {"train": {"lr": 0.5, "iterations": 10}, "run": {"seed": 1}})
    write(tmp_path / "b" / "child.yaml", "extends: ../a/base.yaml\ntrain:\n  lr: 0.25\n")
    p = load_params(tmp_path / "b" / "child.yaml")
    assert p.train.lr == 0.25 and p.train.iterations == 10 and p.run.seed == 1
    # untouched fields keep the schema default
    assert p.train.momentum == 0.99


def test_unknown_key_names_key_file_and_closest(tmp_path):
    path = write(tmp_path / "typo.yaml", "train:\n  lrr: 0.1\n")
    with pytest.raises(FlareInputError) as err:
        load_params(path)
    msg = str(err.value)
    assert "train.lrr" in msg and "typo.yaml" in msg and "did you mean 'train.lr'" in msg


def test_unknown_key_in_a_parent_names_the_parent(tmp_path):
    write(tmp_path / "parent.yaml", "infer:\n  mirror_axis: [0]\n")
    child = write(tmp_path / "child.yaml", "extends: parent.yaml\n")
    with pytest.raises(FlareInputError, match=r"parent\.yaml.*infer\.mirror_axis.*infer\.mirror_axes"):
        load_params(child)


def test_unknown_section_and_nested_subset_key(tmp_path):
    with pytest.raises(FlareInputError, match="did you mean 'train'"):
        load_params(write(tmp_path / "x.yaml", "trian: {}\n"))
    bad = "data:\n  subsets:\n    ct: {role: ct_labeled, image: 'a/{case}.nii.gz'}\n"
    with pytest.raises(FlareInputError, match=r"data\.subsets\.ct\.image.*images"):
        load_params(write(tmp_path / "y.yaml", bad))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("train:\n  iterations: 1.5\n", "'train.iterations' must be an integer"),
        ("train:\n  nesterov: 1\n", "'train.nesterov' must be true or false"),
        ("infer:\n  window_zyx: [1, 2]\n", "'infer.window_zyx' must be a list of 3 values"),
        ("cyclegan:\n  gan_loss: lsgn\n", "did you mean 'lsgan'"),
        ("run:\n  seed: '3'\n", "'run.seed' must be an integer"),
    ],
)
def test_wrong_types_are_errors(tmp_path, text, fragment):
    with pytest.raises(FlareInputError) as err:
        load_params(write(tmp_path / "t.yaml", text))
    assert fragment in str(err.value)


def test_ints_become_floats_and_lists_tuples(tmp_path):
    p = load_params(write(tmp_path / "t.yaml", "train:\n  lr: 1\n  patch_zyx: [8, 16, 16]\n"))
    assert isinstance(p.train.lr, float) and p.train.patch_zyx == (8, 16, 16)


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Params().train.lr = 1.0  # type: ignore[misc]


def test_resolved_params_round_trip(tmp_path):
    p = compose_params(ROOT / "params" / "runs" / "default.yaml", "smoke", "real")
    path = dump_params(p, tmp_path / "resolved.yaml")
    again = load_params(path)
    assert again == p
    assert params_hash(again) == params_hash(p)
    assert dump_params(again, tmp_path / "again.yaml").read_text() == path.read_text()
    assert load_stage_params(path, "quick") == p  # a resolved file is taken as it is


def test_extends_cycle_and_missing_parent(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(FlareInputError, match="cycle"):
        load_params(tmp_path / "a.yaml")
    write(tmp_path / "c.yaml", "extends: nope.yaml\n")
    with pytest.raises(FlareInputError, match=r"nope\.yaml"):
        load_params(tmp_path / "c.yaml")


def test_invalid_yaml_is_one_line_error(tmp_path):
    with pytest.raises(FlareInputError, match="not valid YAML at line"):
        load_params(write(tmp_path / "bad.yaml", "train:\n  lr: [1,\n"))


def test_overrides_and_hash_sensitivity():
    base = ROOT / "params" / "runs" / "default.yaml"
    p = compose_params(base, "smoke", "phantom")
    q = compose_params(base, "smoke", "phantom", overrides=parse_override("train.iterations=11"))
    assert q.train.iterations == 11
    assert params_hash(p) != params_hash(q)
    assert params_hash(p, ["unet"]) == params_hash(q, ["unet"])
    with pytest.raises(FlareInputError, match=r"train\.iteration"):
        compose_params(base, "smoke", "phantom", overrides=parse_override("train.iteration=11"))


def test_params_from_dict_checks_keys():
    with pytest.raises(FlareInputError, match=r"unknown key 'unet\.chanels'"):
        params_from_dict({"unet": {"chanels": [1]}})
