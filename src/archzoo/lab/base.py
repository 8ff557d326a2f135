"""The claims lab's contract: an experiment quotes its claims, lists its cells, computes one cell, and
decides each claim by a rule fixed in code before anything runs.

A *cell* is one (configuration, seed) pair: the unit that is computed, cached on disk and reused
(lab/runner.py). An experiment never sees the cache; it only maps a cell to a JSON-able result
record and, once every cell has one, turns the records into tables, figures and verdicts
(lab/report.py writes them as a page).
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from archzoo.registry import Registry

# "not measured": the measurement could not be made here (no GPU, or a grid off the compared protocol);
# the reason says why, and the page never turns it into a verdict on the claim
OUTCOMES = ("supported", "refuted", "depends", "not measured")


@dataclass(frozen=True)
class Claim:
    """A claim as the literature states it, and the rule that will decide it.

    ``rule`` is written in words before any cell runs; the experiment's ``decide`` implements
    exactly that rule, and the page prints both.
    """

    key: str
    statement: str  # the claim, quoted
    source: str  # who makes it: authors, year, title, arXiv id, section
    rule: str  # supported if ...; refuted if ...; depends otherwise


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim's rule and the numbers that decided it."""

    claim: str  # Claim.key
    outcome: str  # one of OUTCOMES
    numbers: dict[str, Any]
    reason: str  # which clause of the rule fired, in one sentence

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"verdict outcome must be one of {OUTCOMES}, got {self.outcome!r}")


@dataclass(frozen=True)
class Cell:
    """One (configuration, seed) pair. ``config`` holds everything that decides the result except the
    seed (model, sizes, steps, mode), so two cells with equal config and seed compute the same thing."""

    config: dict[str, Any]
    seed: int
    label: str = ""  # short and readable, for progress bars and tables

    @property
    def key(self) -> str:
        """A file-name-safe identifier: readable config values, a hash of the whole config, the seed."""
        text = json.dumps(self.config, sort_keys=True)
        readable = re.sub(r"[^A-Za-z0-9.=]+", "_", "-".join(f"{v}" for v in self.config.values()))[:60].strip("_")
        return f"{readable}-{hashlib.sha1(text.encode()).hexdigest()[:8]}-seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "seed": self.seed, "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        return cls(dict(data["config"]), int(data["seed"]), str(data.get("label", "")))


@dataclass
class CellResult:
    """A finished cell: its result record and how it was computed (seconds, load, date)."""

    cell: Cell
    result: dict[str, Any]
    wall_seconds: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return self.cell.config

    @property
    def seed(self) -> int:
        return self.cell.seed


@dataclass(frozen=True)
class Table:
    """A Markdown table of the page; cells are preformatted strings."""

    title: str
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    path: Path  # a PNG the experiment wrote into its folder
    caption: str


class Experiment:
    """Base of every lab experiment; subclasses are registered with ``@register_experiment``.

    ``cells`` decides the grid (fewer lengths and shorter runs with ``quick``, the same code);
    ``run_cell`` computes one cell into a fresh, empty ``work_dir`` (for a ``resumable`` experiment, the
    one an interrupted attempt at the cell left) and returns its record;
    ``tables``, ``figures`` and ``decide`` read the records of every cell. ``decide`` returns one
    Verdict per claim, in the order of ``claims``.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    claims: ClassVar[tuple[Claim, ...]]
    seeded: ClassVar[bool] = True  # False: the result does not depend on a seed (counts, timings); one seed
    default_seeds: ClassVar[int] = 3
    quick_seeds: ClassVar[int] = 3  # seeds of --quick when --seeds is not given (1 where 3 would not fit in minutes)
    version: ClassVar[int] = 1  # bumped when run_cell computes something else: old cells are not reused
    full_minutes: ClassVar[str] = ""  # wall time of the full mode, measured or marked estimated; page and `lab list`
    # True where each cell's trainings are plain runs of run_training(resume=True) (no hook that gathers
    # results): an interrupted cell keeps its scratch folder and its trainings continue from their last
    # checkpoints instead of starting again
    resumable: ClassVar[bool] = False

    def setup(self, quick: bool) -> str:
        """The setup in Markdown: data, models and sizes, training, what is measured."""
        raise NotImplementedError

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        raise NotImplementedError

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        raise NotImplementedError

    def runs_alone(self, cell: Cell) -> bool:
        """True for a cell that times something a verdict reads: ``--jobs`` computes it with no other cell
        running beside it."""
        return False

    def tables(self, results: list[CellResult]) -> list[Table]:
        raise NotImplementedError

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        raise NotImplementedError

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        raise NotImplementedError


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def register_experiment(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: register one instance of the experiment under its ``name``."""
    EXPERIMENTS.add(cls.name, cls())
    return cls


# -- helpers the experiments share ----------------------------------------------------------------

def count_parameters(module: Any) -> int:
    """Trainable and frozen parameters of a module (a tied weight counts once)."""
    return sum(p.numel() for p in module.parameters())


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


def std(values: Sequence[float]) -> float:
    """Sample standard deviation over seeds (0 for a single seed)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def mean_std(values: Sequence[float], digits: int = 3, scale: float = 1.0, signed: bool = False) -> str:
    """'mean ± std' over seeds, e.g. '0.812 ± 0.021'; a single value without the ±. ``signed`` writes the
    mean's sign always ('+4.6 ± 0.3'), for differences."""
    vals = [v * scale for v in values]
    if not vals:
        return "—"
    m = f"{mean(vals):{'+' if signed else ''}.{digits}f}"
    return m if len(vals) == 1 else f"{m} ± {std(vals):.{digits}f}"


def trained_precision(r: CellResult) -> str:
    """The precision a cell's training ran in: what its result recorded (``TrainResult.precision``), else the
    precision its config named when that was not ``auto`` (cells from before results recorded it), else
    "not recorded"."""
    named = r.config.get("precision", "auto")
    return r.result.get("precision") or (named if named != "auto" else "not recorded")


def group(results: list[CellResult], *keys: str) -> dict[tuple[Any, ...], list[CellResult]]:
    """Results grouped by the values of ``keys`` in their configs, in first-seen order."""
    out: dict[tuple[Any, ...], list[CellResult]] = {}
    for r in results:
        out.setdefault(tuple(r.config[k] for k in keys), []).append(r)
    return out
