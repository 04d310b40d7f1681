"""Params options shared by every command, and ``flarelib params`` (print the resolved params).

``--params FILE`` alone loads FILE as it is (a full params file, a data-track file, a resolved
``params.yaml``); with ``--profile P`` FILE is a run overlay (default ``params/runs/default.yaml``)
composed as ``profiles/P.yaml`` + ``data/TRACK.yaml`` (``--data``, default phantom) + FILE;
``--set KEY=VALUE`` overrides one value (repeatable). Every key is checked by the strict loader.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from flarelib.config import (
    DATA_TRACKS,
    PROFILES,
    compose_params,
    load_params,
    params_hash,
    params_to_dict,
    parse_overrides,
)
from flarelib.errors import FlareInputError
from flarelib.paths import project_root


def add_params_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--params``, ``--profile``, ``--data`` and ``--set`` on ``parser``."""
    parser.add_argument(
        "--params",
        metavar="FILE",
        help="params file, loaded as it is; with --profile: the run file (default params/runs/default.yaml)",
    )
    parser.add_argument(
        "--profile", choices=PROFILES, help="compose params/profiles/<profile>.yaml + data track + run file"
    )
    parser.add_argument(
        "--data",
        choices=DATA_TRACKS,
        help="data track params/data/<track>.yaml (with --profile; default phantom)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set train.iterations=20 (repeatable)",
    )


def params_from_args(args: argparse.Namespace):
    """The :class:`~flarelib.config.Params` the shared options describe."""
    overrides = parse_overrides(getattr(args, "set", None) or [])
    if args.profile is not None:
        run_file = args.params or project_root() / "params" / "runs" / "default.yaml"
        return compose_params(run_file, args.profile, args.data or "phantom", overrides=overrides or None)
    if args.data is not None:
        raise FlareInputError(
            "--data",
            "a data track is composed with a profile",
            "add --profile smoke|quick|full, or pass --params params/data/TRACK.yaml",
        )
    if args.params is None:
        raise FlareInputError(None, "no params given", "pass --params FILE and/or --profile smoke|quick|full")
    return load_params(args.params, overrides or None)


def _show(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    sys.stdout.write(f"# hash {params_hash(params)}\n")
    sys.stdout.write(
        yaml.safe_dump(params_to_dict(params), sort_keys=False, default_flow_style=None, width=100)
    )
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("params", help="print the resolved params of a run (strictly checked)")
    add_params_arguments(p)
    p.set_defaults(func=_show)
