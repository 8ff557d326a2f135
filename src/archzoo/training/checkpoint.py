"""Checkpoints are data (STYLE.md convention 9): safetensors weights of the unwrapped model with the
resolved config in their metadata, plus a training-state file loadable with ``weights_only=True``.
Every write is atomic, so a crash or Ctrl-C never leaves a torn checkpoint.

A run folder holds:
    config.json         resolved run config
    model.safetensors   latest weights       best.safetensors   best weights on validation
    state.pt            optimizer, scheduler, step, epoch, RNG states, best metric
    metrics.jsonl / metrics.csv / curves.png / eval.json and plots
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from archzoo import __version__
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_bytes

FORMAT = "archzoo-checkpoint-1"


def save_weights(model: nn.Module, path: Path, config: dict[str, Any], step: int) -> None:
    """The model's state dict as safetensors with the resolved config and step in the metadata.

    Tied parameters (one tensor under two names) are stored once per name, so ``load_state_dict``
    with ``strict=True`` finds every key; safetensors refuses tensors that share memory.
    """
    tensors, seen = {}, set()
    for k, v in model.state_dict().items():
        v = v.detach().contiguous().cpu()
        if v.numel():
            if v.untyped_storage().data_ptr() in seen:
                v = v.clone()
            seen.add(v.untyped_storage().data_ptr())
        tensors[k] = v
    metadata = {"format": FORMAT, "archzoo_version": __version__, "step": str(step), "config": json.dumps(config)}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and parsed metadata ({"config": dict, "step": int}) of an archzoo weights file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"cannot read checkpoint {path}: {e.strerror}") from None
    try:
        tensors = st_load(raw)
        metadata = _safetensors_metadata(raw)
    except (SafetensorError, ValueError, OverflowError, UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path} is not a valid safetensors file (corrupt or truncated); "
                        "retrain, or use an intact checkpoint") from None
    if metadata.get("format") != FORMAT:
        raise UserError(f"{path} is not an archzoo checkpoint (no archzoo metadata); "
                        "give a model.safetensors or best.safetensors written by `archzoo train`")
    try:
        parsed = {"config": json.loads(metadata["config"]), "step": int(metadata["step"])}
    except (KeyError, ValueError, json.JSONDecodeError):
        raise UserError(f"{path}: archzoo metadata is corrupt; use an intact checkpoint") from None
    return tensors, parsed


def _safetensors_metadata(raw: bytes) -> dict[str, str]:
    """The ``__metadata__`` table of a safetensors header (8-byte little-endian length, then JSON)."""
    if len(raw) < 8:
        raise ValueError("short file")
    n = int.from_bytes(raw[:8], "little")
    if n > len(raw) - 8:
        raise ValueError("header longer than file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    return meta if isinstance(meta, dict) else {}


def save_state(state: dict[str, Any], path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: Path) -> dict[str, Any]:
    """Training state, loaded without executing code (``weights_only=True``)."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path.parent} has no training state (state.pt); it cannot be resumed") from None
    except Exception as e:  # torch raises many types for corrupt or foreign files
        raise UserError(f"{path} is not a loadable archzoo training state ({type(e).__name__}); "
                        "it is corrupt or not archzoo's") from None


def weights_path(run: Path, which: str = "best") -> Path:
    """The weights file of a run folder (``best`` falls back to ``last``), or the file itself."""
    run = Path(run)
    if run.is_file():
        return run
    if not run.is_dir():
        raise UserError(f"{run} does not exist; give a run folder written by `archzoo train`")
    names = ["best.safetensors", "model.safetensors"] if which == "best" else ["model.safetensors"]
    for name in names:
        if (run / name).is_file():
            return run / name
    raise UserError(f"{run} has no model weights (model.safetensors); is it an archzoo run folder?")


def load_model(run: Path, which: str = "best") -> tuple[nn.Module, Any]:
    """Rebuild a model from a checkpoint with no flags: its config travels in the metadata."""
    from archzoo.models import create_model
    from archzoo.training.config import run_config_from_dict

    tensors, meta = read_weights(weights_path(run, which))
    cfg = run_config_from_dict(meta["config"])
    model = create_model(cfg.model.name, **cfg.model.args)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise UserError(f"checkpoint weights do not fit model {cfg.model.name!r}: "
                        f"{str(e).splitlines()[0]}; the file is corrupt or was edited") from None
    model.eval()
    return model, cfg
