"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data_root() -> Path:
    """The real-data folder: env FLARE_DATA, else ``../shared/data`` beside the repository."""
    env = os.environ.get("FLARE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real-data folder (holding dataset.json); skips the test when it is absent."""
    root = shared_data_root()
    if not (root / "dataset.json").is_file():
        pytest.skip(f"../shared/data not found (set FLARE_DATA); looked in {root}")
    return root


@pytest.fixture(autouse=True, scope="session")
def _preprocessed_cache_in_tmp(tmp_path_factory):
    """Tests keep the preprocessed-volume cache (flarelib.preprocess.cache) out of outputs/."""
    if "FLARE_PREPROCESSED" not in os.environ:
        os.environ["FLARE_PREPROCESSED"] = str(tmp_path_factory.mktemp("preprocessed"))
    yield
