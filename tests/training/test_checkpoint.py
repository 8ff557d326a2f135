"""Checkpoints are data (training/checkpoint.py): safetensors weights with the resolved config, a
weights-only training state, atomic writes, and one-line errors for anything foreign or torn."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from archzoo.config import to_dict
from archzoo.errors import UserError
from archzoo.models import create_model
from archzoo.training import checkpoint
from archzoo.training.config import RunConfig, resolve_config


def mlp_config() -> RunConfig:
    cfg = resolve_config("quickstart", ["model.name='mlp'", "model.args.hidden_sizes=[16, 8]", "model.args.dropout=0.5"])
    return cfg.with_model_args({"in_channels": 1, "image_size": 28, "num_classes": 10})


def saved_model(path: Path, step: int = 7) -> tuple[nn.Module, RunConfig]:
    cfg = mlp_config()
    torch.manual_seed(1)
    model = create_model(cfg.model.name, **cfg.model.args)
    checkpoint.save_weights(model, path, to_dict(cfg), step)
    return model, cfg


def assert_one_line_error(excinfo: pytest.ExceptionInfo[UserError], *words: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for word in words:
        assert word in message


# ----------------------------------------------------------------------------------- round trip


def test_weights_round_trip(tmp_path: Path) -> None:
    model, cfg = saved_model(tmp_path / "w.safetensors", step=7)
    tensors, meta = checkpoint.read_weights(tmp_path / "w.safetensors")
    assert meta == {"config": to_dict(cfg), "step": 7}
    state = model.state_dict()
    assert tensors.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(tensors[key], value) and tensors[key].dtype == value.dtype


def test_load_model_rebuilds_the_model_with_no_flags(tmp_path: Path) -> None:
    model, cfg = saved_model(tmp_path / "w.safetensors")
    loaded, loaded_cfg = checkpoint.load_model(tmp_path / "w.safetensors")
    assert loaded_cfg == cfg
    assert not loaded.training  # ready for inference: dropout off
    model.eval()
    (x,) = model.example_inputs(5)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # from a run folder: best.safetensors first, model.safetensors otherwise
    checkpoint.save_weights(model, tmp_path / "model.safetensors", to_dict(cfg), 9)
    assert checkpoint.weights_path(tmp_path) == tmp_path / "model.safetensors"
    (tmp_path / "w.safetensors").rename(tmp_path / "best.safetensors")
    assert checkpoint.weights_path(tmp_path) == tmp_path / "best.safetensors"
    assert checkpoint.weights_path(tmp_path, "last") == tmp_path / "model.safetensors"


def test_channels_last_and_tied_weights_are_saved(tmp_path: Path) -> None:
    """Saved tensors are plain contiguous copies; a weight shared by two modules is stored under both
    names (safetensors refuses shared memory) and loads back strictly."""

    def tied() -> nn.Module:
        m = nn.Sequential(nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1))
        m[1].weight = m[0].weight
        return m.to(memory_format=torch.channels_last)

    model = tied()
    checkpoint.save_weights(model, tmp_path / "t.safetensors", {}, 0)
    tensors, _ = checkpoint.read_weights(tmp_path / "t.safetensors")
    assert set(tensors) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    fresh = tied()
    fresh.load_state_dict(tensors, strict=True)
    assert torch.equal(fresh[1].weight, model[0].weight) and fresh[1].weight is fresh[0].weight


def test_state_round_trip(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "step": 3, "best": {"accuracy": 0.5}, "rng": {"torch": torch.get_rng_state()}}
    checkpoint.save_state(state, tmp_path / "state.pt")
    loaded = checkpoint.load_state(tmp_path / "state.pt")
    assert loaded["step"] == 3 and loaded["best"] == {"accuracy": 0.5}
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


# ------------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("fail_in", ["fsync", "replace"])
@pytest.mark.parametrize("what", ["weights", "state"])
def test_a_crash_while_writing_leaves_the_old_file_intact(fail_in: str, what: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / ("model.safetensors" if what == "weights" else "state.pt")
    model, cfg = saved_model(tmp_path / "model.safetensors", step=1)
    checkpoint.save_state({"step": 1}, tmp_path / "state.pt")
    before = path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError(28, "No space left on device")  # after the new bytes went out, before the rename

    monkeypatch.setattr(os, fail_in, crash)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    with pytest.raises(UserError, match=f"cannot write {path}: No space left on device; free some space") as info:
        if what == "weights":
            checkpoint.save_weights(model, path, to_dict(cfg), step=2)
        else:
            checkpoint.save_state({"step": 2, "big": torch.zeros(10_000)}, path)
    monkeypatch.undo()
    assert_one_line_error(info, path.name)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "state.pt"]  # no temp file left
    if what == "weights":
        assert checkpoint.read_weights(path)[1]["step"] == 1
    else:
        assert checkpoint.load_state(path) == {"step": 1}


@pytest.mark.parametrize("fail_in", ["fsync", "rename"])
def test_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(fail_in: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights and state commit together: a failure at any point leaves the last complete checkpoint
    loadable, no partial folder, and one line naming the file."""
    model, cfg = saved_model(tmp_path / "first.safetensors", step=1)
    checkpoint.save_checkpoint(tmp_path, model, to_dict(cfg), 1, {"step": 1})
    real = getattr(os, fail_in)
    calls = []

    def crash(*args: object, **kwargs: object) -> object:
        calls.append(args)
        if fail_in != "fsync" or len(calls) > 1:  # the weights' fsync passes, the state's fails
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(os, fail_in, crash)
    with pytest.raises(UserError, match="No space left on device") as info:
        checkpoint.save_checkpoint(tmp_path, model, to_dict(cfg), 2, {"step": 2})
    monkeypatch.undo()
    assert_one_line_error(info, "step-000000002")
    tensors, meta, state = checkpoint.load_checkpoint(tmp_path)
    assert meta["step"] == state["step"] == 1
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


def test_without_hard_links_the_latest_weights_are_copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, cfg = saved_model(tmp_path / "first.safetensors", step=0)

    def no_links(*args: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    checkpoint.save_checkpoint(tmp_path, model, to_dict(cfg), 2, {"step": 2})
    latest = checkpoint.latest_checkpoint(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == (latest / "model.safetensors").read_bytes()
    assert not (tmp_path / "model.safetensors").samefile(latest / "model.safetensors")


def test_checkpoints_keep_the_last_two_and_link_the_latest_weights(tmp_path: Path) -> None:
    model, cfg = saved_model(tmp_path / "first.safetensors", step=0)
    for step in (1, 2, 3, 3):  # the same step twice replaces it
        checkpoint.save_checkpoint(tmp_path, model, to_dict(cfg), step, {"step": step})
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["step-000000002", "step-000000003"]
    latest = checkpoint.latest_checkpoint(tmp_path)
    assert (tmp_path / "model.safetensors").samefile(latest / "model.safetensors")
    assert checkpoint.weights_path(tmp_path, "last") == latest / "model.safetensors"
    assert oct((latest / "state.pt").stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
    assert oct(latest.stat().st_mode & 0o777) == oct(0o777 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_temporaries_of_a_killed_save_are_swept(tmp_path: Path) -> None:
    model, cfg = saved_model(tmp_path / "first.safetensors", step=0)
    checkpoint.save_checkpoint(tmp_path, model, to_dict(cfg), 1, {"step": 1})
    (tmp_path / "checkpoints" / ".step-000000002.abc.tmp").mkdir()  # what kill -9 mid-save leaves
    (tmp_path / ".metrics.csv.xyz.tmp").write_text("half")
    (tmp_path / "notes.tmp").write_text("the user's own file")  # not ours: not hidden
    checkpoint.clean_temporaries(tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000000001"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "first.safetensors", "model.safetensors",
                                                           "notes.tmp"]


def test_an_interrupted_write_leaves_the_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (KeyboardInterrupt) in the middle of writing the bytes."""
    import archzoo.fileio as fileio

    path = tmp_path / "model.safetensors"
    model, cfg = saved_model(path, step=1)
    before = path.read_bytes()
    real_writer = fileio.atomic_writer

    class HalfWriter:
        def __init__(self, f: object) -> None:
            self.f = f

        def write(self, data: bytes) -> None:
            self.f.write(data[: len(data) // 2])  # type: ignore[attr-defined]
            raise KeyboardInterrupt

    def writer(p: Path):  # noqa: ANN202
        class Context:
            def __enter__(self) -> HalfWriter:
                self.inner = real_writer(p)
                return HalfWriter(self.inner.__enter__())

            def __exit__(self, *exc: object) -> bool | None:
                return self.inner.__exit__(*exc)

        return Context()

    monkeypatch.setattr(fileio, "atomic_writer", writer)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_weights(model, path, to_dict(cfg), step=2)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


# ---------------------------------------------------------------------------- refusing input


class Payload:
    executed = False

    def __reduce__(self) -> tuple:
        return (_run_payload, ())


def _run_payload() -> None:
    Payload.executed = True


def test_load_state_refuses_code_in_a_pickle(tmp_path: Path) -> None:
    torch.save({"step": 1, "evil": Payload()}, tmp_path / "state.pt")
    with pytest.raises(UserError) as info:
        checkpoint.load_state(tmp_path / "state.pt")
    assert_one_line_error(info, "state.pt")
    assert not Payload.executed


def test_load_state_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no training state"):
        checkpoint.load_state(tmp_path / "state.pt")
    checkpoint.save_state({"step": 1, "t": torch.zeros(100)}, tmp_path / "state.pt")
    raw = (tmp_path / "state.pt").read_bytes()
    (tmp_path / "state.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError) as info:
        checkpoint.load_state(str(tmp_path / "state.pt"))  # a str path works as well
    assert_one_line_error(info, "state.pt")


def test_plain_safetensors_file_is_not_an_archzoo_checkpoint(tmp_path: Path) -> None:
    save_file({"weight": torch.zeros(2, 2)}, tmp_path / "foreign.safetensors")
    with pytest.raises(UserError) as info:
        checkpoint.read_weights(tmp_path / "foreign.safetensors")
    assert_one_line_error(info, "not an archzoo checkpoint")
    with pytest.raises(UserError, match="not an archzoo checkpoint"):
        checkpoint.load_model(tmp_path / "foreign.safetensors")
    save_file({"weight": torch.zeros(2, 2)}, tmp_path / "other.safetensors", metadata={"format": "pt"})
    with pytest.raises(UserError, match="not an archzoo checkpoint"):
        checkpoint.read_weights(tmp_path / "other.safetensors")


@pytest.mark.parametrize("keep", [0, 4, 8, 40, "half", "last byte"])
def test_truncated_checkpoint_is_refused(keep: int | str, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    saved_model(path)
    raw = path.read_bytes()
    cut = len(raw) // 2 if keep == "half" else len(raw) - 1 if keep == "last byte" else keep
    path.write_bytes(raw[:cut])
    with pytest.raises(UserError) as info:
        checkpoint.read_weights(path)
    assert_one_line_error(info, str(path))
    with pytest.raises(UserError):
        checkpoint.load_model(tmp_path)


def test_corrupt_metadata_and_mismatched_weights_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(1)}, path, metadata={"format": checkpoint.FORMAT, "config": "{not json", "step": "1"})
    with pytest.raises(UserError) as info:
        checkpoint.read_weights(path)
    assert_one_line_error(info, "metadata")
    # weights that do not fit the model their config names
    cfg = mlp_config()
    checkpoint.save_weights(nn.Linear(2, 2), path, to_dict(cfg), 1)
    with pytest.raises(UserError) as info:
        checkpoint.load_model(path)
    assert_one_line_error(info, "do not fit model 'mlp'")


def test_missing_run_folder_or_weights(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        checkpoint.weights_path(tmp_path / "nope")
    with pytest.raises(UserError, match="no model weights"):
        checkpoint.weights_path(tmp_path)
    with pytest.raises(UserError, match="cannot read checkpoint"):
        checkpoint.read_weights(tmp_path / "nope.safetensors")
