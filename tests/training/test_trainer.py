"""The one training loop (training/trainer.py, logger.py, seed.py) on tiny real-data runs: stopping
rules, evaluation cadence, run-folder files, deterministic mode and bf16 autocast."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from archzoo.errors import UserError
from archzoo.training import checkpoint
from archzoo.training.config import RunConfig, load_run_config, resolve_config
from archzoo.training.trainer import Trainer
from helpers import small_run_overrides

DRAWN_PLOTS = ("plot_curves",)  # the training curves are drawn for real here


def small_config(**overrides: object) -> RunConfig:
    base: dict[str, object] = {"train.max_steps": 12}
    if "model.name" not in overrides:
        base.update({"model.name": "mlp", "model.args.hidden_sizes": [32]})
    base.update(overrides)
    return resolve_config("quickstart", small_run_overrides(**base))


def fit(cfg: RunConfig, run_dir: Path, **kwargs: object):  # noqa: ANN201
    trainer = Trainer(cfg, run_dir, progress=False, verbose=False, **kwargs)  # type: ignore[arg-type]
    return trainer, trainer.fit()


def records(run_dir: Path, split: str | None = None) -> list[dict]:
    rs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rs if split is None or r["split"] == split]


# --------------------------------------------------------------------------------- stopping


def test_max_steps(tmp_path: Path) -> None:
    trainer, result = fit(small_config(**{"train.max_steps": 7}), tmp_path)
    assert result.status == "max_steps" and result.step == 7 == trainer.total_steps
    assert checkpoint.read_weights(tmp_path / "model.safetensors")[1]["step"] == 7
    assert checkpoint.load_checkpoint(tmp_path)[2]["step"] == 7
    assert [r["step"] for r in records(tmp_path, "val")] == [7]  # the stop is evaluated
    assert result.test is not None and (tmp_path / "eval.json").is_file()


def test_epochs_complete(tmp_path: Path) -> None:
    # 500 training images: 7 steps of 64 per epoch, two epochs, evaluated after each
    cfg = small_config(**{"data.val_size": 9500, "train.epochs": 2, "train.max_steps": 0})
    trainer, result = fit(cfg, tmp_path)
    assert trainer.steps_per_epoch == 7 and result.status == "completed" and result.step == 14
    assert [(r["step"], r["epoch"]) for r in records(tmp_path, "val")] == [(7, 0), (14, 1)]


def test_time_budget_stops_cleanly_and_still_evaluates(tmp_path: Path) -> None:
    trainer, result = fit(small_config(**{"train.time_budget": 0.5, "train.max_steps": 0, "train.epochs": 100}),
                          tmp_path)
    assert result.status == "time_budget"
    assert 0 < result.step < trainer.total_steps
    assert result.train_seconds >= 0.5
    assert records(tmp_path, "val")[-1]["step"] == result.step  # evaluated where it stopped
    assert result.best is not None and (tmp_path / "best.safetensors").is_file()
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["examples"] == 10_000 and report == result.test
    assert checkpoint.load_checkpoint(tmp_path)[2]["step"] == result.step


def test_early_stopping_with_patience(tmp_path: Path) -> None:
    # a learning rate too small to move float32 weights: accuracy never improves after the first eval
    cfg = small_config(**{"train.lr": 1e-12, "train.schedule": "constant", "train.eval_every_steps": 2,
                          "train.early_stopping_patience": 2, "train.max_steps": 50})
    _, result = fit(cfg, tmp_path)
    assert result.status == "early_stopped" and result.step == 6
    assert [r["step"] for r in records(tmp_path, "val")] == [2, 4, 6]
    assert result.best is not None and result.best["step"] == 2
    assert checkpoint.read_weights(tmp_path / "best.safetensors")[1]["step"] == 2


def test_hook_can_stop_the_run_with_its_own_reason(tmp_path: Path) -> None:
    def stop(trainer: Trainer) -> None:
        if trainer.step == 3:
            trainer.stop_reason = "enough"

    _, result = fit(small_config(), tmp_path, on_step=stop)
    assert result.status == "enough" and result.step == 3 and result.test is not None


# ------------------------------------------------------------------ evaluation and logging


def test_eval_every_steps(tmp_path: Path) -> None:
    _, result = fit(small_config(**{"train.eval_every_steps": 4, "train.max_steps": 10}), tmp_path)
    assert [r["step"] for r in records(tmp_path, "val")] == [4, 8, 10]
    assert result.best is not None and result.best["step"] in (4, 8, 10)
    assert set(records(tmp_path, "val")[0]) == {"step", "epoch", "split", "loss", "accuracy"}


def test_metrics_files_and_curves(tmp_path: Path) -> None:
    _, result = fit(small_config(**{"train.max_steps": 12, "train.log_every_steps": 5}), tmp_path)
    train = records(tmp_path, "train")
    assert [r["step"] for r in train] == [5, 10, 12]
    assert all(r["loss"] > 0 and r["lr"] > 0 and r["samples_per_s"] > 0 for r in train)
    assert result.history == records(tmp_path)
    # the CSV is the same records in long format
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "epoch", "split", "metric", "value"]
    expected = [[str(r["step"]), str(r["epoch"]), r["split"], k, str(v)]
                for r in records(tmp_path) for k, v in r.items() if k not in ("step", "epoch", "split")]
    assert rows[1:] == expected
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "best.safetensors", "checkpoints", "status.json", "metrics.jsonl",
            "metrics.csv", "curves.png", "eval.json"} <= names
    assert not [n for n in names if n.endswith(".tmp")]


def test_logged_lr_is_the_rate_the_step_used(tmp_path: Path) -> None:
    used: dict[int, float] = {}
    trainer = Trainer(small_config(**{"train.log_every_steps": 1, "train.max_steps": 6}), tmp_path,
                      progress=False, verbose=False)

    def record(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        used[len(used) + 1] = optimizer.param_groups[0]["lr"]

    trainer.optimizer.register_step_pre_hook(record)
    trainer.fit()
    assert {r["step"]: r["lr"] for r in records(tmp_path, "train")} == used
    assert used[1] == pytest.approx(3e-3 / 25)  # onecycle starts at lr / 25


def test_config_json_is_the_resolved_config(tmp_path: Path) -> None:
    trainer, _ = fit(small_config(**{"train.max_steps": 2}), tmp_path)
    assert load_run_config(tmp_path) == trainer.cfg
    assert trainer.cfg.model.args["num_classes"] == 10  # the data's arguments are resolved in
    _, meta = checkpoint.read_weights(tmp_path / "model.safetensors")
    assert meta["config"] == json.loads((tmp_path / "config.json").read_text())


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    trainer = Trainer(small_config(), tmp_path / "dry", progress=False, verbose=False)
    result = trainer.fit(dry_run=True)
    assert result.status == "dry_run" and result.step == 1 and result.test["train_loss"] > 0
    assert not (tmp_path / "dry").exists()


def test_batch_size_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="larger than"):
        Trainer(small_config(**{"data.val_size": 9990, "train.batch_size": 64}), tmp_path)
    with pytest.raises(UserError, match="divide train.batch_size"):
        small_config(**{"train.batch_size": 60, "train.accum_steps": 8})


# ------------------------------------------------------------------ determinism and precision


def test_deterministic_mode(tmp_path: Path) -> None:
    seen = []
    cfg = small_config(**{"train.deterministic": True, "train.max_steps": 4, "model.name": "simple_cnn",
                          "model.args.channels": [4, 8], "model.args.hidden": 16})
    try:
        for name in ("a", "b"):
            fit(cfg, tmp_path / name, on_step=lambda t: seen.append(torch.are_deterministic_algorithms_enabled()))
        a, _ = checkpoint.read_weights(tmp_path / "a" / "model.safetensors")
        b, _ = checkpoint.read_weights(tmp_path / "b" / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert seen and all(seen)
        # the switch is process-wide: the next run without it must not inherit it
        seen.clear()
        fit(small_config(**{"train.max_steps": 1}), tmp_path / "c",
            on_step=lambda t: seen.append(torch.are_deterministic_algorithms_enabled()))
        assert seen == [False]
    finally:
        torch.use_deterministic_algorithms(False)


def test_bf16_autocast_keeps_float32_master_weights(tmp_path: Path) -> None:
    cfg = small_config(**{"train.precision": "bf16", "train.max_steps": 5, "model.name": "simple_cnn",
                          "model.args.channels": [4, 8], "model.args.hidden": 16})
    trainer = Trainer(cfg, tmp_path, progress=False, verbose=False)
    dtypes: list[torch.dtype] = []
    trainer.model.features[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    result = trainer.fit()
    assert torch.bfloat16 in dtypes  # training and evaluation compute ran in bf16
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    for state in trainer.optimizer.state.values():
        assert state["exp_avg"].dtype == torch.float32
    tensors, _ = checkpoint.read_weights(tmp_path / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in tensors.values())
    assert 0 < records(tmp_path, "train")[-1]["loss"] < 10 and 0 <= result.test["accuracy"] <= 1


def test_auto_precision_is_bf16_only_where_the_device_has_it_natively(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from archzoo.training import trainer as trainer_module

    cpu = torch.device("cpu")
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(trainer_module, "native_bf16", lambda device, native=native: native)
        assert trainer_module.resolve_precision("auto", cpu) == expected
        assert trainer_module.resolve_precision("fp32", cpu) == "fp32"
        assert trainer_module.resolve_precision("bf16", cpu) == "bf16"  # asked for by name: honoured
        with trainer_module.autocast(cpu, "auto"):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == (torch.bfloat16 if native else torch.float32)
        trainer = Trainer(small_config(**{"train.precision": "auto", "train.max_steps": 1}), tmp_path / expected,
                          progress=False)
        assert trainer.precision == expected
        assert trainer.fit().precision == expected  # the result says what the run trained in
        err = capsys.readouterr().err
        assert err == ""  # auto is the quiet default
        Trainer(small_config(**{"train.precision": "bf16", "train.max_steps": 1}), tmp_path / f"{expected}-named",
                progress=False)
        err = capsys.readouterr().err
        assert ("train.precision='bf16' on a cpu without native bf16 is emulated" in err) == (not native)
        assert err.count("\n") <= 1


def test_native_bf16_reads_the_cpu_features(monkeypatch: pytest.MonkeyPatch) -> None:
    from archzoo import hardware

    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    for avx512_bf16, amx, expected in ((True, False, True), (False, True, True), (False, False, False)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        hardware._cpu_native_bf16.cache_clear()
        assert hardware.native_bf16(torch.device("cpu")) is expected
    hardware._cpu_native_bf16.cache_clear()  # the real CPU's answer again for the tests after this one
    assert hardware.native_bf16(torch.device("meta")) is False


@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None, reason="no C++ compiler for inductor")
def test_compiled_training_equals_eager(tmp_path: Path) -> None:
    """train.compile: the same steps through torch.compile's inductor end at the eager weights (within
    float rounding: inductor fuses and reorders) and the checkpoint holds the plain module's names."""
    cfg = small_config(**{"train.max_steps": 6, "model.name": "simple_cnn", "model.args.channels": [4, 8],
                          "model.args.hidden": 16})
    compiled = small_config(**{"train.max_steps": 6, "model.name": "simple_cnn", "model.args.channels": [4, 8],
                               "model.args.hidden": 16, "train.compile": True})
    fit(cfg, tmp_path / "eager")
    fit(compiled, tmp_path / "compiled")
    eager, _ = checkpoint.read_weights(tmp_path / "eager" / "model.safetensors")
    ours, _ = checkpoint.read_weights(tmp_path / "compiled" / "model.safetensors")
    assert eager.keys() == ours.keys()
    for key in eager:
        torch.testing.assert_close(ours[key], eager[key], atol=1e-5, rtol=1e-4)


def test_compile_without_a_compiler_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(UserError, match="train.compile needs a C.. compiler on CPU"):
        Trainer(small_config(**{"train.compile": True}), tmp_path, progress=False, verbose=False)


def test_compile_auto_without_a_compiler_trains_eagerly_with_a_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CXX", "no-such-compiler")
    trainer = Trainer(small_config(**{"train.compile": "auto", "train.max_steps": 2}), tmp_path, progress=False, verbose=False)
    assert trainer.phase_modules == [trainer.model]  # not wrapped by torch.compile
    assert "train.compile='auto' trains eagerly here" in capsys.readouterr().err
    with pytest.raises(UserError, match="train.compile must be true, false or 'auto'"):
        small_config(**{"train.compile": "sometimes"})
