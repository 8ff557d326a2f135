"""The run config: what one training run is (task, model, data, training sections), composed from a
preset and dotted overrides, type-checked, and saved in the run folder and every checkpoint.

Each section's dataclass lives next to the code it configures (``TrainConfig`` here, ``ModelConfig``
with the model registry, each task's ``Config`` with its task); ``archzoo.config`` holds the generic
machinery that builds and checks any of them from TOML or JSON.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from archzoo.config import field_types, from_dict, parse_override, set_in, to_dict
from archzoo.errors import UserError, unknown
from archzoo.models import ModelConfig
from archzoo.tasks import TASKS

OPTIMIZERS = ("adamw", "adam", "sgd", "muon")
SCHEDULES = ("constant", "cosine", "step", "multistep", "onecycle")
PRECISIONS = ("fp32", "bf16", "auto")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping. ``batch_size`` is the global batch of one optimizer step: it is
    split over ``accum_steps`` micro-batches and over distributed ranks."""

    epochs: int = 10
    max_steps: int = 0  # 0: no limit; else stop after this many optimizer steps
    time_budget: float = 0.0  # seconds of training; 0: no limit. Stops cleanly, then evaluates
    batch_size: int = 128
    eval_batch_size: int = 1000
    optimizer: str = "adamw"  # adamw | adam | sgd (with momentum) | muon (hidden matrices; AdamW for the rest)
    lr: float = 1e-3
    muon_lr: float = 0.02  # muon: the hidden matrices' rate, on AdamW's scale (match_rms_adamw); lr is AdamW's
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0  # weights of rank >= 2 only; decoupled, lr x weight_decay per step (muon: muon_lr x)
    schedule: str = "constant"  # constant | cosine (after warmup) | step | multistep | onecycle
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr
    step_every_epochs: int = 1  # step schedule: multiply by gamma every this many epochs
    milestones: tuple[int, ...] = ()  # multistep schedule: multiply by gamma at each of these optimizer steps
    gamma: float = 0.7
    pct_start: float = 0.25  # onecycle: fraction of steps spent rising
    clip_grad_norm: float = 0.0  # 0: off
    accum_steps: int = 1
    # fp32 | bf16 (autocast; master weights stay fp32) | auto: bf16 where the device multiplies it in
    # hardware, else fp32 (trainer.native_bf16: emulated bf16 is many times slower than fp32)
    precision: str = "fp32"
    channels_last: bool = False
    # torch.compile the training forward (inductor: a C++ compiler on CPU, Triton on CUDA); "auto": compile
    # when this machine can, else train eagerly with a one-line notice (presets where it measured faster)
    compile: bool | str = False
    eval_every_steps: int = 0  # 0: evaluate every ``eval_every_epochs`` epochs
    eval_every_epochs: int = 1
    early_stopping_patience: int = 0  # evaluations without improvement before stopping; 0: off
    log_every_steps: int = 50
    seed: int = 0
    deterministic: bool = False
    tensorboard: bool = False

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise UserError(message)

        need(self.compile in (True, False, "auto"), f"train.compile must be true, false or 'auto', got {self.compile!r}")
        need(self.lr > 0 and math.isfinite(self.lr), f"train.lr must be a number > 0, got {self.lr}; try --set train.lr=1e-3")
        need(self.muon_lr > 0 and math.isfinite(self.muon_lr),
             f"train.muon_lr must be a number > 0, got {self.muon_lr}; try --set train.muon_lr=0.02")
        need(self.batch_size > 0, f"train.batch_size must be >= 1, got {self.batch_size}; try --set train.batch_size=128")
        need(self.eval_batch_size > 0, f"train.eval_batch_size must be >= 1, got {self.eval_batch_size}")
        need(self.epochs >= 1, f"train.epochs must be >= 1, got {self.epochs}")
        need(self.max_steps >= 0 and self.time_budget >= 0, "train.max_steps and train.time_budget must be >= 0")
        need(self.accum_steps >= 1 and self.batch_size % self.accum_steps == 0,
             f"train.accum_steps={self.accum_steps} must be >= 1 and divide train.batch_size={self.batch_size}")
        need(self.optimizer in OPTIMIZERS, f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        need(self.schedule in SCHEDULES, f"train.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        need(self.precision in PRECISIONS, f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        need(self.weight_decay >= 0 and self.momentum >= 0 and self.clip_grad_norm >= 0,
             "train.weight_decay, train.momentum and train.clip_grad_norm must be >= 0")
        need(all(0 <= b < 1 for b in self.betas), f"train.betas must lie in [0, 1), got {self.betas}")
        need(0 < self.pct_start < 1 and 0 <= self.min_lr_ratio <= 1 and self.gamma > 0,
             "train.pct_start must be in (0, 1), train.min_lr_ratio in [0, 1], train.gamma > 0")
        need(self.warmup_steps >= 0 and self.step_every_epochs >= 1 and self.log_every_steps >= 1,
             "train.warmup_steps must be >= 0, train.step_every_epochs and train.log_every_steps >= 1")
        need(self.schedule != "multistep" or (len(self.milestones) > 0 and all(m > 0 for m in self.milestones)
                                               and list(self.milestones) == sorted(set(self.milestones))),
             f"train.schedule='multistep' needs train.milestones, increasing optimizer steps > 0, got "
             f"{list(self.milestones)}; e.g. --set train.milestones=[32000,48000]")
        need(self.eval_every_steps >= 0 and self.eval_every_epochs >= 1 and self.early_stopping_patience >= 0,
             "train.eval_every_steps and train.early_stopping_patience must be >= 0, train.eval_every_epochs >= 1")


@dataclass(frozen=True)
class RunConfig:
    task: str
    model: ModelConfig
    data: Any  # the task's Config dataclass
    train: TrainConfig
    preset: str = ""  # the preset (name or TOML file name) the run started from; "" for defaults

    def with_model_args(self, args: dict[str, Any]) -> RunConfig:
        return replace(self, model=replace(self.model, args={**self.model.args, **args}))


def run_config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Build and type-check a RunConfig from a plain dict (a preset, overrides or config.json)."""
    if not isinstance(data, dict):
        raise UserError("a run config must be a table with task, model, data and train")
    extra = set(data) - {"task", "model", "data", "train", "description", "preset"}
    if extra:
        raise unknown("config key", sorted(extra)[0], ["task", "model", "data", "train"])
    task_name = data.get("task", "classification")
    if not isinstance(task_name, str):
        raise UserError(f"config key 'task' must be a string, got {task_name!r}")
    task_cls = TASKS.get(task_name)
    model = from_dict(ModelConfig, data.get("model", {}), "model.")
    preset = data.get("preset", "")
    if not isinstance(preset, str):
        raise UserError(f"config key 'preset' must be a string, got {preset!r}")
    return RunConfig(
        task=task_name,
        model=model,
        data=from_dict(task_cls.Config, data.get("data", {}), "data."),
        train=from_dict(TrainConfig, data.get("train", {}), "train."),
        preset=preset,
    )


PRESETS_PACKAGE = "archzoo.presets"


def list_presets() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files(PRESETS_PACKAGE).iterdir()
                  if p.name.endswith(".toml"))


def load_preset(name: str) -> dict[str, Any]:
    """A preset by name (shipped in the package) or a path to a TOML file."""
    path = Path(name)
    if name.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise UserError(f"preset file {name} does not exist")
        text = path.read_bytes()
    elif name in list_presets():
        text = resources.files(PRESETS_PACKAGE).joinpath(f"{name}.toml").read_bytes()
    else:
        raise unknown("preset", name, list_presets())
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"preset {name} is not valid TOML: {e}") from None
    except RecursionError:  # tomllib recurses once per bracket
        raise UserError(f"preset {name} is nested too deeply to be a run config") from None


def resolve_config(preset: str | None, overrides: list[str]) -> RunConfig:
    """Preset (or defaults) + dotted overrides, type-checked."""
    data = load_preset(preset) if preset else {}
    data.pop("description", None)
    if preset:  # a file written by `archzoo config` names the preset it came from
        data.setdefault("preset", preset if preset in list_presets() else Path(preset).name)
    for text in overrides:
        key, value = parse_override(text)
        section = key.split(".")[0]
        if section not in ("task", "model", "data", "train"):
            raise _unknown_section(key, data)
        if key.startswith("model.") and key not in ("model.name", "model.impl") and not key.startswith("model.args."):
            key = "model.args." + key.removeprefix("model.")  # --set model.dropout=0.1 is a model argument
        set_in(data, key, value)
    return run_config_from_dict(data)


def _unknown_section(key: str, data: dict[str, Any]) -> UserError:
    """An override outside task/model/data/train: suggest the section that has the key (``lr`` ->
    ``train.lr``), else the closest full keys."""
    sections: list[tuple[str, type]] = [("train", TrainConfig), ("model", ModelConfig)]
    task = data.get("task", "classification")
    if isinstance(task, str) and task in TASKS:
        sections.append(("data", TASKS.get(task).Config))
    keys = [f"{s}.{k}" for s, cls in sections for k in field_types(cls)]
    same_leaf = [k for k in keys if k.split(".", 1)[1] == key.split(".")[-1]]
    if same_leaf:
        return UserError(f"unknown config key {key!r} (did you mean: {', '.join(same_leaf)}?)")
    return unknown("config key", key, keys)


def save_config(cfg: RunConfig, path: Path) -> None:
    from archzoo.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(to_dict(cfg), indent=2) + "\n")


def load_run_config(run_dir: Path) -> RunConfig:
    path = run_dir / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{run_dir} is not an archzoo run folder (no config.json); give the folder a "
                        "`archzoo train` run printed") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise UserError(f"{path} is corrupt ({type(e).__name__}: {str(e)[:80]}); the run cannot be rebuilt") from None
    return run_config_from_dict(data)
