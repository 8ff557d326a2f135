"""``archzoo list [models|datasets|presets|tasks|benchmarks]``."""

from __future__ import annotations

import argparse

KINDS = ("models", "datasets", "presets", "tasks", "benchmarks")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered names")
    p.add_argument("kind", nargs="?", choices=KINDS, default="models")
    p.add_argument("pattern", nargs="?", default="*", help="glob filter, e.g. 'mnist*'")
    p.set_defaults(run=run)


def names(kind: str, pattern: str = "*") -> list[str]:
    import fnmatch

    if kind == "models":
        from archzoo.models import list_models
        return list_models(pattern)
    if kind == "datasets":
        from archzoo.data import DATASETS
        return DATASETS.names(pattern)
    if kind == "tasks":
        from archzoo.tasks import TASKS
        return TASKS.names(pattern)
    if kind == "benchmarks":
        from archzoo.benchmarks import BENCHMARKS
        return BENCHMARKS.names(pattern)
    from archzoo.training.config import list_presets
    return [p for p in list_presets() if fnmatch.fnmatch(p, pattern)]


def run(args: argparse.Namespace) -> int:
    if args.kind == "presets":  # a preset is chosen by what it does: name and description
        from archzoo.api import list_presets

        for name, description in list_presets(args.pattern).items():
            print(f"{name}\t{description}")
        return 0
    for name in names(args.kind, args.pattern):
        print(name)
    return 0
