"""flarelib.params_cli: the params options every command shares."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from flarelib.cli import main
from flarelib.config import compose_params, load_params
from flarelib.errors import FlareInputError
from flarelib.params_cli import add_params_arguments, params_from_args

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUN = ROOT / "params" / "runs" / "default.yaml"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_params_arguments(parser)
    return parser.parse_args(argv)


def test_profile_composes_with_the_default_run_and_phantom():
    assert params_from_args(parse("--profile", "smoke")) == compose_params(DEFAULT_RUN, "smoke", "phantom")
    got = params_from_args(parse("--profile", "quick", "--data", "real", "--set", "train.iterations=5"))
    assert got.data.track == "real" and got.run.profile == "quick" and got.train.iterations == 5


def test_params_alone_is_loaded_as_it_is():
    path = ROOT / "params" / "data" / "real.yaml"
    assert params_from_args(parse("--params", str(path))) == load_params(path)


def test_data_without_profile_and_nothing_given_are_errors():
    with pytest.raises(FlareInputError, match="--profile"):
        params_from_args(parse("--params", "x.yaml", "--data", "real"))
    with pytest.raises(FlareInputError, match="--params"):
        params_from_args(parse())


def test_flarelib_params_prints_and_rejects_typos(capsys, tmp_path):
    assert main(["params", "--profile", "smoke", "--set", "unet.channels=[2, 4, 8, 8]"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# hash ") and "channels: [2, 4, 8, 8]" in out
    assert main(["params", "--profile", "smoke", "--set", "unet.chanels=[2]"]) == 2
    err = capsys.readouterr().err
    assert "unet.chanels" in err and "did you mean 'unet.channels'" in err and "Traceback" not in err
