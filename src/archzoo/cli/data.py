"""``archzoo data list|info|verify|fetch|import``: the dataset catalogue and the user's data dir."""

from __future__ import annotations

import argparse

from archzoo.cli.common import add_data_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, inspect, verify, download or import datasets")
    add_data_dir(p, create=True)
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    actions.add_parser("list", help="every dataset and where it was found").set_defaults(run=run_list)
    a = actions.add_parser("info", help="files, checksums, license and split of a dataset")
    a.add_argument("name")
    a.set_defaults(run=run_info)
    a = actions.add_parser("verify", help="check the sha256 of every file found")
    a.add_argument("names", nargs="*", help="datasets (default: all that are present)")
    a.set_defaults(run=run_verify)
    a = actions.add_parser("fetch", help="download a dataset with checksum verification and resume")
    a.add_argument("name")
    a.add_argument("--mirror", help="base URL laid out like the data dir (<mirror>/<folder>/<file>)")
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(run=run_fetch)
    a = actions.add_parser("import", help="verify files you already have and copy them into the data dir")
    a.add_argument("name")
    a.add_argument("files", nargs="+")
    a.set_defaults(run=run_import)
    # --data-dir is accepted after the action too (`archzoo data fetch mnist --data-dir D`); SUPPRESS
    # keeps an absent one from overwriting the value given before the action
    for name, action in actions.choices.items():
        add_data_dir(action, create=name in ("fetch", "import"), default=argparse.SUPPRESS)


def _status(spec, data_dir) -> str:  # noqa: ANN001
    from archzoo.data.sources import find_file

    paths = [find_file(spec, f.name, data_dir) for f in spec.files]
    if all(paths):
        folders = sorted({str(p.parent) for p in paths})
        return "present in " + ", ".join(folders)
    return f"missing {sum(p is None for p in paths)} of {len(paths)} files"


def run_list(args: argparse.Namespace) -> int:
    from archzoo.data import DATASETS

    for name in DATASETS.names():
        spec = DATASETS.get(name)
        print(f"{name}\t{spec.description}\t{_status(spec, args.data_dir)}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from archzoo.data import DATASETS
    from archzoo.data.sources import find_file

    spec = DATASETS.get(args.name)
    print(f"{spec.name}: {spec.description}")
    print(f"license: {spec.license}")
    print(f"citation: {spec.citation}")
    for split, text in spec.splits.items():
        print(f"split {split}: {text}")
    for f in spec.files:
        where = find_file(spec, f.name, args.data_dir)
        print(f"file {f.name}\t{f.size:,} bytes\tsha256 {f.sha256}\t{where or 'not found'}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from archzoo.data import DATASETS
    from archzoo.data.sources import find_file, verify_file
    from archzoo.errors import UserError

    names = args.names or DATASETS.names()
    bad = checked = 0
    for name in names:
        spec = DATASETS.get(name)
        for f in spec.files:
            path = find_file(spec, f.name, args.data_dir)
            if path is None:
                if args.names:
                    print(f"MISSING {name}/{f.name}")
                    bad += 1
                continue
            checked += 1
            try:
                verify_file(f, path)
                print(f"OK      {path}")
            except UserError as e:
                print(f"BAD     {path}: {e}")
                bad += 1
    if bad:
        raise UserError(f"{bad} file(s) missing or failed verification; fetch them with `archzoo data fetch NAME`")
    if not checked:
        print("no dataset files found; get some with `archzoo data fetch NAME` or `archzoo data import NAME FILE...`")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from archzoo.data import DATASETS
    from archzoo.data.sources import fetch

    dest = fetch(DATASETS.get(args.name), args.data_dir, args.mirror, progress=not args.no_progress)
    print(f"{args.name}: all files present and verified in {dest}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from archzoo.data import DATASETS
    from archzoo.data.sources import import_files

    for path in import_files(DATASETS.get(args.name), args.files, args.data_dir):
        print(f"imported {path}")
    return 0
