"""``archzoo lab list | run NAME | all | report DIR``: the articles' claims as experiments with verdicts."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUT = Path("runs/lab")
DEFAULT_QUICK_OUT = Path("runs/lab-quick")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="the claims lab: run experiments that check the articles' claims",
                       description="Each experiment checks a claim of the literature (quoted, with its paper) and "
                       "decides it by a rule fixed in code: supported, refuted or depends. Every (configuration, "
                       "seed) cell is cached, so an interrupted run resumes and more seeds reuse finished cells; an "
                       "interrupted hours-long training cell (attention-and-length) continues from its checkpoint. "
                       "Ctrl-C or SIGTERM stops every worker's training at a checkpoint and starts no further cell.")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=type(p))

    listing = verbs.add_parser("list", help="the experiments and their claims")
    listing.set_defaults(run=run_list)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--quick", action="store_true",
                       help="fewer lengths and shorter runs, the same code (about 3 minutes per experiment)")
        q.add_argument("--seeds", type=int, help="seeds per configuration (default: the experiment's, usually 3)")
        q.add_argument("--out", type=Path, help=f"output folder (default: {DEFAULT_OUT}, or {DEFAULT_QUICK_OUT} "
                       "with --quick)")
        q.add_argument("--data-dir", help="folder with datasets (before $ARCHZOO_DATA and the cache)")
        q.add_argument("--threads", type=int, help="torch threads (timing experiments record it); with --jobs, per job")
        q.add_argument("--jobs", type=int, default=1, help="cells computed at once, each in its own process (default "
                       "1); e.g. --jobs 2 --threads 1 on 2 cores. Cells that time something still run alone")
        q.add_argument("--keep-runs", action="store_true", help="keep each cell's training run folder")
        q.add_argument("--no-progress", action="store_true", help="no progress bar")

    run_p = verbs.add_parser("run", help="run one experiment and write its page")
    run_p.add_argument("name")
    run_p.add_argument("--only", type=cell_labels, metavar="LABEL[,LABEL...]",
                       help="compute only the missing cells with these labels (as the page lists them); the "
                       "page names the rest as missing. Splits a long run into parts")
    common(run_p)
    run_p.set_defaults(run=run_one)

    all_p = verbs.add_parser("all", help="run every experiment and write the pages and the index")
    common(all_p)
    all_p.set_defaults(run=run_all)

    report_p = verbs.add_parser("report", help="rebuild the pages and index of an output folder from its cached cells")
    report_p.add_argument("dir", type=Path)
    report_p.set_defaults(run=run_report)


def cell_labels(text: str) -> list[str]:
    """--only's comma-separated cell labels."""
    labels = [t.strip() for t in text.split(",") if t.strip()]
    if not labels:
        raise argparse.ArgumentTypeError("give at least one cell label, e.g. --only 'size 2'")
    return labels


def run_list(args: argparse.Namespace) -> int:
    from archzoo.lab import EXPERIMENTS

    for name in EXPERIMENTS.names():
        exp = EXPERIMENTS.get(name)
        seeds = f"{exp.default_seeds} seed{'s' if exp.default_seeds != 1 else ''}" if exp.seeded else "unseeded"
        timing = f"; full mode {exp.full_minutes}" if exp.full_minutes else ""
        print(f"{name}\t{exp.title} ({len(exp.claims)} claim{'s' if len(exp.claims) > 1 else ''}, {seeds}{timing})")
    return 0


def _prepare(args: argparse.Namespace, names: list[str]) -> tuple[Path, str]:
    import shlex

    import torch

    from archzoo.errors import UserError
    from archzoo.fileio import ensure_writable_dir

    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    out = args.out or (DEFAULT_QUICK_OUT if args.quick else DEFAULT_OUT)
    ensure_writable_dir(out, "choose another --out")
    flags = (" --quick" if args.quick else "") + (f" --seeds {args.seeds}" if args.seeds else "") + \
        (f" --threads {args.threads}" if args.threads else "") + (f" --jobs {args.jobs}" if args.jobs > 1 else "") + \
        f" --out {shlex.quote(str(out))}"
    return out, flags


def _run(names: list[str], args: argparse.Namespace, out: Path, command: str) -> None:
    from archzoo.lab.runner import run_experiment

    for name in names:
        counts = {"computed": 0, "reused": 0}

        def count(result: object, reused: bool, counts: dict[str, int] = counts) -> None:
            counts["reused" if reused else "computed"] += 1

        page = run_experiment(name, out, quick=args.quick, seeds=args.seeds, data_dir=args.data_dir,
                              progress=not args.no_progress, keep_runs=args.keep_runs, command=command, jobs=args.jobs,
                              only=getattr(args, "only", None), on_cell=count)
        _print_verdicts(out, name, page, counts)


def _print_verdicts(out: Path, name: str, page: Path, counts: dict[str, int] | None = None) -> None:
    import json

    summary = json.loads((out / name / "results.json").read_text())
    done = f" ({counts['computed']} cells computed, {counts['reused']} reused)" if counts else ""
    print(f"{name}: {page}{done}")
    for claim in summary["claims"]:
        verdict = claim["verdict"]
        print(f"  {claim['key']}: {verdict['outcome'] if verdict else 'incomplete'}"
              + (f" — {verdict['reason']}" if verdict else ""))


def run_one(args: argparse.Namespace) -> int:
    import shlex

    from archzoo.lab import EXPERIMENTS

    EXPERIMENTS.get(args.name)  # an unknown name fails before anything is written
    out, flags = _prepare(args, [args.name])
    only = f" --only {shlex.quote(','.join(args.only))}" if args.only else ""
    _run([args.name], args, out, f"archzoo lab run {args.name}{only}{flags}")
    return 0


def run_all(args: argparse.Namespace) -> int:
    from archzoo.lab import EXPERIMENTS

    names = EXPERIMENTS.names()
    out, flags = _prepare(args, names)
    _run(names, args, out, f"archzoo lab all{flags}")
    print(f"index: {out / 'index.md'}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from archzoo.lab.report import INDEX, report

    for page in report(args.dir):
        _print_verdicts(args.dir, page.stem, page)
    print(f"index: {args.dir / INDEX}")
    return 0
