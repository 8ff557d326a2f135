"""A tiny fake experiment for the lab framework tests (registered by the ``fake_experiment`` fixture)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archzoo.lab.base import Cell, CellResult, Claim, Experiment, Figure, Table, Verdict, mean_std
from archzoo.lab.runner import SCRATCH_MARK, run_training
from archzoo.lab.vision import classification_run


class FakeExperiment(Experiment):
    """Scores 10 x size + seed (or the reverse with ``invert``); the claim: a bigger size scores higher in
    every seed."""

    name = "fake-bigger-is-better"
    title = "Is bigger better? (a test experiment)"
    claims = (Claim("bigger-wins", "Bigger is better.", "Nobody 2024, \"On Size\", Sec. 1.",
                    "supported if size 2 scores above size 1 in every seed; refuted if below in every seed; depends "
                    "otherwise."),)
    default_seeds = 2

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.interrupt_at: tuple[int, int] | None = None
        self.invert = False
        self.alone_sizes: set[int] = set()  # cells of these sizes say they run alone (as timing cells do)
        self.seconds: dict[int, float] = {}  # cells of these sizes take this long

    def setup(self, quick: bool) -> str:
        return f"Two sizes, {'quick' if quick else 'full'} mode."

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"size": size, "quick": quick}, seed, f"size {size}") for seed in seeds for size in (1, 2)]

    def runs_alone(self, cell: Cell) -> bool:
        return cell.config.get("size") in self.alone_sizes

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        # every cell starts in a new, empty folder inside the lab's marked scratch folder
        assert list(work_dir.iterdir()) == [] and (work_dir.parent / SCRATCH_MARK).is_file()
        (work_dir / "checkpoint.bin").write_bytes(b"partial work")
        key = (cell.config["size"], cell.seed)
        if key == self.interrupt_at:
            raise KeyboardInterrupt
        time.sleep(self.seconds.get(key[0], 0.0))
        self.calls.append(key)
        size = -cell.config["size"] if self.invert else cell.config["size"]
        return {"score": 10 * size + cell.seed}

    def _scores(self, results: list[CellResult]) -> dict[int, dict[int, float]]:
        out: dict[int, dict[int, float]] = {}
        for r in results:
            out.setdefault(r.config["size"], {})[r.seed] = r.result["score"]
        return out

    def tables(self, results: list[CellResult]) -> list[Table]:
        scores = self._scores(results)
        return [Table("Scores", ["size", "score"], [[str(s), mean_std(list(v.values()), 1)] for s, v in scores.items()])]

    def figures(self, results: list[CellResult], out_dir: Path) -> list[Figure]:
        from archzoo.viz.plots import Panel, plot_panels

        scores = self._scores(results)
        sizes = sorted(scores)
        path = plot_panels([Panel("score", "size", "score", {"mean": (sizes, [sum(scores[s].values()) / len(scores[s])
                                                                             for s in sizes], None)})],
                           out_dir / "scores.png")
        return [Figure(path, "Score against size.")]

    def decide(self, results: list[CellResult]) -> list[Verdict]:
        scores = self._scores(results)
        wins = [scores[2][seed] > scores[1][seed] for seed in scores[1]]
        numbers = {"size_2_wins": f"{sum(wins)}/{len(wins)}"}
        if all(wins):
            return [Verdict("bigger-wins", "supported", numbers, "size 2 wins in every seed.")]
        if not any(wins):
            return [Verdict("bigger-wins", "refuted", numbers, "size 1 wins in every seed.")]
        return [Verdict("bigger-wins", "depends", numbers, "the winner depends on the seed.")]


class FakeTrainingExperiment(FakeExperiment):
    """A resumable experiment whose one cell per seed is a seconds-long training on the built-in MNIST subset
    (test accuracy and loss are the record); ``stop_at`` interrupts the training at that step as Ctrl-C does,
    ``steps`` is the recipe's length."""

    name = "fake-resumable-training"
    resumable = True

    def __init__(self) -> None:
        super().__init__()
        self.stop_at: int | None = None
        self.steps = 8
        self.first_steps: list[int] = []  # the step each attempt at a cell started from

    def cells(self, quick: bool, seeds: Sequence[int]) -> list[Cell]:
        return [Cell({"model": "mlp"}, seed, "mlp") for seed in seeds]

    def run_cell(self, cell: Cell, work_dir: Path, data_dir: str | Path | None) -> dict[str, Any]:
        config = classification_run("mnist-small", "mlp", {"hidden_sizes": [32]}, steps=self.steps, seed=cell.seed,
                                    batch_size=64, eval_every_steps=2, precision="fp32")
        config["data"]["val_size"] = 500

        started = False

        def hook(trainer: Any) -> None:
            nonlocal started
            if not started:
                self.first_steps.append(trainer.step - 1)
                started = True
            if trainer.step == self.stop_at:
                trainer.stop_reason = "interrupted"

        result = run_training(config, work_dir, data_dir, on_step=hook, resume=True)
        return {"accuracy": result.test["accuracy"], "loss": result.test["loss"]}

    def _scores(self, results: list[CellResult]) -> dict[int, dict[int, float]]:
        return {1: {r.seed: 0.0 for r in results}, 2: {r.seed: r.result["accuracy"] for r in results}}
