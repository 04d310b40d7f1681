"""``flarelib params``: show the resolved params of a run (profile + data track + run file)."""

from __future__ import annotations

import argparse
import sys

import yaml

from flarelib.config import DATA_TRACKS, PROFILES, compose_params, load_params, params_hash, params_to_dict


def add_params_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The shared ``--params FILE [--profile P] [--data TRACK] [--set KEY=VALUE ...]`` options."""
    parser.add_argument(
        "--params",
        required=required,
        metavar="FILE",
        help="params file (a run file, a profile, or a resolved params.yaml)",
    )
    parser.add_argument(
        "--profile", choices=PROFILES, help="compose params/profiles/<profile>.yaml + [data track] + FILE"
    )
    parser.add_argument(
        "--data", choices=DATA_TRACKS, help="data track overlay params/data/<track>.yaml (with --profile)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set train.iterations=20 (repeatable)",
    )


def params_from_args(args: argparse.Namespace):
    """Load params as the shared options describe."""
    from flarelib.config import _deep_merge, parse_override

    overrides: dict = {}
    for text in args.set:
        overrides = _deep_merge(overrides, parse_override(text))
    if args.profile:
        return compose_params(args.params, args.profile, args.data, overrides=overrides or None)
    if args.data:
        from flarelib.config import load_layers
        from flarelib.paths import project_root

        return load_layers(
            [project_root() / "params" / "data" / f"{args.data}.yaml", args.params], overrides or None
        )
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
