"""Checkpoints are data (STYLE.md convention 9): safetensors weights of the unwrapped model with the
resolved config in their metadata, plus a training-state file loadable with ``weights_only=True``.

A checkpoint is one folder, ``checkpoints/step-NNNNNNNNN/`` holding ``model.safetensors`` and
``state.pt`` of the same step. Both files are written into a temporary folder first, which is renamed
into place only once both are complete and synced, so a crash at any instant (kill -9, power cut, a
full disk) leaves every ``step-*`` folder whole: the newest one is where a run resumes. The previous
checkpoint is kept until the next one is complete.

A run folder holds:
    config.json          resolved run config
    checkpoints/         the last two complete checkpoints (weights + training state of one step)
    model.safetensors    the latest checkpoint's weights (a hard link, for users and `archzoo eval`)
    best.safetensors     best weights on validation
    status.json          status, step, best and test figures (training/run_folder.py)
    metrics.jsonl / metrics.csv / curves.png / eval.json and plots
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from archzoo import __version__
from archzoo.errors import UserError
from archzoo.fileio import TEMP_SUFFIX, atomic_write_bytes, default_mode, fsync_dir, write_error

FORMAT = "archzoo-checkpoint-1"
WEIGHTS, STATE, FOLDER = "model.safetensors", "state.pt", "checkpoints"
KEEP = 2  # complete checkpoints kept: the newest, and the one before it while the next is written


def weights_bytes(model: nn.Module, config: dict[str, Any], step: int) -> bytes:
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
    return st_save(tensors, metadata=metadata)


def save_weights(model: nn.Module, path: Path, config: dict[str, Any], step: int) -> None:
    """Weights alone, atomically (``best.safetensors``)."""
    try:
        atomic_write_bytes(path, weights_bytes(model, config, step))
    except OSError as e:
        raise write_error(path, e) from None


def state_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_state(state: dict[str, Any], path: Path) -> None:
    """A training state alone, atomically."""
    try:
        atomic_write_bytes(path, state_bytes(state))
    except OSError as e:
        raise write_error(path, e) from None


def step_folder(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / FOLDER / f"step-{step:09d}"


def _step_of(folder: Path) -> int | None:
    name = folder.name
    if not name.startswith("step-") or not name[5:].isdigit():
        return None
    return int(name[5:])


def checkpoints(run_dir: Path) -> list[Path]:
    """The complete checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / FOLDER
    if not root.is_dir():
        return []
    found = [(step, p) for p in root.iterdir() if p.is_dir() and (step := _step_of(p)) is not None]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(run_dir: Path, model: nn.Module, config: dict[str, Any], step: int, state: dict[str, Any]) -> Path:
    """Write the weights and training state of ``step`` as one checkpoint folder; return it.

    A failure (a full disk) removes the partial folder and raises one line naming the file; the
    previous checkpoint is untouched.
    """
    run_dir = Path(run_dir)
    root = run_dir / FOLDER
    final = step_folder(run_dir, step)
    tmp: Path | None = None
    target = root
    try:
        root.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}.", suffix=TEMP_SUFFIX))
        os.chmod(tmp, default_mode(directory=True))
        target = final / WEIGHTS
        _write_synced(tmp / WEIGHTS, weights_bytes(model, config, step))
        target = final / STATE
        _write_synced(tmp / STATE, state_bytes(state))
        fsync_dir(tmp)
        target = final
        if final.exists():  # the same step saved twice: swap; the older checkpoint covers the gap
            old = root / f".old-{final.name}{TEMP_SUFFIX}"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        tmp = None
        fsync_dir(root)
        target = run_dir / WEIGHTS
        _link_latest_weights(run_dir, final)
    except OSError as e:
        raise write_error(target, e) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    for old_checkpoint in checkpoints(run_dir)[:-KEEP]:
        shutil.rmtree(old_checkpoint, ignore_errors=True)
    return final


def _link_latest_weights(run_dir: Path, folder: Path) -> None:
    """Point ``run_dir/model.safetensors`` at the checkpoint's weights (hard link, renamed into place;
    a copy where the file system has no hard links). Resume never reads it, so lagging is harmless."""
    link = run_dir / f".{WEIGHTS}.link{TEMP_SUFFIX}"
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    try:
        os.link(folder / WEIGHTS, link)
    except OSError:
        atomic_write_bytes(run_dir / WEIGHTS, (folder / WEIGHTS).read_bytes())
        return
    os.replace(link, run_dir / WEIGHTS)


def clean_temporaries(run_dir: Path) -> None:
    """Remove what a killed process left half-written: temporary checkpoint folders and files."""
    run_dir = Path(run_dir)
    for folder in (run_dir, run_dir / FOLDER):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()


def load_checkpoint(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Weights, their metadata and the training state of the newest complete checkpoint of a run.

    Run folders written before checkpoint folders existed (``model.safetensors`` and ``state.pt``
    side by side) load too, when their two files are of the same step.
    """
    run_dir = Path(run_dir)
    folder = latest_checkpoint(run_dir)
    legacy = folder is None and (run_dir / STATE).is_file()
    if folder is None and not legacy:
        if (run_dir / "config.json").is_file():
            raise UserError(f"{run_dir} has no checkpoint yet: it was stopped before its first save, so there is "
                            "nothing to resume; start it again with the same command and --overwrite")
        raise UserError(f"{run_dir} is not an archzoo run folder (no checkpoints); give a folder `archzoo train` wrote")
    folder = folder or run_dir
    tensors, meta = read_weights(folder / WEIGHTS)
    state = load_state(folder / STATE)
    if not isinstance(state, dict) or state.get("step") != meta["step"]:
        raise UserError(f"{folder / WEIGHTS} (step {meta['step']}) and {STATE} (step "
                        f"{state.get('step') if isinstance(state, dict) else '?'}) are from different steps "
                        "(a crash while saving?); the run cannot be resumed exactly")
    return tensors, meta, state


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
    """The weights file of a run folder (``best`` falls back to the latest), or the file itself."""
    run = Path(run)
    if run.is_file():
        return run
    if not run.is_dir():
        raise UserError(f"{run} does not exist; give a run folder written by `archzoo train`")
    if which == "best" and (run / "best.safetensors").is_file():
        return run / "best.safetensors"
    latest = latest_checkpoint(run)
    for path in ([latest / WEIGHTS] if latest else []) + [run / WEIGHTS]:
        if path.is_file():
            return path
    raise UserError(f"{run} has no model weights (no checkpoint yet); is it an archzoo run folder?")


def load_model(run: Path, which: str = "best") -> tuple[nn.Module, Any]:
    """Rebuild a model from a checkpoint with no flags: its config travels in the metadata."""
    from archzoo.models import build_model
    from archzoo.training.config import run_config_from_dict

    tensors, meta = read_weights(weights_path(run, which))
    cfg = run_config_from_dict(meta["config"])
    model = build_model(cfg.model)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise UserError(f"checkpoint weights do not fit model {cfg.model.name!r}: "
                        f"{str(e).splitlines()[0]}; the file is corrupt or was edited") from None
    model.eval()
    return model, cfg
