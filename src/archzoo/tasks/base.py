"""The contract between the one trainer and a task (STYLE.md convention 5)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.registry import Registry

if TYPE_CHECKING:
    from archzoo.training.trainer import TrainStep


class Task:
    """A job: it loads its data, supplies data-derived model arguments, builds training batches,
    computes the loss and evaluates. The trainer never branches on model or task type.

    Data order and augmentation are functions of (seed, epoch, step) alone, so a run resumed
    mid-epoch, or sharded over ranks, sees exactly the batches an uninterrupted run would.
    """

    Config: ClassVar[type]
    primary_metric: ClassVar[str]
    higher_is_better: ClassVar[bool]
    # What a loaded run of this task does besides evaluating (``archzoo.load(RUN).<verb>(...)`` and the
    # CLI command of the same name): some of predict, generate, translate, forecast, sample. Each is a
    # method ``verb(model, ...)`` of the task returning a result that knows how to print and save itself.
    verbs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: Any, data_dir: str | Path | None = None):
        self.cfg = cfg
        self.data_dir = data_dir
        self.notices: list[str] = []  # one-line facts about the data a user should know (the CLI prints them)

    def resolved_config(self) -> Any:
        """The task config with everything derived from the data filled in (a vocabulary), so the
        run's saved config rebuilds the task and model exactly."""
        return self.cfg

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        """Plain-text lines summarising a ``report`` result."""
        raise NotImplementedError

    def verb_defaults(self, report: dict[str, Any]) -> dict[str, Any]:
        """Verb options that the run's test report (eval.json) settled, e.g. the length penalty a
        translation run chose on validation. Default: none."""
        return {}

    def model_args(self) -> dict[str, Any]:
        """Arguments the data decides (input shape, number of classes); merged into the model config."""
        return {}

    def init_model(self, model: nn.Module) -> None:
        """Data-dependent initialisation of a freshly built model (before any resume loads its weights);
        e.g. NBSVM's log-count ratios from the training split. Default: nothing."""

    def is_better(self, new: dict[str, float], best: dict[str, float]) -> bool:
        """Whether evaluation ``new`` beats ``best`` on the primary metric; ties (common for accuracy on
        a small validation set) go to the lower loss."""
        a, b = new[self.primary_metric], best[self.primary_metric]
        if a != b:
            return a > b if self.higher_is_better else a < b
        return new.get("loss", float("inf")) < best.get("loss", float("inf"))

    def epoch_order(self, epoch: int, seed: int, batch_size: int) -> torch.Tensor:
        """The example indices of one epoch in training order; the trainer takes ``batch_size`` of
        them per step. Default: a permutation that depends only on (seed, epoch)."""
        return random_order(self.num_train_examples(), seed, epoch)

    def state_dict(self) -> dict[str, Any]:
        """Training-time state of the task itself (tensors and plain values), saved in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def has_split(self, name: str) -> bool:
        raise NotImplementedError

    def num_train_examples(self) -> int:
        raise NotImplementedError

    def to(self, device: torch.device) -> None:
        """Move the in-memory data to ``device`` once, so batching never copies from the host."""

    def train_batch(self, indices: torch.Tensor, shard: slice, seed: int) -> tuple[torch.Tensor, ...]:
        """The batch for global example ``indices``, restricted to this rank's ``shard``;
        randomness (augmentation) is drawn from ``seed`` over the whole global batch."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        raise NotImplementedError

    def verify_data(self) -> None:
        """Check every catalogued file the run will read, test split included, before training starts
        (a corrupt test file found after an hour of training loses the hour). Default: all files of
        the catalogue entry ``cfg.dataset``, when it names one."""
        from archzoo.data.sources import DATASETS, locate

        name = getattr(self.cfg, "dataset", None)
        if isinstance(name, str) and name in DATASETS:
            locate(DATASETS.get(name), self.data_dir)

    def optimizer_phases(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """The phases of one training step, in order: a name and the module whose parameters that
        phase's own optimizer updates. Default: one phase over the whole model; a GAN has two, the
        discriminator's then the generator's (see ``training_step``)."""
        return [("model", model)]

    def training_step(self, step: TrainStep) -> list[torch.Tensor]:
        """One optimizer step: run each phase through ``step.optimize(phase, loss_of_batch)`` in order and
        return their summed losses. Default: one phase minimising ``loss`` on the model (its DDP wrapper
        under torchrun, ``step.module(0)``)."""
        return [step.optimize(0, lambda batch: self.loss(step.module(0), batch))]

    def after_evaluation(self, model: nn.Module, out_dir: Path, step: int, epoch: int) -> None:
        """Called by the main process after each validation, before the checkpoint is saved (a GAN
        draws its fixed-noise sample grid here). Default: nothing."""

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        raise NotImplementedError

    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        """Full evaluation on the test split with plots; returns the figures."""
        raise NotImplementedError


class TensorPairSplits:
    """For tasks holding each split as a tuple of tensors in ``self._splits`` (inputs, ..., targets; the
    second counts the examples) and reading them through ``self.split(name)``: the example count and the
    move to a device."""

    device: torch.device
    _splits: dict[str, tuple[torch.Tensor, ...]]

    def split(self, name: str) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def num_train_examples(self) -> int:
        return len(self.split("train")[1])

    def to(self, device: torch.device) -> None:
        self.device = device
        self._splits = {k: tuple(t.to(device) for t in v) for k, v in self._splits.items()}


MAX_SEED = 2**63 - 1


def model_device(model: nn.Module) -> torch.device:
    """Where a model computes: its first parameter's or buffer's device (CPU for one with neither, such as
    a model whose layers were all quantized to int8)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def check_seed(seed: object) -> int:
    """A user's sampling seed as an int in [0, 2^63 - 1] (what ``torch.Generator.manual_seed`` takes)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"the seed must be an integer in [0, 2^63 - 1], got {seed!r}")
    return seed


def check_count(what: str, count: object, low: int, high: int, why: str) -> int:
    """An integer count in [low, high]; above ``high`` the error says ``why`` (refused before any allocation)."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise UserError(f"{what} must be an integer >= {low}, got {count!r}")
    if count < low:
        raise UserError(f"{what} must be >= {low}, got {count}")
    if count > high:
        raise UserError(f"{what} = {count:,} is more than {high:,}: {why}")
    return count


def step_seed(seed: int, step: int) -> int:
    """A seed for the randomness of one optimizer step (augmentation), independent of history."""
    return (seed * 1_000_003 + step * 7_919 + 12_345) % (2**63 - 1)


def random_order(num_examples: int, seed: int, epoch: int) -> torch.Tensor:
    """The training order of one epoch: a permutation that depends only on (seed, epoch)."""
    return torch.randperm(num_examples, generator=torch.Generator().manual_seed(step_seed(seed, -1 - epoch)))


def length_buckets(lengths: torch.Tensor, batch_size: int, seed: int, epoch: int) -> torch.Tensor:
    """A training order for one epoch whose runs of ``batch_size`` examples have similar lengths, so
    batches pad little (a bucket iterator, as torchtext's BucketIterator): ``random_order``, each chunk
    of 50 batches sorted by length (stable), then whole batches shuffled; a last partial batch stays at
    the end. Depends only on (lengths, batch_size, seed, epoch).

    Shapes: lengths (N,) -> order (N,) int64, a permutation of range(N).
    """
    order = random_order(len(lengths), seed, epoch)
    shuffled = lengths.cpu()[order]
    chunk = batch_size * 50
    for start in range(0, len(order), chunk):
        part = slice(start, start + chunk)
        order[part] = order[part][shuffled[part].argsort(stable=True)]
    full = len(order) // batch_size * batch_size
    batches = order[:full].view(-1, batch_size)
    shuffle = torch.randperm(len(batches), generator=torch.Generator().manual_seed(step_seed(seed, -100_000 - epoch)))
    return torch.cat([batches[shuffle].flatten(), order[full:]])


TASKS: Registry[type[Task]] = Registry("task")
register_task = TASKS.register
