"""The one trainer: every task, every model, one loop (STYLE.md convention 5).

The loop is a function of (config, seed): the data order of an epoch and the augmentation of a
step are derived from the seed alone, and the RNG state travels in the checkpoint, so a run resumed
from any step ends with the same weights as an uninterrupted one, and a run over N ranks with the
same global batch computes the same updates as one process.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from archzoo.config import to_dict
from archzoo.errors import UserError
from archzoo.fileio import ensure_writable_dir
from archzoo.models import create_model
from archzoo.tasks import TASKS, Task
from archzoo.tasks.base import step_seed
from archzoo.training import checkpoint
from archzoo.training.config import RunConfig, save_config
from archzoo.training.distributed import DistInfo, agree, init_distributed, mean_over_ranks, resolve_device, shutdown
from archzoo.training.logger import MetricsLogger
from archzoo.training.optim import build_optimizer, build_scheduler
from archzoo.training.seed import rng_state, seed_everything, set_rng_state

STOP_REASONS = ("early_stopped", "time_budget", "interrupted")  # in rising precedence across ranks


@dataclass
class TrainResult:
    run_dir: Path
    status: str  # completed | early_stopped | time_budget | max_steps | interrupted
    step: int
    train_seconds: float
    best: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA; parameters (the master weights) stay float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def format_metrics(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


class Trainer:
    """Builds the task, model and optimiser from a RunConfig and trains into ``run_dir``.

    With ``resume=True`` the weights and training state are read from ``run_dir``; ``cfg`` should be
    the run's own config (``load_run_config``), with at most its stopping limits changed.
    ``on_step(trainer)`` runs after every optimizer step; setting ``trainer.stop_reason`` from it
    (or from Ctrl-C) stops the run cleanly at the end of the step.
    """

    def __init__(self, cfg: RunConfig, run_dir: Path, *, data_dir: str | Path | None = None,
                 device: str = "auto", progress: bool = True, verbose: bool = True, resume: bool = False,
                 on_step: Callable[[Trainer], None] | None = None):
        self.device = resolve_device(device)
        joined_before = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.dist: DistInfo = init_distributed(self.device)
        self._owns_process_group = self.dist.enabled and not joined_before
        self.run_dir = Path(run_dir)
        self.progress = progress and self.dist.is_main
        self.verbose = verbose
        self.on_step = on_step
        self.stop_reason: str | None = None
        self._interrupt_requested = False
        self._previous_sigint: Any = None
        tc = cfg.train
        seed_everything(tc.seed, tc.deterministic)
        self.task: Task = TASKS.get(cfg.task)(cfg.data, data_dir)
        self.cfg = replace(cfg, data=self.task.resolved_config()).with_model_args(self.task.model_args())
        self.model: nn.Module = create_model(self.cfg.model.name, **self.cfg.model.args)
        self.task.init_model(self.model)
        self.model = self.model.to(self.device)
        if tc.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.task.to(self.device)

        shards = self.dist.world_size * tc.accum_steps
        if tc.batch_size % shards:
            raise UserError(f"train.batch_size={tc.batch_size} must be divisible by ranks x accum_steps = {shards}")
        n = self.task.num_train_examples()
        self.steps_per_epoch = n // tc.batch_size
        if self.steps_per_epoch == 0:
            raise UserError(f"train.batch_size={tc.batch_size} is larger than the {n} training examples")
        self.total_steps = self.steps_per_epoch * tc.epochs
        if tc.max_steps:
            self.total_steps = min(self.total_steps, tc.max_steps)
        # one optimizer (and schedule) per phase of a step: one for most tasks, two for a GAN
        self.phases: list[tuple[str, nn.Module]] = self.task.optimizer_phases(self.model)
        if not any(p.requires_grad for p in self.model.parameters()):
            # nothing to train (a naive forecast): no optimizer; fit() validates once, saves and reports
            self.phases, self.total_steps = [], 0
        if self.dist.enabled and len(self.phases) > 1:
            raise UserError(f"the {cfg.task} task trains {len(self.phases)} networks with their own optimizers, "
                            "which distributed training does not support yet; run it in one process")
        self.optimizers = [build_optimizer(module, tc, fused=self.device.type == "cuda") for _, module in self.phases]
        # the schedule's length is fixed when a run starts; a resume with another --max-steps only
        # moves the stopping point, so cosine and one-cycle continue exactly
        self.schedule_steps = self.total_steps
        self.schedulers = self._build_schedulers()
        self.step = 0
        self.best: dict[str, Any] | None = None
        self.evals_without_improvement = 0
        self.last_saved_step: int | None = None
        self.train_seconds = 0.0
        if resume:
            self._load_state()
        self.train_model: nn.Module = self.model
        if self.dist.enabled and self.phases:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer of the first (for most tasks the only) phase."""
        return self.optimizers[0]

    def _build_schedulers(self) -> list[torch.optim.lr_scheduler.LambdaLR]:
        return [build_scheduler(o, self.cfg.train, self.schedule_steps, self.steps_per_epoch) for o in self.optimizers]

    def _phase_states(self, items: list[Any]) -> Any:
        """State dicts of the phases' optimizers or schedulers: one, as single-optimizer runs have always
        stored it, or a table by phase name."""
        states = {name: item.state_dict() for (name, _), item in zip(self.phases, items, strict=True)}
        return states if len(states) != 1 else next(iter(states.values()))

    def _load_phase_states(self, items: list[Any], saved: Any) -> None:
        table = saved if len(self.phases) != 1 else {self.phases[0][0]: saved}
        for (name, _), item in zip(self.phases, items, strict=True):
            item.load_state_dict(table[name])

    # -- checkpoints -------------------------------------------------------------------------
    def _load_state(self) -> None:
        weights = self.run_dir / "model.safetensors"
        tensors, meta = checkpoint.read_weights(weights)
        try:
            self.model.load_state_dict(tensors, strict=True)
        except RuntimeError as e:
            raise UserError(f"{weights} does not fit model {self.cfg.model.name!r} ({str(e).splitlines()[0]}); "
                            "it is corrupt or from another run") from None
        state = checkpoint.load_state(self.run_dir / "state.pt")
        if not isinstance(state, dict) or state.get("step") != meta["step"]:
            # the two files are written one after the other; a crash between them leaves a mismatch
            raise UserError(f"{weights} (step {meta['step']}) and state.pt (step "
                            f"{state.get('step') if isinstance(state, dict) else '?'}) of {self.run_dir} are from "
                            "different steps (a crash while saving?); the run cannot be resumed exactly")
        try:
            if state.get("schedule_steps", self.schedule_steps) != self.schedule_steps:
                # rebuilt before the optimizer state loads, which restores the learning rates
                self.schedule_steps = state["schedule_steps"]
                self.schedulers = self._build_schedulers()
            self._load_phase_states(self.optimizers, state["optimizer"])
            self._load_phase_states(self.schedulers, state["scheduler"])
            self.step, self.best = state["step"], state["best"]
            self.evals_without_improvement = state["evals_without_improvement"]
            self.train_seconds = state["train_seconds"]
            set_rng_state(state["rng"])
            self.task.load_state_dict(state.get("task", {}))
        except (KeyError, ValueError, RuntimeError, TypeError) as e:
            raise UserError(f"{self.run_dir / 'state.pt'} does not match this run ({type(e).__name__}); "
                            "it is corrupt or from another run") from None
        self.last_saved_step = self.step

    def save(self) -> None:
        """Latest weights and training state, written atomically by rank 0."""
        if not self.dist.is_main:
            return
        config = to_dict(self.cfg)
        checkpoint.save_weights(self.model, self.run_dir / "model.safetensors", config, self.step)
        checkpoint.save_state({
            "optimizer": self._phase_states(self.optimizers), "scheduler": self._phase_states(self.schedulers),
            "step": self.step, "best": self.best, "evals_without_improvement": self.evals_without_improvement,
            "train_seconds": self.train_seconds, "schedule_steps": self.schedule_steps, "rng": rng_state(),
            "task": self.task.state_dict(),
        }, self.run_dir / "state.pt")
        self.last_saved_step = self.step

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, split: str) -> dict[str, float]:
        with autocast(self.device, self.cfg.train.precision):
            metrics = self.task.evaluate(self.model, split, self.cfg.train.eval_batch_size)
        self.model.train()
        return metrics

    def _diverged(self, value: float) -> UserError:
        where = (f"the last good checkpoint, {self.run_dir / 'model.safetensors'} (step {self.last_saved_step}), "
                 "is intact" if self.last_saved_step is not None else "no checkpoint had been written yet")
        return UserError(f"training diverged: loss is {value} at step {self.step}; stopped, and {where}; "
                         "lower train.lr or set train.clip_grad_norm")

    def _validate(self, epoch: int, logger: MetricsLogger) -> None:
        """Evaluate on validation, track the best checkpoint and early stopping, then save."""
        has_val = self.task.has_split("val")
        metrics = self.evaluate("val") if has_val else {}
        if any(isinstance(v, float) and not math.isfinite(v) for v in metrics.values()):
            raise self._diverged(metrics.get("loss", float("nan")))
        logger.log({"step": self.step, "epoch": epoch, "split": "val", **metrics})
        if self.dist.is_main:
            self.task.after_evaluation(self.model, self.run_dir, self.step, epoch)
            self.model.train()
        if has_val:
            improved = self.best is None or self.task.is_better(metrics, self.best)
            if improved:
                self.best = {"step": self.step, **metrics}
                self.evals_without_improvement = 0
                if self.dist.is_main:
                    checkpoint.save_weights(self.model, self.run_dir / "best.safetensors", to_dict(self.cfg), self.step)
            else:
                self.evals_without_improvement += 1
            patience = self.cfg.train.early_stopping_patience
            if patience and self.evals_without_improvement >= patience:
                self.stop_reason = "early_stopped"
        self.save()
        if self.dist.is_main and self.verbose:
            print(f"step {self.step} epoch {epoch}: val {format_metrics(metrics)}", flush=True)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, dry_run: bool = False) -> TrainResult:
        """Train until a stop; rank 0 then reports on the test set while the other ranks wait.

        A process group the trainer joined itself is destroyed at the end: a rank that exits with a
        live gloo group can abort ("terminate called without an active exception"), and torchrun then
        kills rank 0 in the middle of its report.
        """
        # Ctrl-C finishes the step and saves from before anything is written until the loop ends
        self._install_sigint()
        try:
            result = self._fit(dry_run)
            if self.dist.enabled:
                torch.distributed.barrier()
            return result
        finally:
            self._restore_sigint()
            if self._owns_process_group:
                shutdown(self.dist)

    def _fit(self, dry_run: bool) -> TrainResult:
        tc = self.cfg.train
        if self.dist.is_main and not dry_run:
            ensure_writable_dir(self.run_dir, "choose another run folder with --out")
            save_config(self.cfg, self.run_dir / "config.json")
        resumed_from = self.step if self.last_saved_step is not None else None
        logger = MetricsLogger(self.run_dir, self.dist.is_main and not dry_run, resumed_from, tc.tensorboard)
        autocast_ctx = autocast(self.device, tc.precision)
        ranks, rank, accum = self.dist.world_size, self.dist.rank, tc.accum_steps
        micro = tc.batch_size // accum
        per_rank = micro // ranks
        order, order_epoch = None, -1
        window_loss = torch.zeros(len(self.phases), device=self.device)  # summed loss of each phase
        window_steps, window_start = 0, time.perf_counter()
        self.model.train()

        from tqdm import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", disable=not self.progress or dry_run,
                   dynamic_ncols=True, leave=False)
        loop_start = time.perf_counter()
        seconds_at_start = self.train_seconds
        deadline = loop_start + tc.time_budget - seconds_at_start if tc.time_budget else math.inf
        try:
            if not self.phases and self.step == 0:  # a model with no parameters: evaluate it as it is
                if dry_run:
                    return TrainResult(self.run_dir, "dry_run", 0, 0.0, test={"train_loss": self._first_batch_loss()})
                self._validate(0, logger)
            while self.step < self.total_steps and self.stop_reason is None:
                epoch, index = divmod(self.step, self.steps_per_epoch)
                if order_epoch != epoch:
                    order, order_epoch = self.task.epoch_order(epoch, tc.seed, tc.batch_size), epoch
                batch_indices = order[index * tc.batch_size:(index + 1) * tc.batch_size]
                # augmentation is drawn once per step over the whole global batch, and each micro-batch
                # of each rank takes its slice of it, so accum_steps and the number of ranks change
                # how the step is computed, never what it computes
                seed = step_seed(tc.seed, self.step)
                lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
                batches: list[tuple[torch.Tensor, ...]] = []  # later phases reuse the first phase's batches
                for p, ((phase, module), optimizer) in enumerate(zip(self.phases, self.optimizers, strict=True)):
                    optimizer.zero_grad(set_to_none=True)
                    for a in range(accum):
                        if p == 0:
                            shard = slice(a * micro + rank * per_rank, a * micro + (rank + 1) * per_rank)
                            batch = self.task.train_batch(batch_indices, shard, seed)
                            if tc.channels_last:
                                batch = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
                                              for t in batch)
                            if len(self.phases) > 1:
                                batches.append(batch)
                        else:
                            batch = batches[a]
                        sync = (self.train_model.no_sync() if self.dist.enabled and a < accum - 1
                                else contextlib.nullcontext())
                        with sync:
                            with autocast_ctx:
                                loss = self.task.phase_loss(phase, self.train_model, batch)
                            (loss / accum if accum > 1 else loss).backward()
                        window_loss[p] += loss.detach()
                    if tc.clip_grad_norm:
                        nn.utils.clip_grad_norm_(module.parameters(), tc.clip_grad_norm)
                    optimizer.step()
                    self.schedulers[p].step()
                self.step += 1
                window_steps += 1
                if dry_run:
                    value = mean_over_ranks(window_loss.sum(), self.dist).item() / accum
                    if not math.isfinite(value):
                        raise self._diverged(value)
                    return TrainResult(self.run_dir, "dry_run", self.step, 0.0, test={"train_loss": value})
                bar.update(1)
                if self.on_step is not None:
                    self.on_step(self)
                if self._interrupt_requested and self.stop_reason is None:
                    self.stop_reason = "interrupted"
                if time.perf_counter() > deadline and self.stop_reason is None:
                    self.stop_reason = "time_budget"
                if self.dist.enabled:  # every rank stops together, for the same reason
                    self.stop_reason = agree(self.stop_reason, STOP_REASONS, self.dist, self.device)
                finished = self.step == self.total_steps
                stopping = self.stop_reason is not None or finished
                end_of_epoch = self.step % self.steps_per_epoch == 0
                due_eval = (self.step % tc.eval_every_steps == 0 if tc.eval_every_steps
                            else end_of_epoch and (self.step // self.steps_per_epoch) % tc.eval_every_epochs == 0)
                if self.step % tc.log_every_steps == 0 or due_eval or stopping:
                    values = [v / (window_steps * accum) for v in mean_over_ranks(window_loss, self.dist).tolist()]
                    value = sum(values)
                    if not math.isfinite(value):
                        raise self._diverged(value)
                    now = time.perf_counter()
                    rate = window_steps * tc.batch_size / (now - window_start)
                    phase_losses = {f"{name}_loss": v for (name, _), v in zip(self.phases, values, strict=True)
                                    } if len(self.phases) > 1 else {}
                    logger.log({"step": self.step, "epoch": epoch, "split": "train", "loss": value, **phase_losses,
                                "lr": lr, "samples_per_s": rate})
                    bar.set_postfix(loss=f"{value:.4f}", samples_s=f"{rate:,.0f}", refresh=False)
                    window_loss.zero_()
                    window_steps, window_start = 0, now
                # an interrupted run still makes the evaluation that was due at this step, so that the
                # resumed run tracks the same best checkpoint and early-stopping count as an
                # uninterrupted one; it skips only the extra evaluation of a stop
                if due_eval or finished or self.stop_reason not in (None, "interrupted"):
                    self.train_seconds = seconds_at_start + time.perf_counter() - loop_start
                    self._validate(epoch, logger)
        finally:
            bar.close()
            self._restore_sigint()  # from here on (the test report) Ctrl-C stops at once
        self.train_seconds = seconds_at_start + time.perf_counter() - loop_start
        status = self.stop_reason or ("max_steps" if tc.max_steps and self.step >= tc.max_steps else "completed")
        result = TrainResult(self.run_dir, status, self.step, self.train_seconds, self.best, None, logger.records)
        if status == "interrupted":
            if self.last_saved_step != self.step:
                self.save()
        elif self.dist.is_main:
            result.test = self.final_report()
        logger.close()
        if self.dist.is_main and logger.records:
            from archzoo.viz.plots import plot_curves

            plot_curves(logger.records, self.run_dir / "curves.png")
        return result

    @torch.no_grad()
    def _first_batch_loss(self) -> float:
        tc = self.cfg.train
        order = self.task.epoch_order(0, tc.seed, tc.batch_size)[:tc.batch_size]
        batch = self.task.train_batch(order, slice(0, tc.batch_size), step_seed(tc.seed, 0))
        return self.task.loss(self.model, batch).item()

    def final_report(self) -> dict[str, Any]:
        """Test-set report of the best weights (the latest if there was no validation split)."""
        best = self.run_dir / "best.safetensors"
        model = self.model
        if best.exists():
            model, _ = checkpoint.load_model(best)
            model = model.to(self.device)
            if self.cfg.train.channels_last:
                model = model.to(memory_format=torch.channels_last)
        with autocast(self.device, self.cfg.train.precision):
            return self.task.report(model, self.run_dir, self.cfg.train.eval_batch_size)

    def _install_sigint(self) -> None:
        """First Ctrl-C: finish the step, save and stop; a second one interrupts at once.

        The handler only raises a flag; the loop turns it into ``stop_reason`` at one point of the
        step, so that ranks agree on it (a signal landing between two checks cannot split them).
        """
        import threading

        self._interrupt_requested = False
        self._previous_sigint = None
        if threading.current_thread() is not threading.main_thread():
            return

        def request_stop(signum: int, frame: Any) -> None:
            self._interrupt_requested = True
            signal.signal(signal.SIGINT, signal.default_int_handler)

        self._previous_sigint = signal.signal(signal.SIGINT, request_stop)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None


def override_train(cfg: RunConfig, **changes: Any) -> RunConfig:
    """A copy of ``cfg`` with some TrainConfig fields changed (command-line shortcuts)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(cfg, train=replace(cfg.train, **changes)) if changes else cfg
