"""Exact resume (training/trainer.py, checkpoint.py, seed.py): a run interrupted at any step and
resumed ends with the weights of an uninterrupted run, bit for bit; and the real Ctrl-C path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from archzoo.cli.main import main
from archzoo.errors import UserError
from archzoo.training import checkpoint
from archzoo.training.config import RunConfig, load_run_config, resolve_config, save_config
from archzoo.training.trainer import Trainer
from helpers import small_run_overrides

REPO = Path(__file__).resolve().parents[2]


def small_config(**overrides: object) -> RunConfig:
    """mnist-small with a 600-image training split: 9 steps of batch 64 per epoch, so 24 steps cross
    two epoch ends (evaluations, best checkpoint) and the shuffles of three epochs."""
    base: dict[str, object] = {"model.name": "mlp", "model.args.hidden_sizes": [32], "model.args.dropout": 0.3,
                               "data.val_size": 9400, "data.augment": "shift", "train.max_steps": 24}
    base.update(overrides)
    return resolve_config("quickstart", small_run_overrides(**base))


def train(cfg: RunConfig, run_dir: Path, stop_at: int | None = None) -> Trainer:
    def hook(trainer: Trainer) -> None:
        if trainer.step == stop_at:
            trainer.stop_reason = "interrupted"  # what Ctrl-C does

    trainer = Trainer(cfg, run_dir, progress=False, verbose=False, on_step=hook)
    result = trainer.fit()
    assert result.status == ("interrupted" if stop_at else "max_steps")
    return trainer


def weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.read_weights(path)[0]


def val_records(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["split"] == "val"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{a.name}: {key} differs after resume"


_baselines: dict[str, Path] = {}


def baseline(cfg: RunConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run of ``cfg`` (shared by the cases that use the same config)."""
    key = repr(cfg)
    if key not in _baselines:
        run_dir = tmp_path_factory.mktemp("uninterrupted")
        train(cfg, run_dir)
        _baselines[key] = run_dir
    return _baselines[key]


@pytest.mark.parametrize(("stop_at", "accum_steps"), [
    (13, 1),  # mid-epoch: the shuffle, augmentation and dropout RNG must all pick up where they were
    (18, 1),  # exactly at an evaluation (end of epoch 2): that evaluation still counts
    (13, 2),  # gradient accumulation
])
def test_resumed_run_equals_uninterrupted_run(stop_at: int, accum_steps: int, tmp_path: Path,
                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    cfg = small_config(**{"train.accum_steps": accum_steps})
    full = baseline(cfg, tmp_path_factory)

    run_dir = tmp_path / "run"
    train(cfg, run_dir, stop_at=stop_at)
    assert checkpoint.load_checkpoint(run_dir)[2]["step"] == stop_at
    resumed = Trainer(load_run_config(run_dir), run_dir, resume=True, progress=False, verbose=False)
    assert resumed.step == stop_at
    result = resumed.fit()
    assert result.status == "max_steps" and result.step == 24

    assert_same_weights(run_dir / "model.safetensors", full / "model.safetensors")
    assert_same_weights(run_dir / "best.safetensors", full / "best.safetensors")
    # the same evaluations at the same steps with the same figures, none duplicated or lost
    assert val_records(run_dir) == val_records(full)
    assert [r["step"] for r in val_records(full)] == [9, 18, 24]
    assert json.loads((run_dir / "eval.json").read_text()) == json.loads((full / "eval.json").read_text())


def test_dropout_rng_is_part_of_the_state(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Without the RNG state the resumed run draws other dropout masks: the exactness above is not luck."""
    cfg = small_config()
    full = baseline(cfg, tmp_path_factory)
    run_dir = tmp_path / "run"
    train(cfg, run_dir, stop_at=13)
    state_file = checkpoint.latest_checkpoint(run_dir) / "state.pt"
    state = checkpoint.load_state(state_file)
    state["rng"]["torch"] = torch.manual_seed(123).get_state()
    checkpoint.save_state(state, state_file)
    Trainer(load_run_config(run_dir), run_dir, resume=True, progress=False, verbose=False).fit()
    a, b = weights(run_dir / "model.safetensors"), weights(full / "model.safetensors")
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_weights_and_state_from_different_steps(tmp_path: Path) -> None:
    cfg = small_config(**{"train.max_steps": 6})
    trainer = train(cfg, tmp_path, stop_at=4)
    # a crash between writing the weights and the state leaves the two files at different steps
    checkpoint.save_weights(trainer.model, checkpoint.latest_checkpoint(tmp_path) / "model.safetensors", json.loads(
        (tmp_path / "config.json").read_text()), step=3)
    with pytest.raises(UserError, match="different steps"):
        Trainer(load_run_config(tmp_path), tmp_path, resume=True, progress=False, verbose=False)


def test_resume_drops_metrics_past_the_checkpoint_and_torn_lines(tmp_path: Path) -> None:
    cfg = small_config(**{"train.max_steps": 8, "train.log_every_steps": 2})
    train(cfg, tmp_path, stop_at=4)
    with open(tmp_path / "metrics.jsonl", "a") as f:  # a record written after the save, then a crash mid-line
        f.write('{"step": 6, "epoch": 0, "split": "train", "loss": 1.0}\n{"step": 7, "spl')
    result = Trainer(load_run_config(tmp_path), tmp_path, resume=True, progress=False, verbose=False).fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in records] == [(2, "train"), (4, "train"), (6, "train"), (8, "train"),
                                                          (8, "val")]
    assert result.history == records


def test_resume_of_a_folder_without_checkpoint_is_a_user_error(tmp_path: Path) -> None:
    save_config(small_config(), tmp_path / "config.json")
    with pytest.raises(UserError, match="no checkpoint yet.*stopped before its first save"):
        Trainer(load_run_config(tmp_path), tmp_path, resume=True, progress=False, verbose=False)


# ------------------------------------------------------------------------------------------- CLI


def cli_args(out: Path, max_steps: int) -> list[str]:
    sets = small_run_overrides(**{"model.name": "mlp", "model.args.hidden_sizes": [32], "model.args.dropout": 0.0,
                                  "train.schedule": "constant"})
    return ["train", "quickstart", *[a for s in sets for a in ("--set", s)], "--max-steps", str(max_steps),
            "--out", str(out), "--no-progress", "--device", "cpu"]


def test_cli_resume_continues_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(cli_args(tmp_path / "full", 12)) == 0
    assert main(cli_args(tmp_path / "part", 6)) == 0
    # a finished run can be continued with a higher limit; with a constant schedule it is the same run
    assert main(["train", "--resume", str(tmp_path / "part"), "--max-steps", "12", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "stopped: max_steps after 12 steps" in out
    assert_same_weights(tmp_path / "part" / "model.safetensors", tmp_path / "full" / "model.safetensors")
    assert load_run_config(tmp_path / "part").train.max_steps == 12


@pytest.mark.parametrize("extra", [["--set", "train.lr=1"], ["--epochs", "2"], ["quickstart"], ["--out", "x"]])
def test_cli_resume_refuses_other_flags(extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--resume", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--resume" in err and "Traceback" not in err


def test_sigint_in_process_stops_after_the_step(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)

    def ctrl_c(trainer: Trainer) -> None:
        if trainer.step == 3:
            signal.raise_signal(signal.SIGINT)  # the handler runs before this returns, at exactly step 3

    trainer = Trainer(small_config(), tmp_path, progress=False, verbose=False, on_step=ctrl_c)
    result = trainer.fit()
    assert result.status == "interrupted" and result.step == 3
    assert checkpoint.load_checkpoint(tmp_path)[2]["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before  # the handler is the caller's again


def test_ctrl_c_during_the_test_report_stops_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the loop there is no step to finish: Ctrl-C raises KeyboardInterrupt as usual."""
    from archzoo.tasks.classification import ImageClassification

    def report(*args: object) -> None:
        signal.raise_signal(signal.SIGINT)  # the handler runs before this returns
        raise AssertionError("Ctrl-C was swallowed")

    monkeypatch.setattr(ImageClassification, "report", report)
    # Python's own Ctrl-C handler, even where the test runner was started with SIGINT ignored (a shell's
    # background job); the trainer hands back whatever handler it found
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    trainer = Trainer(small_config(**{"train.max_steps": 2}), tmp_path, progress=False, verbose=False)
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.fit()
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_saves_and_exits_130(signum: int, code: int, tmp_path: Path) -> None:
    """A real SIGINT (Ctrl-C) or SIGTERM (what schedulers and containers send) to `python -m archzoo
    train`: the step finishes, the run is saved, exit code 128 + the signal (130, 143)."""
    run_dir = tmp_path / "run"
    sets = small_run_overrides(**{"model.name": "mlp", "model.args.hidden_sizes": [32], "train.epochs": 50})
    cmd = [sys.executable, "-m", "archzoo", "train", "quickstart", *[a for s in sets for a in ("--set", s)],
           "--out", str(run_dir), "--no-progress", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 90
        metrics = run_dir / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().strip()):  # training has started
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, (out, err)
    assert "resume with" in out and str(run_dir) in out
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    tensors, meta, state = checkpoint.load_checkpoint(run_dir)
    assert 0 < state["step"] == meta["step"] < 50 * 148
    assert all(torch.isfinite(t).all() for t in tensors.values())
    assert load_run_config(run_dir).train.epochs == 50


def test_resume_with_another_max_steps_keeps_the_schedule(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """One-cycle is sized when a run starts; resuming with a different --max-steps only moves where it
    stops, so stopping at 8 and then continuing to 12 equals one 12-step run."""
    cfg = small_config(**{"train.schedule": "onecycle", "train.max_steps": 12})
    full = baseline(cfg, tmp_path_factory)
    train(cfg, tmp_path, stop_at=5)
    for limit in (8, 12):
        resumed = load_run_config(tmp_path)
        resumed = RunConfig(resumed.task, resumed.model, resumed.data,
                            type(resumed.train)(**{**resumed.train.__dict__, "max_steps": limit}))
        result = Trainer(resumed, tmp_path, progress=False, verbose=False, resume=True).fit()
        assert result.step == limit
    assert_same_weights(tmp_path / "model.safetensors", full / "model.safetensors")


def test_resume_is_exact_with_batch_norm_and_crop_flip_cutout(tmp_path: Path,
                                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    """Batch-norm running statistics, the CNN augmentations (crop, flip, cutout, all drawn per step) and a
    multistep schedule resume bit for bit too."""
    cfg = resolve_config("quickstart", small_run_overrides(**{
        "model.name": "densenet_bc", "model.args.depth": 10, "model.args.growth_rate": 4, "model.args.dropout": 0.1,
        "data.val_size": 9400, "data.augment": "crop+flip+cutout", "data.cutout_size": 6, "train.max_steps": 24,
        "train.schedule": "multistep", "train.milestones": [10, 20], "train.optimizer": "sgd", "train.lr": 0.05}))
    full = baseline(cfg, tmp_path_factory)
    run_dir = tmp_path / "run"
    train(cfg, run_dir, stop_at=13)
    result = Trainer(load_run_config(run_dir), run_dir, resume=True, progress=False, verbose=False).fit()
    assert result.status == "max_steps" and result.step == 24
    assert_same_weights(run_dir / "model.safetensors", full / "model.safetensors")  # includes running_mean/var
    assert "features.1.bn1.running_var" in weights(run_dir / "model.safetensors")
    assert val_records(run_dir) == val_records(full)
