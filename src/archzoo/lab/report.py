"""Pages: one Markdown page per experiment (claims, verdicts, setup, tables, figures, wall time,
machine) beside its raw JSON, and an index of every experiment in the output folder.

Pages are written from the cached cells alone, so ``archzoo lab report DIR`` rebuilds them at any
time; an experiment whose cells are not all finished gets a page that says which are missing and
no verdict.
"""

from __future__ import annotations

import collections
import json
import statistics
from pathlib import Path
from typing import Any

from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.lab.base import EXPERIMENTS, Cell, CellResult, Experiment, Verdict
from archzoo.lab.runner import cell_path, experiment_dir, read_cell

INDEX = "index.md"


def read_manifest(out_dir: Path, name: str) -> dict[str, Any]:
    path = experiment_dir(out_dir, name) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not isinstance(manifest.get("cells"), list):
            raise ValueError("no cell list")
        return manifest
    except FileNotFoundError:
        raise UserError(f"{out_dir} holds no results of experiment {name} (no {path.name}); run "
                        f"`archzoo lab run {name} --out {out_dir}` first") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is unreadable ({e}); rerun `archzoo lab run {name} --out {out_dir}`") from None


def collect(out_dir: Path, name: str) -> tuple[dict[str, Any], list[CellResult], list[Cell]]:
    """The manifest, the finished cells it lists (current version only) and the missing ones."""
    exp = EXPERIMENTS.get(name)
    manifest = read_manifest(out_dir, name)
    done, missing = [], []
    for entry in manifest["cells"]:
        cell = Cell.from_dict(entry)
        record = read_cell(cell_path(out_dir, name, cell))
        if record is None or record.meta.get("version", 1) != exp.version:
            missing.append(cell)
        else:
            done.append(record)
    return manifest, done, missing


def experiments_in(out_dir: Path) -> list[str]:
    """Registered experiments with a manifest in ``out_dir``, in registry order."""
    return [n for n in EXPERIMENTS.names() if (experiment_dir(out_dir, n) / "manifest.json").is_file()]


def _markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _format_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_format_number(v) for v in value) + "]"
    return str(value)


def timing(results: list[CellResult]) -> dict[str, Any]:
    """Compute seconds and the machine's load while the cells ran (1-minute load averages)."""
    loads = [x for r in results for x in (r.meta.get("load_before", [None])[:1] + r.meta.get("load_after", [None])[:1])
             if x is not None]
    starts = sorted(r.meta["started"] for r in results if "started" in r.meta)
    ends = sorted(r.meta["finished"] for r in results if "finished" in r.meta)
    return {"compute_seconds": round(sum(r.wall_seconds for r in results), 1), "cells": len(results),
            "load_1min": {"min": min(loads), "median": round(statistics.median(loads), 2), "max": max(loads)} if loads else {},
            "first_started": starts[0] if starts else None, "last_finished": ends[-1] if ends else None,
            "machine": results[0].meta.get("machine", {}) if results else {},
            "machines": dict(collections.Counter(describe_machine(r.meta.get("machine", {})) for r in results)),
            "resumed_cells": sum(bool(r.meta.get("resumed")) for r in results),
            "torch": results[0].meta.get("torch", "") if results else ""}


def describe_machine(machine: dict[str, Any]) -> str:
    """CPU, its vector unit where recorded (AVX2 vs AVX-512 with native bf16 changes timings severalfold),
    cores and torch threads."""
    unit = ""
    if "cpu_capability" in machine:
        unit = f" ({machine['cpu_capability']}, {'native' if machine.get('native_bf16') else 'no native'} bf16)"
    return (f"{machine.get('cpu', '?')}{unit}, {machine.get('cores', '?')} cores, "
            f"{machine.get('torch_threads', '?')} torch thread(s)")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def verdict_line(verdict: Verdict | None) -> str:
    return "**incomplete**" if verdict is None else f"**{verdict.outcome}**"


def write_page(out_dir: Path, name: str) -> Path:
    """Write ``OUT/NAME.md`` and ``OUT/NAME/results.json`` from the cached cells, then the index."""
    exp = EXPERIMENTS.get(name)
    manifest, results, missing = collect(out_dir, name)
    folder = experiment_dir(out_dir, name)
    quick = manifest.get("mode") == "quick"
    complete = not missing and bool(results)
    verdicts: list[Verdict | None] = list(exp.decide(results)) if complete else [None] * len(exp.claims)
    tables = exp.tables(results) if complete else []
    figures = exp.figures(results, folder) if complete else []
    times = timing(results)
    lines = [f"# {exp.title}", "", f"Experiment `{name}` ({manifest.get('mode', 'full')} mode, seeds "
             f"{', '.join(str(s) for s in manifest.get('seeds', []))}). [Index](index.md)", ""]
    seeds = manifest.get("seeds", [])
    if not quick and exp.seeded and len(seeds) < exp.default_seeds:
        lines += [f"**{len(seeds)} of the experiment's {exp.default_seeds} seeds**: the full grid, computed with "
                  f"`--seeds {len(seeds)}`; a rule that reads every seed or most seeds reads only these, so run-to-run "
                  f"variance is not measured here.", ""]
    if quick:
        lines += [f"**Quick mode**: the verdicts below apply the rules to the `--quick` grid (fewer lengths, shorter "
                  f"runs, fewer seeds); they are not the full-mode verdicts (`archzoo lab run {name}`).", ""]
    for claim, verdict in zip(exp.claims, verdicts, strict=True):
        lines += [f"## Claim: {claim.key}", "", f"> {claim.statement}", ">", f"> — {claim.source}", "",
                  f"**Verdict: {verdict.outcome if verdict else 'incomplete'}.** "
                  + (verdict.reason if verdict else f"{len(missing)} of {len(manifest['cells'])} cells are not "
                     f"computed yet; rerun `archzoo lab run {name} --out {out_dir}` to finish them."), "",
                  f"Rule (fixed before the run): {claim.rule}", ""]
        if verdict:
            lines += ["Deciding numbers: " + "; ".join(f"{k} = {_format_number(v)}" for k, v in verdict.numbers.items()),
                      ""]
    lines += ["## Setup", "", exp.setup(quick), ""]
    for table in tables:
        lines += [f"### {table.title}", "", _markdown_table(table.headers, table.rows), ""]
    for fig in figures:
        lines += [f"![{fig.caption}]({name}/{fig.path.name})", "", f"*{fig.caption}*", ""]
    machine = times["machine"]
    lines += ["## Wall time and machine", "",
              f"- compute time of the {times['cells']} cells: {_duration(times['compute_seconds'])} "
              f"({manifest.get('mode', 'full')} mode)" + (f"; full mode: {exp.full_minutes}"
                                                          if exp.full_minutes else ""),
              f"- machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, torch "
              f"{times['torch']} on {machine.get('torch_threads', '?')} thread(s)"]
    if len(times["machines"]) > 1:  # the cells of a run split over machines (--only) name each
        lines += [f"  - {count} cell(s) on {what}" for what, count in times["machines"].items()]
    if times["resumed_cells"]:
        lines.append(f"- {times['resumed_cells']} cell(s) continued a training that an interruption stopped; their "
                     f"time counts the last attempt only")
    if times["load_1min"]:
        load = times["load_1min"]
        lines.append(f"- machine load (1-minute load average at the cells' starts and ends): median {load['median']}, "
                     f"range {load['min']}–{load['max']}; other processes shared the CPU, so wall times are upper bounds")
    if times["first_started"]:
        lines.append(f"- computed between {times['first_started']} and {times['last_finished']} (UTC)")
    lines += [f"- command: `{manifest.get('command') or 'archzoo lab run ' + name}`",
              f"- raw data: [`{name}/results.json`]({name}/results.json) (verdicts, tables, timing) and one JSON per "
              f"(configuration, seed) in [`{name}/cells/`]({name}/cells/)", ""]
    if missing:
        lines += [f"Missing cells ({len(missing)}): " + ", ".join(f"{c.label} seed {c.seed}" for c in missing[:20])
                  + (" ..." if len(missing) > 20 else ""), ""]
    page = out_dir / f"{name}.md"
    atomic_write_text(page, "\n".join(lines))
    summary = {"experiment": name, "title": exp.title, "mode": manifest.get("mode"), "seeds": manifest.get("seeds"),
               "complete": complete, "missing_cells": len(missing),
               "claims": [{"key": c.key, "statement": c.statement, "source": c.source, "rule": c.rule,
                           "verdict": None if v is None else {"outcome": v.outcome, "reason": v.reason,
                                                              "numbers": v.numbers}}
                          for c, v in zip(exp.claims, verdicts, strict=True)],
               "tables": [{"title": t.title, "headers": t.headers, "rows": t.rows} for t in tables],
               "timing": times, "command": manifest.get("command", ""),
               "cells": [{"key": r.cell.key, **r.cell.to_dict(), "wall_seconds": r.wall_seconds} for r in results]}
    atomic_write_text(folder / "results.json", json.dumps(summary, indent=1) + "\n")
    write_index(out_dir)
    return page


def write_index(out_dir: Path) -> Path:
    """``OUT/index.md``: every experiment in the folder with its verdicts and wall time."""
    rows, counts = [], {"supported": 0, "refuted": 0, "depends": 0, "not measured": 0, "incomplete": 0}
    for name in experiments_in(out_dir):
        exp: Experiment = EXPERIMENTS.get(name)
        try:
            summary = json.loads((experiment_dir(out_dir, name) / "results.json").read_text())
        except (OSError, ValueError):
            manifest = read_manifest(out_dir, name)
            summary = {"claims": [{"key": c.key, "verdict": None} for c in exp.claims], "timing": {},
                       "mode": manifest.get("mode"), "seeds": manifest.get("seeds")}
        seeds = summary.get("seeds") or []
        mode = f"{summary.get('mode')}, {len(seeds)} seed{'s' if len(seeds) != 1 else ''}" if exp.seeded else \
            f"{summary.get('mode')}, unseeded"
        for claim in summary["claims"]:
            outcome = claim["verdict"]["outcome"] if claim.get("verdict") else "incomplete"
            counts[outcome] += 1
            rows.append([f"[{name}]({name}.md)", claim["key"], f"**{outcome}**",
                         _duration(summary["timing"].get("compute_seconds", 0)), mode])
    lines = ["# archzoo claims lab", "",
             "Each claim the articles make about sequence models, CNNs and training techniques, measured: an experiment "
             "per page with the claim "
             "quoted, the rule that decides it (fixed in code before the run), tables of mean ± std over seeds, "
             "figures and the raw JSON. Rebuild these pages with `archzoo lab report DIR`; recompute with "
             "`archzoo lab all`.", "",
             "The mode column says how each page was computed: *full* is the experiment's whole grid (`archzoo lab "
             "run NAME`); *quick* (`--quick`) is the smaller grid of fewer lengths, shorter runs and usually one seed, "
             "and its verdict is the rule applied to that smaller grid only, never the full-mode verdict.", "",
             f"Claims: {counts['supported']} supported, {counts['refuted']} refuted, {counts['depends']} depends"
             + (f", {counts['not measured']} not measured (no measurement was possible here: the page says why)"
                if counts["not measured"] else "")
             + (f", {counts['incomplete']} incomplete" if counts["incomplete"] else "") + ".", "",
             _markdown_table(["experiment", "claim", "verdict", "compute time", "mode"], rows), ""]
    path = out_dir / INDEX
    atomic_write_text(path, "\n".join(lines))
    return path


def report(out_dir: Path) -> list[Path]:
    """Rebuild the page of every experiment found in ``out_dir`` and the index."""
    if not out_dir.is_dir():
        raise UserError(f"{out_dir} is not a folder; give the --out folder of `archzoo lab run` or `lab all`")
    names = experiments_in(out_dir)
    if not names:
        raise UserError(f"{out_dir} holds no lab results (no EXPERIMENT/manifest.json); run "
                        f"`archzoo lab run NAME --out {out_dir}` or `archzoo lab all --out {out_dir}` first")
    return [write_page(out_dir, n) for n in names]
