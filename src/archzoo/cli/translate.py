"""``archzoo translate RUN_DIR "Ein Mann fährt Fahrrad."``: translate sentences (or a file, line by line)
with a trained translation run, by beam search or greedily, and draw the attention map."""

from __future__ import annotations

import argparse
import sys

from archzoo.cli.common import add_run, finite_float, input_file, output_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("translate", help="translate sentences with a trained translation run",
                       description="e.g. `archzoo translate RUN \"Ein Mann fährt Fahrrad.\"`, or "
                       "`archzoo translate RUN --input de.txt --output en.txt` for a file, one sentence per line. "
                       "--show-attention draws the source x output attention of one sentence.")
    add_run(p)
    p.add_argument("sentences", nargs="*", metavar="SENTENCE")
    p.add_argument("--input", type=input_file, help="UTF-8 text file, one sentence per line (- for standard input)")
    p.add_argument("--output", type=output_file("translations.txt"),
                   help="write the translations here, one per line (default: print them)")
    p.add_argument("--beam", type=int, help="beam size (default: the run's data.beam_size); 1 decodes greedily")
    p.add_argument("--length-penalty", type=finite_float, metavar="ALPHA",
                   help="GNMT length penalty of beam search (default: the one the run's test report chose on "
                   "validation, else the run's data.length_penalty)")
    p.add_argument("--from", dest="source", metavar="LANG", help="the input's language; checked against the run's")
    p.add_argument("--to", dest="target", metavar="LANG", help="the wanted language; checked against the run's")
    p.add_argument("--show-attention", type=output_file("attention.png"), metavar="PNG",
                   help="draw the attention heatmap of one sentence")
    p.add_argument("--layer", type=int, default=-1, help="Transformer: decoder layer of the heatmap (default: last)")
    p.add_argument("--head", type=int, default=-1, help="Transformer: attention head (default: mean of the heads)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archzoo.cli.common import load_run, print_notes, read_lines
    from archzoo.errors import UserError

    if args.input and args.sentences:
        raise UserError("give sentences on the command line or --input FILE, not both")
    if not args.input and not args.sentences:
        raise UserError("nothing to translate; give a sentence, e.g. archzoo translate RUN \"Ein Mann fährt "
                        "Fahrrad.\", or --input FILE")
    sentences = read_lines(args.input, "--input") if args.input else list(args.sentences)
    loaded = load_run(args)
    result = loaded.translate(sentences, beam=args.beam, length_penalty=args.length_penalty,
                                      attention=bool(args.show_attention), source=args.source, target=args.target)
    print_notes(result, loaded)
    if args.output:
        result.save(args.output)
        print(f"wrote {len(result.texts)} translations to {args.output}")
    else:
        sys.stdout.write("".join(text + "\n" for text in result.texts))
    if args.show_attention:
        print(f"wrote {result.plot_attention(args.show_attention, args.layer, args.head)}")
    return 0
