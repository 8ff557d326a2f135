"""``archzoo translate RUN_DIR "Ein Mann fährt Fahrrad."``: translate sentences (or a file, line by line)
with a trained translation run, by beam search or greedily, and draw the attention map."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("translate", help="translate sentences with a trained translation run",
                       description="e.g. `archzoo translate RUN \"Ein Mann fährt Fahrrad.\"`, or "
                       "`archzoo translate RUN --input de.txt --output en.txt` for a file, one sentence per line. "
                       "--show-attention draws the source x output attention of one sentence.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("sentences", nargs="*", metavar="SENTENCE")
    p.add_argument("--input", type=Path, help="UTF-8 text file, one sentence per line")
    p.add_argument("--output", type=Path, help="write the translations here, one per line (default: print them)")
    p.add_argument("--beam", type=int, help="beam size (default: the run's data.beam_size); 1 decodes greedily")
    p.add_argument("--length-penalty", type=float, metavar="ALPHA",
                   help="GNMT length penalty of beam search (default: the one the run's test report chose on "
                   "validation, else the run's data.length_penalty)")
    p.add_argument("--from", dest="source", metavar="LANG", help="the input's language; checked against the run's")
    p.add_argument("--to", dest="target", metavar="LANG", help="the wanted language; checked against the run's")
    p.add_argument("--show-attention", type=Path, metavar="PNG", help="draw the attention heatmap of one sentence")
    p.add_argument("--layer", type=int, default=-1, help="Transformer: decoder layer of the heatmap (default: last)")
    p.add_argument("--head", type=int, default=-1, help="Transformer: attention head (default: mean of the heads)")
    p.add_argument("--which", choices=["best", "last"], default="best", help="best validation or last weights")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run)


def read_sentences(args: argparse.Namespace) -> list[str]:
    from archzoo.errors import UserError

    if args.input and args.sentences:
        raise UserError("give sentences on the command line or --input FILE, not both")
    if not args.input:
        if not args.sentences:
            raise UserError("nothing to translate; give a sentence, e.g. archzoo translate RUN \"Ein Mann fährt "
                            "Fahrrad.\", or --input FILE")
        return list(args.sentences)
    try:
        lines = args.input.read_bytes().decode("utf-8").split("\n")
    except FileNotFoundError:
        raise UserError(f"--input {args.input} does not exist") from None
    except UnicodeDecodeError as err:
        raise UserError(f"--input {args.input} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise UserError(f"line {number} of {args.input} is empty; give one sentence per line")
    if not lines:
        raise UserError(f"--input {args.input} is empty; give one sentence per line")
    return lines


def run(args: argparse.Namespace) -> int:
    from archzoo.errors import UserError
    from archzoo.fileio import atomic_write_text
    from archzoo.tasks.translation import Translation
    from archzoo.training.checkpoint import load_model
    from archzoo.training.distributed import resolve_device

    model, cfg = load_model(args.run_dir, args.which)
    if cfg.task != "translation":
        raise UserError(f"{args.run_dir} is a {cfg.task} run; translate needs a translation run "
                        "(e.g. `archzoo train multi30k-transformer`)")
    data = cfg.data
    for flag, wanted, trained in (("--from", args.source, data.source), ("--to", args.target, data.target)):
        if wanted and wanted != trained:
            raise UserError(f"{flag} {wanted}: this run translates {data.source} -> {data.target}; train a run for "
                            f"that pair (--set data.source=... --set data.target=...) or use one")
    if args.beam is not None and args.beam < 1:
        raise UserError(f"--beam must be >= 1, got {args.beam}")
    alpha = args.length_penalty
    if alpha is None:
        alpha = reported_length_penalty(args.run_dir, data.length_penalty)
    if alpha < 0:
        raise UserError(f"--length-penalty must be >= 0 (0 is no penalty), got {alpha}")
    sentences = read_sentences(args)
    if args.show_attention and len(sentences) != 1:
        raise UserError(f"--show-attention draws one sentence; got {len(sentences)}")
    if args.show_attention and model.attention_kind == "none":
        raise UserError(f"{type(model).__name__} has no attention to draw: it condenses the source into one "
                        "vector; use a seq2seq_attention or transformer_seq2seq run")
    device = resolve_device(args.device)
    model = model.to(device).eval()
    task = Translation(data)
    task.to(device)
    src, truncated = task.encode_sources(sentences)
    for i in truncated:
        print(f"warning: sentence {i + 1} has more than {data.max_tokens - 1} tokens; translated its first "
              f"{data.max_tokens - 1} (data.max_tokens)", file=sys.stderr)
    decoded = task.decode_ids(model, src, args.beam or data.beam_size, need_weights=bool(args.show_attention),
                              length_penalty=alpha)
    translations = task.detokenize(decoded)
    if args.output:
        atomic_write_text(args.output, "\n".join(translations) + "\n")
        print(f"wrote {len(translations)} translations to {args.output}")
    else:
        print("\n".join(translations))
    if args.show_attention:
        draw_attention(args, model, task, src[0], decoded)
    return 0


def reported_length_penalty(run_dir: Path, default: float) -> float:
    """The length penalty of the run's test report (eval.json), which data.length_penalties may have
    chosen on validation; ``default`` when there is no report."""
    import json

    try:
        return float(json.loads((run_dir / "eval.json").read_text())["length_penalty"])
    except (OSError, ValueError, KeyError, TypeError):
        return default


def draw_attention(args: argparse.Namespace, model: Any, task: Any, src: Any, decoded: Any) -> None:
    """The heatmap of output steps x source tokens; for the Transformer one decoder layer's
    cross-attention, one head or the mean of the heads."""
    from archzoo.data.translation import EOS_ID, PAD_ID
    from archzoo.errors import UserError
    from archzoo.viz.plots import plot_attention

    assert decoded.attention is not None, "models with attention return its weights"
    source_ids = [i for i in src.tolist() if i != PAD_ID]
    output_ids = decoded.tokens[0].tolist()
    output_ids = output_ids[:output_ids.index(EOS_ID) + 1] if EOS_ID in output_ids else output_ids
    weights = decoded.attention[0, :len(output_ids)]  # (T, S) or (T, L, H, S)
    title = f"{type(model).__name__}"
    if weights.dim() == 4:
        layers, heads = weights.shape[1], weights.shape[2]
        if not -layers <= args.layer < layers or not -1 <= args.head < heads:
            raise UserError(f"--layer must be in [{-layers}, {layers - 1}] and --head in [0, {heads - 1}] "
                            "(or -1 for the mean of the heads)")
        weights = weights[:, args.layer]
        weights = weights.mean(1) if args.head == -1 else weights[:, args.head]
        layer = args.layer % layers
        title += f", decoder layer {layer}, " + ("mean of heads" if args.head == -1 else f"head {args.head}")
    src_labels = [token_label(task.src_tok, i) for i in source_ids]
    out_labels = [token_label(task.tgt_tok, i) for i in output_ids]
    path = plot_attention(weights[:, :len(source_ids)].float().cpu(), src_labels, out_labels, args.show_attention, title)
    print(f"wrote {path}")


def token_label(tokenizer: Any, token_id: int) -> str:
    """An axis label for one id: its text, "</s>" for EOS, "▁" for a piece that is only a space."""
    from archzoo.data.translation import EOS_ID

    return "</s>" if token_id == EOS_ID else tokenizer.decode([token_id]) or "▁"
