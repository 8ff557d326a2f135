"""Running experiments cell by cell, with every finished cell cached on disk.

Layout of an output folder (``--out``), one folder per experiment::

    OUT/index.md                   the index of every experiment in OUT (lab/report.py)
    OUT/NAME.md                    the experiment's page
    OUT/NAME/manifest.json         mode, seeds and the cells the last run asked for
    OUT/NAME/cells/KEY.json        one finished cell: config, seed, result, seconds, load, machine
    OUT/NAME/results.json          verdicts, tables and timing (written with the page)
    OUT/NAME/*.png                 figures
    OUT/NAME/runs/KEY/work/        a cell's scratch folder (a run folder) while it computes

A cell whose JSON exists is never computed again: an interrupted run resumes at the first missing
cell, and a rerun with more seeds computes only the new seeds. Cells are written atomically, so an
interruption leaves a cell either finished or absent; its scratch folder is started afresh, except in an
experiment whose cells are ``resumable`` (hours-long trainings): there the interrupted cell's trainings
continue from their last checkpoints, exactly as an uninterrupted run (training/trainer.py).

With ``jobs`` > 1 the missing cells are computed by that many worker processes at once (each cell is
seeded on its own, so its result does not depend on which worker runs it or when); a cell whose
experiment says it ``runs_alone`` (it times something for a verdict) is computed first, with no
other cell beside it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text, ensure_writable_dir
from archzoo.lab.base import EXPERIMENTS, Cell, CellResult, Experiment

SCRATCH_MARK = ".archzoo-lab-cell"  # a scratch folder holds this, so only the lab's own folders are removed


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages (processes wanting a CPU); [] where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def experiment_dir(out_dir: Path, name: str) -> Path:
    return out_dir / name


def cell_path(out_dir: Path, name: str, cell: Cell) -> Path:
    return experiment_dir(out_dir, name) / "cells" / f"{cell.key}.json"


def read_cell(path: Path) -> CellResult | None:
    """A cached cell, or None when it is absent or unreadable (then it is computed again)."""
    try:
        data = json.loads(path.read_text())
        return CellResult(Cell.from_dict(data["cell"]), data["result"], float(data["wall_seconds"]), data.get("meta", {}))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fresh_scratch(path: Path) -> Path:
    """A scratch folder for a cell, marked as the lab's, and the new, empty folder inside it where the cell
    works (a run folder for the trainer); a leftover of an interrupted cell is removed first."""
    if path.exists():
        if not (path / SCRATCH_MARK).is_file():
            raise UserError(f"{path} exists and was not made by archzoo lab; move it away or choose another --out")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / SCRATCH_MARK).write_text("scratch folder of one lab cell; removed when the cell finishes\n")
    (path / "work").mkdir()
    return path / "work"


def interrupted_scratch(path: Path) -> Path | None:
    """The work folder an interrupted cell left in its scratch folder ``path``, or None."""
    work = path / "work"
    return work if (path / SCRATCH_MARK).is_file() and work.is_dir() and any(work.iterdir()) else None


def compute_cell(exp: Experiment, cell: Cell, out_dir: Path, data_dir: str | Path | None,
                 keep_runs: bool) -> CellResult:
    """Compute one cell in a fresh scratch folder (or, for a resumable experiment, in the one an interrupted
    attempt left) and cache its result atomically."""
    from archzoo.benchmarks.base import machine

    scratch = experiment_dir(out_dir, exp.name) / "runs" / cell.key
    work_dir = interrupted_scratch(scratch) if exp.resumable else None
    resumed = work_dir is not None
    if work_dir is None:
        work_dir = fresh_scratch(scratch)
    load_before, started = load_average(), now()
    start = time.perf_counter()
    result = exp.run_cell(cell, work_dir, data_dir)
    seconds = time.perf_counter() - start
    meta = {"started": started, "finished": now(), "load_before": load_before, "load_after": load_average(),
            "machine": machine(), "torch": torch.__version__, "version": exp.version}
    if resumed:  # wall_seconds and started cover the last attempt only
        meta["resumed"] = True
    record = CellResult(cell, result, seconds, meta)
    atomic_write_text(cell_path(out_dir, exp.name, cell),
                      json.dumps({"experiment": exp.name, "cell": cell.to_dict(), "result": result,
                                  "wall_seconds": round(seconds, 3), "meta": meta}, indent=1) + "\n")
    if not keep_runs:
        shutil.rmtree(scratch)
    return record


def resolve_seeds(exp: Experiment, seeds: int | None, quick: bool) -> list[int]:
    """Seeds 0..N-1: ``seeds`` if given, else the experiment's default for the mode; [0] when unseeded."""
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    if not exp.seeded:
        return [0]
    return list(range(seeds or (exp.quick_seeds if quick else exp.default_seeds)))


def run_experiment(name: str, out_dir: Path, *, quick: bool = False, seeds: int | None = None,
                   data_dir: str | Path | None = None, progress: bool = True, keep_runs: bool = False,
                   command: str = "", jobs: int = 1, only: Sequence[str] | None = None,
                   on_cell: Callable[[CellResult, bool], None] | None = None) -> Path:
    """Compute every missing cell of experiment ``name`` into ``out_dir`` (``jobs`` cells at a time), then
    write its page.

    ``only`` names cell labels (as the page lists them): then only the missing cells with those labels are
    computed, and the page lists the others that are still missing, so a run too long for one sitting can be
    split into parts (on several machines or days) whose cached cells add up. ``on_cell(result, reused)`` is
    called after each cell. Returns the page's path.
    """
    from tqdm import tqdm

    from archzoo.lab.report import write_page

    if jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    exp = EXPERIMENTS.get(name)
    seed_list = resolve_seeds(exp, seeds, quick)
    folder = ensure_writable_dir(experiment_dir(out_dir, name) / "cells", "choose another --out").parent
    cells = exp.cells(quick, seed_list)
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError(f"experiment {name} lists a cell twice")
    labels = list(dict.fromkeys(c.label for c in cells))
    unknown = [label for label in only or () if label not in labels]
    if unknown:
        raise UserError(f"--only {','.join(unknown)}: experiment {name} has no such cell label; its labels are "
                        f"{', '.join(labels)}")
    manifest = {"experiment": name, "title": exp.title, "version": exp.version, "mode": "quick" if quick else "full",
                "seeds": seed_list, "command": command, "started": now(), "torch_threads": torch.get_num_threads(),
                "jobs": jobs, "cells": [c.to_dict() for c in cells]}
    atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    bar = tqdm(total=len(cells), desc=name, unit="cell", disable=not (progress and sys.stderr.isatty()),
               dynamic_ncols=True)
    missing = []
    for cell in cells:
        cached = read_cell(cell_path(out_dir, name, cell))
        if cached is not None and cached.meta.get("version", 1) == exp.version:
            bar.update()
            if on_cell is not None:
                on_cell(cached, True)
        elif not only or cell.label in only:
            missing.append(cell)
    for record in compute_cells(exp, missing, out_dir, data_dir, keep_runs, jobs,
                                lambda text: bar.set_postfix_str(text, refresh=True)):
        bar.update()
        if on_cell is not None:
            on_cell(record, False)
    bar.close()
    runs = folder / "runs"
    if runs.is_dir() and not any(runs.iterdir()):
        runs.rmdir()
    return write_page(out_dir, name)


_STOP: Any = None  # in a pool worker: the run's stop event, set once a cell fails or the run is interrupted


def _start_worker(threads: int, stop: Any) -> None:
    global _STOP
    torch.set_num_threads(threads)
    _STOP = stop


def _compute_in_worker(exp: Experiment, cell: Cell, out_dir: Path, data_dir: str | Path | None,
                       keep_runs: bool) -> CellResult:
    """compute_cell in a pool worker. A cell queued behind a failed or interrupted one does not start: the pool
    hands a worker its next cell before the main process hears of the failure, and an hours-long cell
    started then would hold up the stop for hours."""
    if _STOP.is_set():
        raise KeyboardInterrupt("the lab run stopped before this cell started")
    try:
        return compute_cell(exp, cell, out_dir, data_dir, keep_runs)
    except BaseException:
        _STOP.set()
        raise


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a scheduler's or container's stop) raises KeyboardInterrupt here, as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def compute_cells(exp: Experiment, cells: list[Cell], out_dir: Path, data_dir: str | Path | None, keep_runs: bool,
                  jobs: int, show: Callable[[str], None]) -> Iterator[CellResult]:
    """Compute ``cells``, yielding each record as it finishes: in order in this process when ``jobs`` is 1
    (or one cell is left); else the cells that run alone first, here, then the rest in ``jobs`` worker
    processes with this process's torch threads each, in the order they finish. ``show`` receives what is
    running. When a cell fails, no further cell starts and the cells already running finish (and are cached)
    before the error rises. When this process is stopped (Ctrl-C, SIGTERM), no further cell starts and the
    workers get SIGTERM: a training stops at the end of its step and saves a checkpoint that a rerun of a
    resumable experiment continues from."""
    alone = [c for c in cells if jobs == 1 or exp.runs_alone(c)]
    shared = [c for c in cells if c not in alone]
    if len(shared) == 1:
        alone, shared = cells, []
    for cell in alone:
        show(f"{cell.label} seed {cell.seed}")
        yield compute_cell(exp, cell, out_dir, data_dir, keep_runs)
    if not shared:
        return
    import multiprocessing

    # spawn, not fork: a forked child of a process that has run torch's thread pools can deadlock
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    workers = min(jobs, len(shared))
    show(f"{len(shared)} cells on {workers} workers")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(torch.get_num_threads(), stop)) as pool, sigterm_interrupts():
        futures = [pool.submit(_compute_in_worker, exp, cell, out_dir, data_dir, keep_runs) for cell in shared]
        failed_in_worker = False
        try:
            for future in as_completed(futures):
                failed_in_worker = future.exception() is not None
                yield future.result()
        except BaseException:
            stop.set()
            if not failed_in_worker:  # this process was stopped, the workers perhaps not (a SIGTERM to it alone)
                for worker in multiprocessing.active_children():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGTERM)
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def run_training(data: dict[str, Any], run_dir: Path, data_dir: str | Path | None = None,
                 on_step: Callable[[Any], None] | None = None, prepare: Callable[[Any], None] | None = None,
                 resume: bool = False) -> Any:
    """Train a run config given as a plain dict (task, model, data, train) into ``run_dir`` with the one
    Trainer, quietly; ``prepare(trainer)`` runs once the model is built, before the first step (e.g. loads
    pre-trained weights in place). A Ctrl-C that stopped the trainer is raised again, so no cell is cached
    from an interrupted run. With ``resume`` (a cell of a resumable experiment) a run of the same config
    that an interrupted attempt saved in ``run_dir`` continues from its last checkpoint; anything else
    there is replaced. Returns the trainer's TrainResult."""
    from archzoo.training.checkpoint import latest_checkpoint
    from archzoo.training.config import load_run_config, run_config_from_dict
    from archzoo.training.trainer import Trainer

    if resume and prepare is not None:
        raise ValueError("run_training cannot resume a run that prepare() changes before its first step")
    cfg = run_config_from_dict(data)
    trainer = None
    if resume and latest_checkpoint(run_dir) is not None:
        with contextlib.suppress(UserError):  # a checkpoint of another model: started afresh below
            trainer = Trainer(cfg, run_dir, data_dir=data_dir, progress=False, verbose=False, on_step=on_step,
                              resume=True)
        if trainer is not None and trainer.cfg != load_run_config(run_dir):
            trainer = None  # the recipe changed since the interrupted attempt
    if trainer is None:
        trainer = Trainer(cfg, run_dir, data_dir=data_dir, progress=False, verbose=False, on_step=on_step,
                          overwrite=resume)
    if prepare is not None:
        prepare(trainer)
    result = trainer.fit()
    if result.status == "interrupted":
        raise KeyboardInterrupt
    return result


def interleaved_medians(measure: dict[str, Callable[[], float]], rounds: int) -> dict[str, dict[str, Any]]:
    """Run each measurement once per round, in turn, for ``rounds`` rounds; per name the median and
    every value. Interleaving spreads a change in the machine's load over all names alike."""
    import statistics

    values: dict[str, list[float]] = {k: [] for k in measure}
    for _ in range(rounds):
        for key, fn in measure.items():
            values[key].append(fn())
    return {k: {"median": statistics.median(v), "values": [round(x, 6) for x in v]} for k, v in values.items()}
