"""Associative memory: store binarised images in a Hopfield network and recall them from corrupted copies.

The stored patterns are ``num_patterns`` training images drawn with ``pattern_seed``, binarised (pixel >
``threshold`` -> +1, else -1) and flattened. There is nothing to train: the task's ``init_model`` writes
them into the model (``store``), the run folder keeps the memory as weights, and the report scores
recall: each stored pattern with a fraction of its pixels flipped (exactly round(f N), drawn per trial)
or its lower half erased to background, run to a fixed point. A recall counts when fewer than
``tolerance`` (1%) of the bits differ from the original.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.data.images import load_image_split
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.tasks.base import Task, check_count, check_seed, register_task

OCCLUSIONS = ("none", "bottom")


@dataclass(frozen=True)
class AssociativeMemoryConfig:
    dataset: str = "mnist-small"
    num_patterns: int = 10
    pattern_seed: int = 0
    threshold: float = 0.5  # of the pixel in [0, 1]: above is +1 (ink), else -1
    corrupt: float = 0.3  # fraction of flipped pixels in evaluation and the report's grid
    corruptions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)  # the report's recall-against-corruption curve
    trials: int = 5  # corrupted copies of every pattern per level
    tolerance: float = 0.01

    def __post_init__(self) -> None:
        if self.num_patterns < 1 or self.trials < 1 or not 0 < self.threshold < 1:
            raise UserError("data.num_patterns and data.trials must be >= 1 and data.threshold in (0, 1)")
        if not all(0 <= f <= 1 for f in (self.corrupt, *self.corruptions)) or not 0 <= self.tolerance < 1:
            raise UserError("data.corrupt and data.corruptions must lie in [0, 1], data.tolerance in [0, 1)")


@dataclass
class Recall:
    """Stored images recalled step by step (``RecallGrid.recall``): rows (k, N) of the stored patterns
    ``stored`` (their indices ``indices``), the ``cues``, the state after each step (``states``, ±1 for the
    classic network, continuous for the modern one), each state's energy (``energies``: the cue's, then one
    per step; (steps + 1, k)), and ``recalled``, the sign of the last state. ``bit_errors`` are the
    fraction of bits the recall gets wrong, ``nearest`` the stored pattern closest to it (by overlap)."""

    indices: list[int]
    stored: Tensor
    cues: Tensor
    states: list[Tensor]
    energies: Tensor
    recalled: Tensor
    bit_errors: Tensor
    nearest: Tensor
    image_shape: tuple[int, int]


@dataclass
class RecallGrid:
    """The step-by-step recall of ``count`` stored images (``Run.sample``), or of the stored image
    ``pattern`` alone; ``save`` draws it as a PNG, ``recall`` returns the states themselves,
    ``default_file`` names the PNG that the CLI writes into the run folder when no file is given."""

    task: Any
    model: nn.Module
    corrupt: float
    occluded: bool
    seed: int
    count: int
    default_file: str
    notes: list[str] = field(default_factory=list)
    pattern: int | None = None
    streamed = False

    @property
    def indices(self) -> list[int]:
        return list(range(self.count)) if self.pattern is None else [self.pattern]

    def recall(self) -> Recall:
        return self.task.recall_steps(self.model, self.indices, self.corrupt, self.occluded, self.seed)

    def save(self, path: Path) -> Path:
        return self.task.recall_grid(self.model, Path(path), self.corrupt, occluded=self.occluded, seed=self.seed,
                                     count=self.count, indices=self.indices)


def flip(patterns: Tensor, fraction: float, generator: torch.Generator) -> Tensor:
    """Each row with exactly round(fraction x N) of its entries negated, at random positions."""
    count = round(fraction * patterns.shape[1])
    scores = torch.rand(patterns.shape, generator=generator).to(patterns.device)
    chosen = scores.argsort(1)[:, :count]
    return patterns.scatter(1, chosen, -patterns.gather(1, chosen))


def occlude(patterns: Tensor, image_shape: tuple[int, int]) -> Tensor:
    """The lower half of each image set to background (-1): half-occluded cues."""
    h, w = image_shape
    out = patterns.clone().view(-1, h, w)
    out[:, h // 2:] = -1.0
    return out.view(len(patterns), h * w)


@register_task("associative_memory")
class AssociativeMemory(Task):
    Config = AssociativeMemoryConfig
    primary_metric = "recall_accuracy"
    higher_is_better = True
    verbs = ("sample",)
    cfg: AssociativeMemoryConfig

    def __init__(self, cfg: AssociativeMemoryConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        self._patterns: Tensor | None = None
        self.image_shape: tuple[int, int] = (0, 0)
        self._available = 0

    def patterns(self) -> Tensor:
        """The stored patterns (P, N) of ±1, chosen from the training images with ``pattern_seed``."""
        if self._patterns is None:
            images = load_image_split(self.cfg.dataset, "train", self.data_dir).images
            if images.shape[1] != 1:
                raise UserError(f"associative_memory stores greyscale images; {self.cfg.dataset} has {images.shape[1]} "
                                "channels (choose mnist, mnist-small or fashion-mnist)")
            if self.cfg.num_patterns > len(images):
                raise UserError(f"data.num_patterns={self.cfg.num_patterns} exceeds the {len(images)} training images")
            self._available, self.image_shape = len(images), (images.shape[2], images.shape[3])
            chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.cfg.pattern_seed))
            picked = images[chosen[:self.cfg.num_patterns]].float().flatten(1) / 255.0
            self._patterns = torch.where(picked > self.cfg.threshold, 1.0, -1.0)
        return self._patterns

    # -- the trainer contract: nothing to train ---------------------------------------------------
    def model_args(self) -> dict[str, Any]:
        return {"size": self.patterns().shape[1], "num_patterns": self.cfg.num_patterns}

    def init_model(self, model: nn.Module) -> None:
        store = getattr(model, "store", None)
        if store is None:
            raise UserError(f"associative_memory needs a Hopfield model (hopfield, modern_hopfield), not {type(model).__name__}")
        store(self.patterns())

    def num_train_examples(self) -> int:
        self.patterns()
        return self._available

    def has_split(self, name: str) -> bool:
        return name == "test"

    def train_batch(self, indices: Tensor, shard: slice, seed: int) -> tuple[Tensor, ...]:
        raise UserError("associative_memory has nothing to train: its models store the patterns in one shot")

    # -- recall ------------------------------------------------------------------------------------
    @torch.no_grad()
    def recall(self, model: nn.Module, cues: Tensor, targets: Tensor) -> dict[str, float]:
        """Run every cue to a fixed point; recall accuracy (< tolerance bits wrong against its target), mean
        bit error, and how often the final state is nearest (in overlap) to the right stored pattern."""
        final = torch.sign(model(cues.to(model.patterns.device)).float()).cpu()
        errors = (final != targets).float().mean(1)
        nearest = (final @ model.patterns.cpu().T).argmax(1)
        right = (targets[:, None, :] == model.patterns.cpu()[None]).all(2).float().argmax(1)
        return {"recall_accuracy": (errors < self.cfg.tolerance).float().mean().item(),
                "bit_error": errors.mean().item(), "nearest_is_right": (nearest == right).float().mean().item()}

    def corrupted(self, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
        """(cues, targets): ``trials`` flipped copies of every stored pattern."""
        targets = self.patterns().repeat(self.cfg.trials, 1)
        return flip(targets, fraction, torch.Generator().manual_seed(seed)), targets

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        return self.recall(model, *self.corrupted(self.cfg.corrupt, seed=1))

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        lines = [f"{result['model']} storing {result['num_patterns']} {self.cfg.dataset} images: recall accuracy "
                 f"{result['recall_accuracy']:.4f} from {self.cfg.corrupt:.0%} flipped pixels (bit error "
                 f"{result['bit_error']:.4f}); half-occluded: {result['occluded']['recall_accuracy']:.4f}",
                 "recall accuracy by flipped fraction:"]
        return lines + [f"  {float(f):.0%}  {r['recall_accuracy']:.4f}  (bit error {r['bit_error']:.4f})"
                        for f, r in result["by_corruption"].items()]

    @torch.no_grad()
    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        from archzoo.viz.plots import plot_lines

        patterns = self.patterns()
        by_corruption = {str(f): self.recall(model, *self.corrupted(f, seed=1 + i))
                         for i, f in enumerate(self.cfg.corruptions)}
        plot_lines({type(model).__name__: [(float(f), r["recall_accuracy"]) for f, r in by_corruption.items()]},
                   out_dir / "recall_curve.png", "fraction of pixels flipped", "recall accuracy",
                   f"recall of {len(patterns)} stored {self.cfg.dataset} images")
        self.recall_grid(model, out_dir / "recall.png", self.cfg.corrupt, occluded=False, seed=0)
        result = {
            "split": "test", "model": type(model).__name__, "num_patterns": len(patterns), "corrupt": self.cfg.corrupt,
            **self.recall(model, *self.corrupted(self.cfg.corrupt, seed=1)),
            "by_corruption": by_corruption, "occluded": self.recall(model, occlude(patterns, self.image_shape), patterns),
        }
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        return result

    def sample(self, model: nn.Module, corrupt: float | None = None, occlude: bool | None = None, n: int = 8,
               seed: int = 0, pattern: int | None = None) -> RecallGrid:
        """The recall of the first ``n`` stored images (all, if fewer), or of stored image number ``pattern``
        alone, from cues with ``corrupt`` of their pixels flipped (or, with ``occlude``, their lower half
        erased), step by step: ``archzoo sample RUN --corrupt 0.3``."""
        if corrupt is None and not occlude:
            raise UserError("a Hopfield run samples recalls: say how to corrupt the stored images, e.g. --corrupt 0.3 "
                            "(flip 30% of the pixels) or --occlude (erase the lower half)")
        if corrupt is not None and occlude:
            raise UserError("give --corrupt or --occlude, not both")
        if corrupt is not None and (isinstance(corrupt, bool) or not isinstance(corrupt, (int, float))
                                    or not 0 <= corrupt <= 1):
            raise UserError(f"--corrupt is the fraction of pixels to flip, in [0, 1]; got {corrupt}")
        stored = len(self.patterns())
        n = min(check_count("-n", n, 1, 1 << 24, "draw fewer"), stored)  # at most every stored image
        if pattern is not None:
            if isinstance(pattern, bool) or not isinstance(pattern, int) or not 0 <= pattern < stored:
                raise UserError(f"pattern must be the number of a stored image, 0 to {stored - 1}; got {pattern!r}")
            n = 1
        seed = check_seed(seed)
        what = ("occluded" if occlude else f"corrupt{corrupt:g}") + ("" if pattern is None else f"-pattern{pattern}")
        return RecallGrid(self, model, float(corrupt or 0.0), bool(occlude), seed, n, f"recall-{what}-seed{seed}.png",
                          pattern=pattern)

    @torch.no_grad()
    def recall_steps(self, model: nn.Module, indices: list[int], corrupt: float, occluded: bool, seed: int = 0) -> Recall:
        """The stored images ``indices`` recalled from cues with ``corrupt`` of their pixels flipped (drawn
        from ``seed``) or their lower half erased, with every step's state and energy."""
        patterns = self.patterns()[indices]
        cues = occlude(patterns, self.image_shape) if occluded else flip(patterns, corrupt, torch.Generator().manual_seed(seed))
        device = model.patterns.device
        path = [state.float().cpu() for state in model.trajectory(cues.to(device), seed=seed)]
        energies = torch.stack([model.energy(state.to(device)).float().cpu() for state in path])
        recalled = torch.sign(path[-1])
        stored = model.patterns.cpu()
        return Recall(list(indices), patterns, cues, path[1:], energies, recalled,
                      (recalled != patterns).float().mean(1), (recalled @ stored.T).argmax(1), self.image_shape)

    @torch.no_grad()
    def recall_grid(self, model: nn.Module, out: Path, corrupt: float, occluded: bool, seed: int = 0,
                    count: int = 8, indices: list[int] | None = None) -> Path:
        """A PNG grid, one column per stored pattern (the first ``count``, or ``indices``): the stored image,
        the cue (``corrupt`` of its pixels flipped, or its lower half erased), each step of the dynamics (one
        asynchronous sweep or one update) with its energy, and the recalled image."""
        from archzoo.viz.plots import plot_image_grid

        r = self.recall_steps(model, list(range(min(count, len(self.patterns())))) if indices is None else indices,
                              corrupt, occluded, seed)
        rows = [("stored", r.stored), ("half erased" if occluded else f"{corrupt:.0%} flipped", r.cues)]
        rows += [(f"step {i}", state) for i, state in enumerate(r.states, 1)]
        rows.append(("recalled", r.recalled))
        images, titles = [], []
        for name, states in rows:
            images.append((states.float().clamp(-1, 1) + 1) / 2)
            if name.startswith("step"):
                titles += [f"{name} E={e:.4g}" for e in r.energies[int(name.split()[1])].tolist()]
            else:
                titles += [name] * len(states)
        h, w = self.image_shape
        grid = torch.cat(images).view(-1, 1, h, w)
        return plot_image_grid(grid, titles, out, f"{type(model).__name__}: recall in {len(r.states)} step(s)",
                               columns=len(r.indices))
