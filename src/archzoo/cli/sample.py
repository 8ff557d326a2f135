"""``archzoo sample RUN_DIR``: generate from a trained model: text streamed to stdout from a language
model, an image grid (or latent interpolation strip) from a GAN, or a Hopfield network's step-by-step
recall of corrupted stored images (``--corrupt 0.3`` or ``--occlude``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from archzoo.cli.common import add_data_dir, add_run, finite_float, input_file, output_file, seed

# flag -> the sample verb's option; only the flags a user gave are passed on, so a run whose task takes
# no such option says so in one line
OPTIONS = {"--prompt": "prompt", "--tokens": "tokens", "--temperature": "temperature", "--top-k": "top_k",
           "--top-p": "top_p", "--seed": "seed", "-n": "n", "--class": "class_index", "--interpolate": "interpolate",
           "--unknown": "unknown", "--corrupt": "corrupt", "--occlude": "occlude"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate text, names or images from a trained generative model (Hopfield: recall grids)",
                       description='e.g. archzoo sample RUN_DIR --prompt "ROMEO:" --tokens 500 --temperature 0.8 '
                                   "--top-k 40 --top-p 0.95 --seed 1; for a GAN run: archzoo sample RUN_DIR -n 64 "
                                   "--out grid.png [--class 3] [--interpolate]; for a Hopfield run: archzoo sample "
                                   "RUN_DIR --corrupt 0.3 [-n 8] [--out grid.png]")
    add_run(p, which=False)
    p.add_argument("--prompt", help="text to continue (names: the first letters)")
    p.add_argument("--input", type=input_file, metavar="FILE", help="read the prompt from a UTF-8 file (- for stdin)")
    p.add_argument("--tokens", type=int, help="characters to generate (default 500; names: at most, per name)")
    p.add_argument("--temperature", type=finite_float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=finite_float)
    p.add_argument("--seed", type=seed)
    p.add_argument("-n", "--num-samples", dest="n", type=int, help="texts or names (default 1); images (default 64)")
    p.add_argument("--out", type=output_file("samples.png"),
                   help="write the samples here (a GAN's PNG: default RUN_DIR/samples-seed<SEED>.png; text: a file)")
    p.add_argument("--class", dest="class_index", type=int, help="GAN: the class to draw (conditional models)")
    p.add_argument("--interpolate", action="store_true", default=None,
                   help="GAN: one strip of -n images between two latent points")
    p.add_argument("--corrupt", type=finite_float, metavar="FRACTION",
                   help="Hopfield: flip this fraction of each stored image's pixels and draw the recall step by step")
    p.add_argument("--occlude", action="store_true", default=None,
                   help="Hopfield: erase the lower half of each stored image instead")
    p.add_argument("--unknown", choices=["error", "skip"], help="prompt characters outside the vocabulary: refuse "
                   "(default) or drop them")
    add_data_dir(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.cli.common import load_run, print_notes, read_text
    from archzoo.errors import UserError

    if args.input is not None:
        if args.prompt is not None:
            raise UserError("give the prompt with --prompt or --input, not both")
        args.prompt = read_text(args.input, "--input")
    given = {flag: key for flag, key in OPTIONS.items() if getattr(args, key) is not None}
    loaded = load_run(args)
    accepted = loaded.accepts("sample")
    refused = [flag for flag, key in given.items() if key not in accepted]
    if refused:
        raise UserError(f"{args.run_dir} is a {loaded.config.task} run: {', '.join(refused)} "
                        f"{'does' if len(refused) == 1 else 'do'} not apply (use "
                        f"{', '.join(f for f, k in OPTIONS.items() if k in accepted)}, --out)")
    stream = sys.stdout if "stream" in accepted and args.out is None else None
    result = loaded.sample(**{key: getattr(args, key) for key in given.values()},
                           **({"stream": stream} if stream else {}))
    path = args.out or (loaded.run_dir / result.default_file if result.default_file else None)
    if path is not None:
        print(f"wrote {result.save(Path(path))}")
    elif not result.streamed:
        sys.stdout.write(result.text())
    print_notes(result, loaded)
    return 0
