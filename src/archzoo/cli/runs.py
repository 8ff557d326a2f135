"""``archzoo runs [DIR]``: the run folders under DIR (default runs/) with their preset, model, status, best
validation figure, test figure and date, newest first."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list run folders: preset, model, status, best metric, date",
                       description="Status comes from RUN/status.json when the trainer wrote one, else from the files "
                       "(eval.json: finished; weights without a report: interrupted).")
    p.add_argument("folder", nargs="?", type=Path, default=Path("runs"), help="where to look (default runs/)")
    p.set_defaults(run=run)


# status.json's status -> what ``archzoo runs`` shows
FINISHED = {"completed": "finished", "early_stopped": "finished (early stop)", "time_budget": "finished (time budget)",
            "max_steps": "finished (max steps)", "interrupted": "interrupted", "running": "running"}
RECENT_SECONDS = 120  # a run without status.json (older archzoo) whose files changed this recently: running


def run(args: argparse.Namespace) -> int:
    from archzoo.errors import UserError

    if not args.folder.is_dir():
        raise UserError(f"{args.folder} is not a folder; give the folder that holds your runs (default runs/)")
    rows = [run_summary(folder) for folder in find_runs(args.folder)]
    if not rows:
        print(f"no runs under {args.folder}; start one with `archzoo train PRESET`")
        return 0
    rows.sort(key=lambda r: r["date"], reverse=True)
    header = ("run", "preset", "model", "status", "step", "best val", "test", "date")
    keys = ("folder", "preset", "model", "status", "step", "best", "test", "date")
    table = [header] + [tuple(str(r[k]) for k in keys) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def find_runs(root: Path, depth: int = 4) -> list[Path]:
    """Folders under ``root`` (itself included) that hold a config.json, up to ``depth`` levels down."""
    found, level = [], [root]
    for _ in range(depth + 1):
        found += [f for f in level if (f / "config.json").is_file()]
        level = [child for f in level for child in sorted(f.iterdir()) if child.is_dir() and not child.name.startswith(".")]
    return found


def read_json(path: Path) -> object:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_summary(folder: Path) -> dict[str, object]:
    """What ``archzoo runs`` shows of one run folder (nothing is loaded but small JSON files)."""
    import datetime
    import time

    from archzoo.tasks import TASKS
    from archzoo.training.run_folder import is_locked, read_status

    config = read_json(folder / "config.json")
    config = config if isinstance(config, dict) else {}
    model = config.get("model", {}).get("name", "?") if isinstance(config.get("model"), dict) else "?"
    dataset = config.get("data", {}).get("dataset", "?") if isinstance(config.get("data"), dict) else "?"
    task = config.get("task", "classification")
    metric, higher = ("?", True)
    if isinstance(task, str) and task in TASKS:
        metric, higher = TASKS.get(task).primary_metric, TASKS.get(task).higher_is_better
    status_file = read_status(folder)
    report = read_json(folder / "eval.json")
    files = [p for p in folder.iterdir() if p.is_file()]
    newest = max((p.stat().st_mtime for p in files), default=folder.stat().st_mtime)
    if status_file is not None:
        status = FINISHED.get(str(status_file["status"]), str(status_file["status"]))
        if status == "running" and not is_locked(folder):
            status = "interrupted (killed)"  # the training that wrote "running" no longer holds the folder
        step = status_file["step"]
        best = status_file.get("best") or {}
        date = str(status_file.get("updated", ""))[:19].replace("T", " ")
    else:
        records = [r for r in read_jsonl(folder / "metrics.jsonl")]
        vals = [r for r in records if r.get("split") == "val" and isinstance(r.get(metric), int | float)]
        best = (max if higher else min)(vals, key=lambda r: r[metric]) if vals else {}
        step = max((r.get("step", 0) for r in records), default="")
        if isinstance(report, dict):
            status = "finished"
        elif (folder / "model.safetensors").is_file() or records:
            status = "running" if time.time() - newest < RECENT_SECONDS else "interrupted"
        else:
            status = "not started"
        date = ""
    if not date:
        date = datetime.datetime.fromtimestamp(newest).strftime("%Y-%m-%d %H:%M:%S")
    value = best.get(metric) if isinstance(best, dict) else None
    test = report.get(metric) if isinstance(report, dict) else None
    preset = config.get("preset") if isinstance(config.get("preset"), str) and config.get("preset") else "-"
    return {"folder": str(folder), "preset": preset, "model": f"{model} on {dataset}", "status": status, "step": step,
            "best": f"{metric} {value:.4f}" if isinstance(value, int | float) else "-",
            "test": f"{metric} {test:.4f}" if isinstance(test, int | float) else "-", "date": date}


def read_jsonl(path: Path) -> list[dict[str, object]]:
    import json

    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if isinstance(record, dict):
            out.append(record)
    return out
