"""The Python API: build, list, train and load models; a loaded run offers its task's verbs.

>>> import archzoo
>>> "simple_cnn" in archzoo.list_models()
True
>>> model = archzoo.create_model("simple_cnn")
>>> model(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
>>> "mnist-simple_cnn" in archzoo.list_presets()
True

A run trained by ``archzoo.train`` or ``archzoo train`` loads with ``archzoo.load(RUN)``: the returned
``Run`` holds the model and its config, evaluates it on the test set, and does what its task does:
``predict`` (image and sentence classifiers), ``generate`` and ``sample`` (language models), ``sample``
(GANs), ``translate`` and ``forecast``. The command-line tool is a thin layer over the same calls.

>>> run = archzoo.train("quickstart", model="mlp", max_steps=30, out=tmp / "run", progress=False,
...                     data={"dataset": "mnist-small"})
>>> run.result.status, run.config.model.name
('max_steps', 'mlp')
>>> run.predict(torch.zeros(1, 28, 28)).labels[0] in [str(d) for d in range(10)]
True
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archzoo.errors import UserError, unknown


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """A freshly initialised registered model (``list_models()``) with builder arguments ``kwargs``.

    >>> archzoo.create_model("lstm_lm", hidden_size=32).rnn.hidden_size
    32
    """
    from archzoo import models

    return models.create_model(name, **kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob ``pattern``.

    >>> archzoo.list_models("resnet*")
    ['resnet18', 'resnet20', 'resnet56']
    """
    from archzoo import models

    return models.list_models(pattern)


def list_presets(pattern: str = "*") -> dict[str, str]:
    """Preset names matching ``pattern``, each with its description (the runs ``archzoo train`` knows).

    >>> archzoo.list_presets("mnist-time-to-99")["mnist-time-to-99"][:40]
    'Fastest route to 99% MNIST test accuracy'
    """
    import fnmatch

    from archzoo.training.config import list_presets as names
    from archzoo.training.config import load_preset

    return {name: str(load_preset(name).get("description", "")) for name in names() if fnmatch.fnmatch(name, pattern)}


def toml_literal(value: Any) -> str:
    """A Python value as a TOML literal, for overrides given as keyword arguments."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) and not math.isfinite(value) else repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_literal(v)}" for k, v in value.items()) + " }"
    raise UserError(f"cannot use a {type(value).__name__} as a config value; give numbers, strings, booleans or lists")


def override_strings(preset: str | None, overrides: dict[str, Any]) -> list[str]:
    """Keyword overrides as the CLI's ``--set`` strings: ``train={"lr": 1e-3}`` or ``data={...}`` set a
    section's fields; a bare field name (``epochs=2``, ``augment="none"``) goes to the one section that
    has it, the run's model arguments included; ``model="mlp"`` names the model."""
    from archzoo.config import field_types
    from archzoo.models import model_arg_types
    from archzoo.tasks import TASKS
    from archzoo.training.config import TrainConfig, load_preset

    base = load_preset(preset) if preset else {}
    task = overrides.get("task", base.get("task", "classification"))
    model = overrides.get("model") if isinstance(overrides.get("model"), str) else base.get("model", {}).get("name", "simple_cnn")
    sections = {"train": set(field_types(TrainConfig)), "data": set(field_types(TASKS.get(task).Config)),
                "model.args": set(model_arg_types(model))}
    out = []
    for key, value in overrides.items():
        if key in ("train", "data") and isinstance(value, dict):
            out += [f"{key}.{k}={toml_literal(v)}" for k, v in value.items()]
        elif key == "model" and isinstance(value, dict):
            out += [f"model.args.{k}={toml_literal(v)}" for k, v in value.items()]
        elif key in ("task", "model"):
            out.append(f"{key if key == 'task' else 'model.name'}={toml_literal(value)}")
        else:
            homes = [section for section, keys in sections.items() if key in keys]
            if len(homes) != 1:
                if homes:
                    raise UserError(f"{key!r} is a field of {' and '.join(homes)}; give it as "
                                    f"{homes[0].split('.')[0]}={{{key!r}: ...}}")
                raise unknown("config key", key, sorted(k for keys in sections.values() for k in keys))
            out.append(f"{homes[0]}.{key}={toml_literal(value)}")
    return out


def train(preset: str | None = None, *, out: str | Path | None = None, data_dir: str | Path | None = None,
          device: str = "auto", progress: bool = True, verbose: bool = False, overwrite: bool = False,
          **overrides: Any) -> Run:
    """Train a preset (``list_presets()``; or the defaults) with overrides into a run folder, as
    ``archzoo train`` does, and return the trained ``Run`` (best validation weights).

    Overrides are keyword arguments: ``epochs=2``, ``max_steps=100``, ``lr=3e-3``, ``train={"lr": 3e-3}``,
    ``data={"augment": "none"}``, ``model="mlp"``, ``model={"dropout": 0.1}``. ``out`` defaults to a new
    folder ``runs/<preset>-<date>-<time>``; a folder holding another run is refused unless ``overwrite``.
    The training result is ``run.result``; ``archzoo train --resume RUN`` continues an interrupted run.

    >>> archzoo.train("mnist-fast", max_steps=5, lr=-1.0)
    Traceback (most recent call last):
    archzoo.errors.UserError: train.lr must be a number > 0, got -1.0; try --set train.lr=1e-3
    """
    from archzoo.training.config import resolve_config
    from archzoo.training.run_folder import check_new, new_run_dir
    from archzoo.training.trainer import Trainer

    cfg = resolve_config(preset, override_strings(preset, overrides))
    if out is not None:
        run_dir = Path(out)
        check_new(run_dir, overwrite)
    else:
        run_dir = new_run_dir(Path("runs"), Path(preset).stem if preset else cfg.model.name)
    trainer = Trainer(cfg, run_dir, data_dir=data_dir, device=device, progress=progress, verbose=verbose,
                      overwrite=overwrite)
    result = trainer.fit()
    run = load(run_dir, which="best" if result.best else "last", device=device, data_dir=data_dir)
    run.result = result
    return run


def load(run_dir: str | Path, *, which: str = "best", device: str = "auto", dtype: str = "fp32",
         quantize: str | None = None, data_dir: str | Path | None = None) -> Run:
    """A trained run: the ``best`` validation weights (else the last) or the ``last`` ones, rebuilt from
    the checkpoint alone, on ``device``, computing in ``dtype`` (fp32, or bf16 autocast) or with its
    Linear/LSTM/GRU layers quantized to ``int8`` (CPU).

    >>> run = archzoo.load(tmp / "run", quantize="int8")
    >>> run.verbs
    ('predict', 'evaluate', 'export')
    >>> run.predict(torch.zeros(1, 28, 28)).probs.shape
    torch.Size([1, 10])
    """
    from archzoo.deploy.precision import check_dtype, check_quantize, quantize_int8
    from archzoo.training.checkpoint import load_model, read_weights, weights_path
    from archzoo.training.distributed import resolve_device

    if which not in ("best", "last"):
        raise UserError(f"which must be 'best' or 'last', got {which!r}")
    run_dir = Path(run_dir)
    check_dtype(dtype)
    check_quantize(quantize)
    path = weights_path(run_dir, which)
    model, cfg = load_model(run_dir, which)
    step = read_weights(path)[1]["step"]
    target = resolve_device(device)
    if quantize:
        if target.type != "cpu":
            raise UserError("int8 quantization runs on the CPU; load with device='cpu'")
        model = quantize_int8(model)
    return Run(run_dir if run_dir.is_dir() else run_dir.parent, model.to(target).eval(), cfg, path.name, step,
               target, dtype, quantize, data_dir)


class Run:
    """A trained model with its config and its task: ``evaluate``, ``export`` and the task's verbs
    (``verbs``), each returning a result that knows how to print (``lines``) and save itself.

    Attributes: ``model`` (the ``nn.Module``, eval mode), ``config`` (the resolved run config),
    ``run_dir``, ``weights`` (the weights file's name) and ``step`` (the step it was saved at).
    """

    def __init__(self, run_dir: Path, model: nn.Module, config: Any, weights: str, step: int, device: torch.device,
                 dtype: str, quantize: str | None, data_dir: str | Path | None):
        self.run_dir, self.model, self.config = run_dir, model, config
        self.weights, self.step, self.device = weights, step, device
        self.dtype, self.quantize, self.data_dir = dtype, quantize, data_dir
        self.result: Any = None  # the TrainResult when the run came from archzoo.train
        self._task: Any = None

    def __repr__(self) -> str:
        precision = self.dtype + (f", {self.quantize}" if self.quantize else "")
        return (f"Run({str(self.run_dir)!r}: {self.config.model.name} for {self.config.task} on "
                f"{self.config.data.dataset}, {self.weights} step {self.step}, {precision}, {self.device})")

    @property
    def task(self) -> Any:
        """The run's task (built on first use: some tasks read their dataset, a forecaster's scaler)."""
        if self._task is None:
            from archzoo.tasks import TASKS

            self._task = TASKS.get(self.config.task)(self.config.data, self.data_dir)
            self._task.to(self.device)
        return self._task

    @property
    def verbs(self) -> tuple[str, ...]:
        """What this run does: its task's verbs, then evaluate and export."""
        from archzoo.tasks import TASKS

        return (*TASKS.get(self.config.task).verbs, "evaluate", "export")

    def accepts(self, verb: str) -> set[str]:
        """The options a verb takes (for a caller that passes only those which apply)."""
        self._check_verb(verb)
        method = getattr(self.task, verb)
        return {p for p in list(inspect.signature(method).parameters)[1:]}

    def _check_verb(self, verb: str) -> None:
        if verb not in self.verbs[:-2]:
            raise UserError(f"{self.run_dir} is a {self.config.task} run ({self.config.model.name}): it can "
                            f"{', '.join(self.verbs)}, not {verb}")

    def _call(self, verb: str, *args: Any, **options: Any) -> Any:
        from archzoo.deploy.precision import inference_autocast

        self._check_verb(verb)
        method = getattr(self.task, verb)
        names = list(inspect.signature(method).parameters)[1 + len(args):]
        bad = sorted(set(options) - set(names))
        if bad:
            raise UserError(f"{verb} of a {self.config.task} run takes no {', '.join(bad)}; its options: "
                            f"{', '.join(names)}")
        options = {**self.report_defaults().get(verb, {}), **{k: v for k, v in options.items() if v is not None}}
        with torch.no_grad(), inference_autocast(self.device, self.dtype):
            return method(self.model, *args, **options)

    def report_defaults(self) -> dict[str, dict[str, Any]]:
        """Verb options that the run's test report settled (e.g. a translation run's length penalty)."""
        try:
            report = json.loads((self.run_dir / "eval.json").read_text())
        except (OSError, ValueError):
            return {}
        return self.task.verb_defaults(report) if isinstance(report, dict) else {}

    # -- the task's verbs ----------------------------------------------------------------------------
    def predict(self, inputs: Any, **options: Any) -> Any:
        """Classify images (file paths, PIL images, arrays or tensors) or sentences; ``.labels``, ``.probs``."""
        return self._call("predict", inputs, **options)

    def generate(self, prompt: str = "", **options: Any) -> str:
        """Continue ``prompt`` (tokens, temperature, top_k, top_p, seed, stream)."""
        return self._call("generate", prompt, **options)

    def sample(self, n: int | None = None, **options: Any) -> Any:
        """``n`` samples: texts or names from a language model, images from a GAN."""
        return self._call("sample", **({} if n is None else {"n": n}), **options)

    def translate(self, sentences: str | list[str], **options: Any) -> Any:
        """Translate sentences (beam, length_penalty, attention); ``.texts``."""
        return self._call("translate", sentences, **options)

    def forecast(self, series: Any = None, horizon: int | None = None, **options: Any) -> Any:
        """Forecast after ``series`` (rows (N, C)), or a window of the run's data; ``.forecast``."""
        return self._call("forecast", series, horizon, **options)

    def transcribe(self, files: str | Path | list[str | Path], **options: Any) -> Any:
        """The digits spoken in WAV files (top: how many readings with probabilities); ``.texts``."""
        return self._call("transcribe", files, **options)

    # -- every run -------------------------------------------------------------------------------------
    def evaluate(self, batch_size: int | None = None, out_dir: str | Path | None = None) -> dict[str, Any]:
        """The task's full test report with its plots, written to ``out_dir`` (default: the run folder);
        ``eval.json`` records which weights, step and precision produced it. The files written are
        ``self.written``."""
        from archzoo.deploy.precision import inference_autocast
        from archzoo.fileio import atomic_write_text, ensure_writable_dir
        from archzoo.tasks.base import check_count

        batch_size = self.config.train.eval_batch_size if batch_size is None else batch_size
        check_count("--batch-size", batch_size, 1, 1 << 24, "use a smaller batch")
        out = ensure_writable_dir(self.run_dir if out_dir is None else out_dir,
                                  "copy the run folder somewhere writable and evaluate the copy")
        before = {p: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
        with torch.no_grad(), inference_autocast(self.device, self.dtype):
            result = self.task.report(self.model, out, batch_size)
        result = {**result, "weights": self.weights, "step": self.step, "dtype": self.dtype, "quantize": self.quantize}
        atomic_write_text(out / "eval.json", json.dumps(result, indent=2) + "\n")
        self.written = sorted(p for p in out.iterdir() if p.is_file() and before.get(p) != p.stat().st_mtime_ns)
        return result

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        """Plain-text lines of an ``evaluate`` result."""
        return self.task.summary_lines(result)

    def export(self, format: str = "onnx", out: str | Path | None = None, dtype: str = "fp32") -> list[Path]:
        """Write the model as ONNX or a ``torch.export`` program (deploy/export.py); returns the files
        (a translation model writes its encoder and its decoder step)."""
        from archzoo.deploy.export import FORMATS, check_format, export_model

        if self.quantize:
            raise UserError("export the fp32 model: an int8-quantized one is not exportable; load it without quantize")
        check_format(format)
        path = Path(out) if out is not None else self.run_dir / f"model{FORMATS[format]}"
        return export_model(self.model, self.config.model.name, path, format, dtype)
