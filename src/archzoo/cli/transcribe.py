"""``archzoo transcribe RUN_DIR FILE.wav...``: the digits spoken in each recording, one line per file.

An isolated-digit run prints its top guesses with probabilities (``7 0.981  1 0.012  9 0.004``); a
connected-digit (CTC) run prints the recognised digit string and the best beams with their probabilities.
Notices (stereo mixed down, another sample rate resampled) go to stderr, one line each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from archzoo.cli.common import add_run


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transcribe", help="recognise spoken digits in WAV files with a speech run",
                       description="e.g. archzoo transcribe runs/spoken-digits-cnn-* one.wav two.wav; WAV files, "
                       "mono 8 kHz like the training data (stereo is mixed down and other rates of 1-384 kHz resampled, with a "
                       "notice); at most the run's data.max_seconds (5 s for isolated digits, 20 s for connected ones)")
    add_run(p)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.wav")
    p.add_argument("--top", type=int, default=3,
                   help="how many alternatives to show (default 3; a connected-digit run shows at most its beam width)")
    p.add_argument("--beam", type=int, help="connected digits: prefix beam search width (default the run's "
                   "data.beam_size); 1 decodes greedily (best path)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.cli.common import load_run, print_notes
    from archzoo.errors import UserError

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    loaded = load_run(args)
    if "transcribe" not in loaded.verbs:
        raise UserError(f"{args.run_dir} is a {loaded.config.task} run; transcribe needs a spoken_digits or "
                        "connected_digits run")
    options = {} if args.beam is None else {"beam": args.beam}  # isolated-digit runs take no beam
    result = loaded.transcribe(args.files, top=args.top, **options)
    print_notes(result, loaded)
    print("\n".join(result.lines()))
    return 0
