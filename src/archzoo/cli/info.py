"""``archzoo info MODEL``: layer table with output shapes, parameters, FLOPs and activation memory."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a model: layers, shapes, parameters, FLOPs")
    p.add_argument("model", help="model name (see `archzoo list models`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="ARG=VALUE",
                   help="builder argument, e.g. in_channels=3 or image_size=32")
    p.add_argument("--batch-size", type=int, default=1)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.config import parse_override
    from archzoo.errors import UserError
    from archzoo.models.summary import describe

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    kwargs = dict(parse_override(o) for o in args.overrides)
    kwargs = {k.removeprefix("model.args.").removeprefix("model."): v for k, v in kwargs.items()}
    print(describe(args.model, args.batch_size, **kwargs))
    return 0
