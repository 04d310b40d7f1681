"""flarelib.preprocess.cache: prepared training volumes read back bit-identical, keyed by inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from flarelib.config import PreprocessParams
from flarelib.data.layout import Case
from flarelib.io import Volume, write_image
from flarelib.preprocess import cache
from flarelib.train.stages import load_train_volume

SPACING = (3.0, 2.5, 2.5)


@pytest.fixture
def case_files(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    z, y, x = np.indices((9, 20, 18))
    lab = (((z - 4) / 3) ** 2 + ((y - 9) / 5) ** 2 + ((x - 8) / 5) ** 2 <= 1).astype(np.uint8)
    img = np.where(lab > 0, 400.0, 120.0) + rng.normal(0, 15, lab.shape)
    vol = Volume(img.astype(np.float32), (2.0, 1.7, 1.3), (0.0, 0.0, 0.0), np.eye(3))
    write_image(vol, tmp_path / "img.nii.gz")
    write_image(vol.with_array(lab), tmp_path / "lab.nii.gz")
    return Case("s", "mr_labeled", "c0", tmp_path / "img.nii.gz", tmp_path / "lab.nii.gz", "MR")


def _entries(tmp_path):
    root = tmp_path / "cache"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_second_load_comes_from_the_cache_bit_identical(case_files, tmp_path, monkeypatch):
    pre = PreprocessParams()
    first = load_train_volume(case_files, SPACING, "zscore", pre)
    assert len(_entries(tmp_path)) == 1
    # a cache hit must not resample again: make the preparation fail if it is called
    import flarelib.train.stages as stages

    monkeypatch.setattr(stages, "prepare_layout_case", lambda *a, **k: pytest.fail("not cached"))
    second = load_train_volume(case_files, SPACING, "zscore", pre)
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.label, second.label)
    assert second.image.dtype == np.float32 and second.label.dtype == np.uint8


def test_every_setting_and_an_edited_file_is_a_new_entry(case_files, tmp_path):
    pre = PreprocessParams()
    load_train_volume(case_files, SPACING, "zscore", pre)
    load_train_volume(case_files, SPACING, "mr255", pre)
    load_train_volume(case_files, (3.0, 2.0, 2.0), "zscore", pre)
    load_train_volume(case_files, SPACING, "mr255", PreprocessParams(mr_scaling="minmax"))
    assert len(_entries(tmp_path)) == 4
    st = case_files.image.stat()
    os.utime(case_files.image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_train_volume(case_files, SPACING, "zscore", pre)
    assert len(_entries(tmp_path)) == 5


def test_a_torn_entry_is_computed_again(case_files, tmp_path):
    pre = PreprocessParams()
    first = load_train_volume(case_files, SPACING, "zscore", pre)
    (entry,) = _entries(tmp_path)
    (tmp_path / "cache" / entry / "image.npy").write_bytes(b"\x93NUMPY torn")
    again = load_train_volume(case_files, SPACING, "zscore", pre)
    np.testing.assert_array_equal(first.image, again.image)
    assert cache.load(entry, with_label=True) is not None  # rewritten whole


def test_off_switch(case_files, tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, "off")
    assert cache.cache_dir() is None
    load_train_volume(case_files, SPACING, "zscore", PreprocessParams())
    assert _entries(tmp_path) == []
