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
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from archzoo.config import to_dict
from archzoo.errors import TrainingDiverged, UserError
from archzoo.fileio import ensure_writable_dir
from archzoo.hardware import native_bf16
from archzoo.models import build_model
from archzoo.tasks import TASKS, Task
from archzoo.tasks.base import step_seed
from archzoo.training import checkpoint, run_folder
from archzoo.training.config import RunConfig, save_config
from archzoo.training.distributed import DistInfo, agree, init_distributed, mean_over_ranks, resolve_device, shutdown
from archzoo.training.logger import MetricsLogger
from archzoo.training.optim import build_optimizer, build_scheduler
from archzoo.training.seed import rng_state, seed_everything, set_rng_state

STOP_REASONS = ("early_stopped", "time_budget", "interrupted")  # in rising precedence across ranks
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and what schedulers and containers send


@dataclass
class TrainResult:
    run_dir: Path
    status: str  # completed | early_stopped | time_budget | max_steps | interrupted
    step: int
    train_seconds: float
    best: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    precision: str = field(kw_only=True)  # what it trained in: ``auto`` resolved for the device (bf16 or fp32)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run trains in: ``auto`` is bf16 where ``device`` has native bf16, else fp32."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def precision_notice(precision: str, device: torch.device) -> str:
    """One line when ``train.precision`` names bf16 on a device that only emulates it, else ""."""
    if precision == "bf16" and not native_bf16(device):
        return (f"notice: train.precision='bf16' on a {device.type} without native bf16 is emulated and many "
                f"times slower than fp32 here; set train.precision='auto' (or 'fp32')")
    return ""


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA for precision ``bf16`` (and ``auto`` where the device has native bf16);
    parameters (the master weights) stay float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolve_precision(precision, device) == "bf16")


def format_metrics(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def compiler_missing(device: torch.device) -> str:
    """Why ``train.compile`` cannot work on ``device`` here (one line naming the fix), or "" if it can."""
    import os
    import shutil

    if device.type == "cpu" and not shutil.which(os.environ.get("CXX", "g++")):
        return ("train.compile needs a C++ compiler on CPU (torch.compile's inductor backend): install one "
                "(apt-get install g++) or set train.compile=false")
    if device.type == "cuda":
        import importlib.util

        if importlib.util.find_spec("triton") is None:
            return "train.compile on CUDA needs Triton (pip install triton) or set train.compile=false"
    return ""


def use_compile(setting: bool | str, device: torch.device) -> bool:
    """Whether to compile: ``True`` on a machine that cannot is one line when the trainer is built, not a
    compiler traceback at the first step; ``"auto"`` there trains eagerly with a notice."""
    if not setting:
        return False
    missing = compiler_missing(device)
    if missing and setting == "auto":
        print(f"notice: train.compile='auto' trains eagerly here: {missing}", file=sys.stderr, flush=True)
        return False
    if missing:
        raise UserError(missing)
    return True


class TrainStep:
    """One optimizer step as a task sees it (``Task.training_step``): the step's micro-batches and
    ``optimize``, which runs one phase of the step, its accumulation, backward, clipping, optimizer
    and schedule. Tasks decide what the phases compute; the trainer owns how they are optimised."""

    def __init__(self, trainer: Trainer, batch_indices: torch.Tensor, seed: int):
        self.trainer = trainer
        self.model = trainer.model
        self.distributed = trainer.dist.enabled
        self._indices, self._seed = batch_indices, seed
        self._batches: dict[int, tuple[torch.Tensor, ...]] = {}
        self._keep = len(trainer.phases) > 1  # later phases reuse the first phase's batches

    def module(self, phase: int) -> nn.Module:
        """The module to call in ``phase``: its DistributedDataParallel wrapper under torchrun, so that
        the phase's backward averages its gradients over the ranks."""
        return self.trainer.phase_modules[phase]

    def batch(self, micro: int) -> tuple[torch.Tensor, ...]:
        """Micro-batch ``micro`` of this rank: its slice of the global batch (augmentation is drawn once
        per step over the whole global batch, so ranks and accumulation change how, never what)."""
        if micro in self._batches:
            return self._batches[micro]
        t = self.trainer
        micro_size = t.cfg.train.batch_size // t.cfg.train.accum_steps
        per_rank = micro_size // t.dist.world_size
        start = micro * micro_size + t.dist.rank * per_rank
        batch = t.task.train_batch(self._indices, slice(start, start + per_rank), self._seed)
        if t.cfg.train.channels_last:
            batch = tuple(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in batch)
        if self._keep:
            self._batches[micro] = batch
        return batch

    def optimize(self, phase: int, loss_of: Callable[[tuple[torch.Tensor, ...]], torch.Tensor]) -> torch.Tensor:
        """One phase: ``loss_of(batch)`` on each micro-batch, backward (gradients averaged over micro-batches
        and ranks), clipping, the phase's optimizer and schedule. Returns the summed loss (detached)."""
        t = self.trainer
        tc = t.cfg.train
        module, optimizer = self.module(phase), t.optimizers[phase]
        optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=t.device)
        for micro in range(tc.accum_steps):
            last = micro == tc.accum_steps - 1
            sync = module.no_sync() if self.distributed and not last else contextlib.nullcontext()
            with sync:
                with autocast(t.device, t.precision):
                    loss = loss_of(self.batch(micro))
                (loss / tc.accum_steps if tc.accum_steps > 1 else loss).backward()
            total += loss.detach()
        if tc.clip_grad_norm:
            nn.utils.clip_grad_norm_(t.phases[phase][1].parameters(), tc.clip_grad_norm)
        optimizer.step()
        t.schedulers[phase].step()
        return total


class Trainer:
    """Builds the task, model and optimiser from a RunConfig and trains into ``run_dir``.

    A new run needs a new or empty ``run_dir`` (``overwrite=True`` replaces an earlier run there); with
    ``resume=True`` the weights and training state are read from the run's newest checkpoint, and
    ``cfg`` should be the run's own config (``load_run_config``), with at most its stopping limits
    changed. ``on_step(trainer)`` runs after every optimizer step; setting ``trainer.stop_reason``
    from it (or from Ctrl-C or SIGTERM) stops the run cleanly at the end of the step.
    """

    def __init__(self, cfg: RunConfig, run_dir: Path, *, data_dir: str | Path | None = None,
                 device: str = "auto", progress: bool = True, verbose: bool = True, resume: bool = False,
                 overwrite: bool = False, on_step: Callable[[Trainer], None] | None = None):
        self.run_dir = Path(run_dir)
        self.resume, self.overwrite = resume, overwrite
        self.device = resolve_device(device)
        self.precision = resolve_precision(cfg.train.precision, self.device)
        joined_before = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.dist: DistInfo = init_distributed(self.device)
        self._owns_process_group = self.dist.enabled and not joined_before
        self.progress = progress and self.dist.is_main and sys.stderr.isatty()
        self.verbose = verbose
        notice = precision_notice(cfg.train.precision, self.device)
        if notice and verbose and self.dist.is_main:
            print(notice, file=sys.stderr, flush=True)
        self.on_step = on_step
        self.stop_reason: str | None = None
        self.stop_signal: int | None = None  # the signal that asked for the stop (exit code 128 + it)
        self._previous_handlers: dict[int, Any] = {}
        tc = cfg.train
        seed_everything(tc.seed, tc.deterministic)
        self.task: Task = TASKS.get(cfg.task)(cfg.data, data_dir)
        self.task.verify_data()  # a corrupt test file stops the run now, not after the training
        self.cfg = replace(cfg, data=self.task.resolved_config()).with_model_args(self.task.model_args())
        self.model: nn.Module = build_model(self.cfg.model)
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
        # under torchrun each phase's module is wrapped on its own, so a GAN's two phases each
        # average their own gradients over the ranks
        self.phase_modules: list[nn.Module] = [module for _, module in self.phases]
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.phase_modules = [DistributedDataParallel(m, device_ids=ids) for m in self.phase_modules]
        if use_compile(tc.compile, self.device):  # the training forward only: evaluation and checkpoints use self.model
            self.phase_modules = [torch.compile(m) for m in self.phase_modules]

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
        tensors, _, state = checkpoint.load_checkpoint(self.run_dir)
        try:
            self.model.load_state_dict(tensors, strict=True)
        except RuntimeError as e:
            raise UserError(f"the checkpoint of {self.run_dir} does not fit model {self.cfg.model.name!r} "
                            f"({str(e).splitlines()[0]}); it is corrupt or from another run") from None
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
            raise UserError(f"the training state of {self.run_dir} does not match this run ({type(e).__name__}); "
                            "it is corrupt or from another run") from None
        self.last_saved_step = self.step

    def save(self, status: str = "running") -> None:
        """The step's weights and training state as one checkpoint, and the status, by rank 0."""
        if not self.dist.is_main:
            return
        checkpoint.save_checkpoint(self.run_dir, self.model, to_dict(self.cfg), self.step, {
            "optimizer": self._phase_states(self.optimizers), "scheduler": self._phase_states(self.schedulers),
            "step": self.step, "best": self.best, "evals_without_improvement": self.evals_without_improvement,
            "train_seconds": self.train_seconds, "schedule_steps": self.schedule_steps, "rng": rng_state(),
            "task": self.task.state_dict(),
        })
        self.last_saved_step = self.step
        run_folder.write_status(self.run_dir, status, self.step, self.best, None, self.train_seconds)

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, split: str) -> dict[str, float]:
        with autocast(self.device, self.precision):
            metrics = self.task.evaluate(self.model, split, self.cfg.train.eval_batch_size)
        self.model.train()
        return metrics

    def _diverged(self, value: float) -> TrainingDiverged:
        where = (f"the last good checkpoint, {self.run_dir / checkpoint.WEIGHTS} (step {self.last_saved_step}), "
                 "is intact" if self.last_saved_step is not None else "no checkpoint had been written yet")
        return TrainingDiverged(f"training diverged: loss is {value} at step {self.step}; stopped, and {where}; "
                         "lower train.lr or set train.clip_grad_norm")

    def _validate(self, epoch: int, logger: MetricsLogger) -> None:
        """Evaluate on validation, track the best checkpoint and early stopping, then save."""
        has_val = self.task.has_split("val")
        metrics = self.evaluate("val") if has_val else {}
        if any(isinstance(v, float) and not math.isfinite(v) for v in metrics.values()):
            raise self._diverged(metrics.get("loss", float("nan")))
        if has_val:
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
            what = f"val {format_metrics(metrics)}" if has_val else "saved (no validation split)"
            print(f"step {self.step} epoch {epoch}: {what}", flush=True)

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, dry_run: bool = False) -> TrainResult:
        """Train until a stop; rank 0 then reports on the test set while the other ranks wait.

        Rank 0 holds the run folder's lock throughout. A process group the trainer joined itself is
        destroyed at the end: a rank that exits with a live gloo group can abort ("terminate called
        without an active exception"), and torchrun then kills rank 0 in the middle of its report.
        """
        writes = self.dist.is_main and not dry_run
        lock = run_folder.RunLock(self.run_dir) if writes else contextlib.nullcontext()
        # Ctrl-C or SIGTERM finishes the step and saves, from before anything is written until the loop ends
        self._install_stop_signals()
        claimed = False
        try:
            if writes:
                if not self.resume:  # before the lock file is made: a folder that is not ours gets nothing
                    run_folder.check_new(self.run_dir, self.overwrite)
                ensure_writable_dir(self.run_dir, "choose another run folder with --out")
            with lock:
                if writes:
                    self._claim_run_dir()
                    claimed = True
                try:
                    result = self._fit(dry_run)
                except BaseException as e:
                    if claimed:  # say so on disk; a folder we never claimed is someone else's
                        failed = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
                        with contextlib.suppress(UserError):
                            run_folder.write_status(self.run_dir, failed, self.last_saved_step or 0, self.best, None,
                                                    self.train_seconds)
                    raise
            if self.dist.enabled:
                torch.distributed.barrier()
            return result
        finally:
            self._restore_stop_signals()
            if self._owns_process_group:
                shutdown(self.dist)

    def _claim_run_dir(self) -> None:
        """Under the lock: check again that the folder is ours to write (another process may have written
        it since ``__init__``), clear a replaced run, sweep a killed process's temporaries, save the config."""
        if self.resume:
            checkpoint.clean_temporaries(self.run_dir)
        else:
            run_folder.check_new(self.run_dir, self.overwrite)
            run_folder.clear(self.run_dir)
        save_config(self.cfg, self.run_dir / "config.json")

    def _fit(self, dry_run: bool) -> TrainResult:
        tc = self.cfg.train
        resumed_from = self.step if self.last_saved_step is not None else None
        logger = MetricsLogger(self.run_dir, self.dist.is_main and not dry_run, resumed_from, tc.tensorboard)
        order, order_epoch = None, -1
        window = LossWindow(len(self.phases), self.device)
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
                    return TrainResult(self.run_dir, "dry_run", 0, 0.0, test={"train_loss": self._first_batch_loss()},
                                       precision=self.precision)
                self._validate(0, logger)
            while self.step < self.total_steps and self.stop_reason is None:
                epoch, index = divmod(self.step, self.steps_per_epoch)
                if order_epoch != epoch:
                    order, order_epoch = self.task.epoch_order(epoch, tc.seed, tc.batch_size), epoch
                lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
                batch_indices = order[index * tc.batch_size:(index + 1) * tc.batch_size]
                losses = self.task.training_step(TrainStep(self, batch_indices, step_seed(tc.seed, self.step)))
                self.step += 1
                window.add(losses)
                if dry_run:
                    value = sum(window.values(self.dist, tc.accum_steps))
                    if not math.isfinite(value):
                        raise self._diverged(value)
                    return TrainResult(self.run_dir, "dry_run", self.step, 0.0, test={"train_loss": value},
                                       precision=self.precision)
                bar.update(1)
                self._after_step(epoch, lr, window, logger, bar, deadline)
                if self._due_evaluation() or self.step == self.total_steps or self.stop_reason not in (None, "interrupted"):
                    # an interrupted run still makes the evaluation that was due at this step, so that the
                    # resumed run tracks the same best checkpoint and early-stopping count as an
                    # uninterrupted one; it skips only the extra evaluation of a stop
                    self.train_seconds = seconds_at_start + time.perf_counter() - loop_start
                    self._validate(epoch, logger)
        finally:
            bar.close()
            self._restore_stop_signals()  # from here on (the test report) Ctrl-C stops at once
        self.train_seconds = seconds_at_start + time.perf_counter() - loop_start
        return self._finish(logger)

    def _due_evaluation(self) -> bool:
        tc = self.cfg.train
        if tc.eval_every_steps:
            return self.step % tc.eval_every_steps == 0
        epochs, within = divmod(self.step, self.steps_per_epoch)
        return within == 0 and epochs % tc.eval_every_epochs == 0

    def _after_step(self, epoch: int, lr: float, window: LossWindow, logger: MetricsLogger, bar: Any,
                    deadline: float) -> None:
        """The hook, the stop requests (signal, time budget; agreed over ranks) and the training log."""
        if self.on_step is not None:
            self.on_step(self)
        if self.stop_signal is not None and self.stop_reason is None:
            self.stop_reason = "interrupted"
        if time.perf_counter() > deadline and self.stop_reason is None:
            self.stop_reason = "time_budget"
        if self.dist.enabled:  # every rank stops together, for the same reason
            self.stop_reason = agree(self.stop_reason, STOP_REASONS, self.dist, self.device)
        stopping = self.stop_reason is not None or self.step == self.total_steps
        if self.step % self.cfg.train.log_every_steps and not self._due_evaluation() and not stopping:
            return
        values = window.values(self.dist, self.cfg.train.accum_steps)
        value = sum(values)
        if not math.isfinite(value):
            raise self._diverged(value)
        rate = window.steps * self.cfg.train.batch_size / window.seconds()
        phase_losses = {f"{name}_loss": v for (name, _), v in zip(self.phases, values, strict=True)
                        } if len(self.phases) > 1 else {}
        logger.log({"step": self.step, "epoch": epoch, "split": "train", "loss": value, **phase_losses,
                    "lr": lr, "samples_per_s": rate})
        bar.set_postfix(loss=f"{value:.4f}", samples_s=f"{rate:,.0f}", refresh=False)
        window.reset()

    def _finish(self, logger: MetricsLogger) -> TrainResult:
        """Save an interrupted run, or report on the test set; the status and curves either way."""
        tc = self.cfg.train
        status = self.stop_reason or ("max_steps" if tc.max_steps and self.step >= tc.max_steps else "completed")
        result = TrainResult(self.run_dir, status, self.step, self.train_seconds, self.best, None, logger.records,
                             precision=self.precision)
        if status == "interrupted":
            if self.last_saved_step != self.step:
                self.save("interrupted")
        elif self.dist.is_main:
            result.test = self.final_report()
        if self.dist.is_main:
            run_folder.write_status(self.run_dir, status, self.step, self.best, result.test, self.train_seconds)
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
        with autocast(self.device, self.precision):
            return self.task.report(model, self.run_dir, self.cfg.train.eval_batch_size)

    def _install_stop_signals(self) -> None:
        """First Ctrl-C or SIGTERM: finish the step, save and stop; a second Ctrl-C interrupts at once.

        The handler only records the signal; the loop turns it into ``stop_reason`` at one point of
        the step, so that ranks agree on it (a signal landing between two checks cannot split them).
        """
        self.stop_signal = None
        self._previous_handlers = {}
        if threading.current_thread() is not threading.main_thread():
            return

        def request_stop(signum: int, frame: Any) -> None:
            self.stop_signal = signum
            signal.signal(signal.SIGINT, signal.default_int_handler)

        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, request_stop)

    def _restore_stop_signals(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}


class LossWindow:
    """The summed training loss of each phase since the last log, and the steps and time it covers."""

    def __init__(self, phases: int, device: torch.device):
        self.total = torch.zeros(phases, device=device)
        self.reset()

    def add(self, losses: list[torch.Tensor]) -> None:
        if losses:
            self.total += torch.stack(losses)
        self.steps += 1

    def values(self, dist: DistInfo, accum_steps: int) -> list[float]:
        """The mean loss per phase over the window's micro-batches and the ranks."""
        return [v / (max(self.steps, 1) * accum_steps) for v in mean_over_ranks(self.total, dist).tolist()]

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def reset(self) -> None:
        self.total.zero_()
        self.steps, self.start = 0, time.perf_counter()


def override_train(cfg: RunConfig, **changes: Any) -> RunConfig:
    """A copy of ``cfg`` with some TrainConfig fields changed (command-line shortcuts)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(cfg, train=replace(cfg.train, **changes)) if changes else cfg
