"""``archzoo transcribe RUN_DIR FILE.wav...``: the digits spoken in each recording, one line per file.

An isolated-digit run prints its top guesses with probabilities (``7 0.981  1 0.012  9 0.004``); a
connected-digit (CTC) run prints the recognised digit string and the best beams with their probabilities.
Notices (stereo mixed down, another sample rate resampled) go to stderr, one line each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transcribe", help="recognise spoken digits in WAV files with a speech run",
                       description="e.g. archzoo transcribe runs/spoken-digits-cnn-* one.wav two.wav; WAV files, "
                       "mono 8 kHz like the training data (stereo is mixed down and other rates resampled, with a notice)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.wav")
    p.add_argument("--top", type=int, default=3, help="how many alternatives to show (default 3)")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.errors import UserError
    from archzoo.tasks import TASKS
    from archzoo.training.checkpoint import load_model
    from archzoo.training.distributed import resolve_device

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    model, cfg = load_model(args.run_dir)
    task = TASKS.get(cfg.task)(cfg.data)
    if not hasattr(task, "transcribe"):
        raise UserError(f"{args.run_dir} is a {cfg.task} run; transcribe needs a spoken_digits or connected_digits run")
    results, notices = task.transcribe(model.to(resolve_device(args.device)), args.files, args.top)
    for notice in notices:
        print(f"archzoo: notice: {notice}", file=sys.stderr)
    for r in results:
        ranked = "  ".join(f"{text or '(nothing)'} {p:.3f}" for text, p in r["alternatives"])
        print(f"{r['file']}\t{r['text'] or '(nothing)'}\t{ranked}")
    return 0
