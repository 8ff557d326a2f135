"""``archzoo`` entry point: parses the subcommand and turns UserError into a one-line message."""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from collections.abc import Sequence

from archzoo import __version__
from archzoo.errors import UserError, close_matches


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports mistakes as a UserError (one line) instead of usage + exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # "invalid choice: 'trian' (choose from 'train', ...)": name the close matches like the registries do
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = [c.strip().strip("'\"") for c in m.group(2).split(",")]
            message += close_matches(m.group(1), choices)
        raise UserError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> ArgumentParser:
    from archzoo.cli import (
        bench,
        config,
        data,
        evaluate,
        export,
        forecast,
        info,
        lab,
        listing,
        predict,
        runs,
        sample,
        serve,
        train,
        transcribe,
        translate,
    )

    parser = ArgumentParser(prog="archzoo", description="Classic deep-learning architectures, trained on real data.")
    parser.add_argument("--version", action="version", version=f"archzoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for module in (train, evaluate, predict, translate, transcribe, sample, forecast, export, runs, serve, config, info,
                   data, bench, lab, listing):
        module.add_parser(sub)
    return parser


def one_line(text: str) -> str:
    """Messages go to stderr on exactly one line, even when they quote multi-line library errors."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except UserError as e:
        print(f"archzoo: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `archzoo ... | head`: the reader left; stop quietly like other tools
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (so the interpreter's final flush cannot fail)
        return 141
    except KeyboardInterrupt:
        print("archzoo: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno not in USER_OS_ERRORS:
            return internal_error(e)
        where = f"{e.filename}: " if e.filename else ""
        print(f"archzoo: error: {where}{e.strerror or e}; {USER_OS_ERRORS[e.errno]}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception as e:
        return internal_error(e)


# errors of the user's machine, not of archzoo: said on one line with the fix
USER_OS_ERRORS = {errno.ENOSPC: "free some space and run the command again (a training resumes with --resume)",
                  errno.EDQUOT: "free some space within your quota and run the command again",
                  errno.EROFS: "the file system is read-only; choose a writable folder",
                  errno.EACCES: "you may not write or read there; choose another folder",
                  errno.EPERM: "you may not write or read there; choose another folder"}


def internal_error(e: BaseException) -> int:
    if os.environ.get("ARCHZOO_DEBUG"):
        raise e
    print(f"archzoo: internal error: {type(e).__name__}: {one_line(str(e))} (rerun with ARCHZOO_DEBUG=1 for the traceback "
          "and please report it)", file=sys.stderr)
    return 1
