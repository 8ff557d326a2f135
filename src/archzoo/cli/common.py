"""What the subcommands share: loading a run, and argument types that check paths, seeds and numbers
when the command line is parsed, so a mistake is one line before any work starts."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_SEED = 2**63 - 1  # archzoo.tasks.base.MAX_SEED, kept here so parsing imports no torch


def seed(text: str) -> int:
    """``--seed``: an integer in [0, 2^63 - 1]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2^63 - 1], got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2^63 - 1], got {text}")
    return value


def finite_float(text: str) -> float:
    """A float that is a number: nan and inf are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def existing_dir(text: str) -> str:
    """``--data-dir``: a folder that exists."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist; give the folder that holds the datasets "
                                         "(or leave --data-dir out to use $ARCHZOO_DATA and the cache)")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder of datasets")
    return str(path)


def input_file(text: str) -> Path:
    """A file to read, or ``-`` for standard input."""
    path = Path(text)
    if text == "-":
        return path
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file (or - for standard input)")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} cannot be read (permission denied)")
    return path


def output_file(example: str) -> Callable[[str], Path]:
    """A file to write: not a folder, in a folder that exists (or can be made) and is writable, and not
    a read-only file. ``example`` is the kind of name the error suggests."""

    def check(text: str) -> Path:
        path = Path(text)
        if text.endswith(("/", os.sep)) or path.is_dir() or path.name in ("", ".", ".."):
            raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name such as {path / example}")
        parent = path.parent
        existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
        if not existing.is_dir():
            raise argparse.ArgumentTypeError(f"cannot write {text}: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise argparse.ArgumentTypeError(f"cannot write {text} (permission denied); choose another path")
        return path

    return check


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of a file or, for ``-``, of standard input; other encodings are one line."""
    from archzoo.errors import UserError

    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        source = "standard input" if str(path) == "-" else str(path)
        raise UserError(f"{what} {source} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None


def read_lines(path: Path, what: str) -> list[str]:
    """Non-empty lines of a UTF-8 file or standard input, one input each; an empty line is refused."""
    from archzoo.errors import UserError

    lines = read_text(path, what).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise UserError(f"line {number} of {path} is empty; give one input per line")
    if not lines:
        raise UserError(f"{what} {path} is empty; give one input per line")
    return lines


def writable_data_dir(text: str) -> str:
    """``--data-dir`` of a command that downloads or imports into it: it may not exist yet, but must not
    be a file."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder of datasets")
    return str(path)


def add_data_dir(parser: argparse.ArgumentParser, create: bool = False, **kwargs: Any) -> None:
    """``--data-dir`` for every command that reads datasets: checked to exist (``create``: to be a folder
    or not exist yet, for the commands that write into it)."""
    parser.add_argument("--data-dir", type=writable_data_dir if create else existing_dir,
                        help="folder with datasets (before $ARCHZOO_DATA and the cache)"
                        + ("; created if missing" if create else ""), **kwargs)


def add_run(parser: argparse.ArgumentParser, which: bool = True, speed: bool = True) -> None:
    """The run folder and how to load it: --which, --device, --dtype, --quantize."""
    parser.add_argument("run_dir", type=Path, help="a run folder written by `archzoo train` (or a weights file)")
    if which:
        parser.add_argument("--which", choices=["best", "last"], default="best", help="best validation or last weights")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    if speed:
        parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast, faster on CPUs "
                            "with AVX-512 bf16 and on GPUs")
        parser.add_argument("--quantize", choices=["int8"], help="int8: dynamic int8 Linear/LSTM/GRU layers (CPU)")


def load_run(args: argparse.Namespace) -> Any:
    """``archzoo.load`` with the options ``add_run`` (and ``add_data_dir``) parsed."""
    from archzoo.api import load

    return load(args.run_dir, which=getattr(args, "which", "best"), device=args.device,
                dtype=getattr(args, "dtype", "fp32"), quantize=getattr(args, "quantize", None),
                data_dir=getattr(args, "data_dir", None))


def print_notes(result: Any, run: Any = None) -> None:
    """A result's notes and the run's task notices (such as filled gaps in a series) for the user, on
    standard error (standard output stays the data)."""
    notices = run._task.notices if run is not None and run._task is not None else []
    for note in [*getattr(result, "notes", []), *(f"notice: {n}" for n in notices)]:
        print(note, file=sys.stderr)
