"""``archzoo`` entry point: parses the subcommand and turns UserError into a one-line message."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from archzoo import __version__
from archzoo.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports mistakes as a UserError (one line) instead of usage + exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> ArgumentParser:
    from archzoo.cli import bench, data, evaluate, info, listing, predict, train

    parser = ArgumentParser(prog="archzoo", description="Classic deep-learning architectures, trained on real data.")
    parser.add_argument("--version", action="version", version=f"archzoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for module in (train, evaluate, predict, info, data, bench, listing):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except UserError as e:
        print(f"archzoo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("archzoo: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # --help and --version
        return int(e.code or 0) if isinstance(e.code, int) else 0
    except Exception as e:
        if os.environ.get("ARCHZOO_DEBUG"):
            raise
        print(f"archzoo: internal error: {type(e).__name__}: {e} (rerun with ARCHZOO_DEBUG=1 for the traceback "
              "and please report it)", file=sys.stderr)
        return 1
