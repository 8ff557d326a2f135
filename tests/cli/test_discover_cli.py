"""Finding one's way: `archzoo list presets` with descriptions, `archzoo config` printing a resolved
config with every field and its type (as TOML that trains), and `archzoo runs` over run folders."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from archzoo.training.config import list_presets, load_preset, resolve_config
from helpers import cli


def test_list_presets_shows_each_description(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "list", "presets")
    lines = dict(line.split("\t") for line in out.splitlines())
    assert rc == 0 and list(lines) == list_presets()
    assert lines["mnist-fast"] == load_preset("mnist-fast")["description"] and all(lines.values())


def test_config_prints_every_field_with_its_type_and_trains_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "config", "shakespeare-gpt", "--set", "train.lr=1e-3", "--set", "model.args.num_layers=2")
    assert rc == 0
    assert "lr = 0.001  # float" in out and "num_layers = 2  # int" in out and "dim_feedforward = 0  # int, default" in out
    assert "betas = [0.9, 0.99]  # tuple[float, float]" in out and 'optimizer = "muon"  # str' in out
    assert "# vocab_size: int" not in out and "vocab_size = 65  # int, default" in out
    fields = [line.split(" = ")[0] for line in out.splitlines() if " = " in line and not line.startswith("#")]
    assert len(fields) == len(set(fields)) + 1  # every key once per section ("name" apart, there is one "description")
    saved = tmp_path / "mine.toml"
    saved.write_text(out)
    again = resolve_config(str(saved), [])
    wanted = resolve_config("shakespeare-gpt", ["train.lr=1e-3", "model.args.num_layers=2"])
    assert again.train == wanted.train and again.data == wanted.data and again.task == wanted.task
    assert again.preset == wanted.preset == "shakespeare-gpt"  # the file remembers where it came from
    assert resolve_config(None, []).preset == ""
    assert {k: v for k, v in again.model.args.items() if k in wanted.model.args} == wanted.model.args


def test_config_bad_override_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "config", "mnist-fast", "--set", "train.lrr=1")
    assert rc == 2 and "unknown config key 'train.lrr'" in err and err.count("\n") == 1


def fake_run(folder: Path, *, status: dict | None = None, report: dict | None = None, weights: bool = True,
             metrics: list[dict] | None = None, age: float = 3600, preset: str | None = None) -> Path:
    folder.mkdir(parents=True)
    config = {"task": "classification", "model": {"name": "simple_cnn", "args": {}}, "data": {"dataset": "mnist"}, "train": {}}
    if preset is not None:
        config["preset"] = preset
    (folder / "config.json").write_text(json.dumps(config))
    if status is not None:
        (folder / "status.json").write_text(json.dumps(status))
    if report is not None:
        (folder / "eval.json").write_text(json.dumps(report))
    if weights:
        (folder / "model.safetensors").write_bytes(b"")
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics or []) + "{torn")
    then = time.time() - age
    for f in folder.iterdir():
        os.utime(f, (then, then))
    return folder


def test_runs_lists_status_best_metric_and_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    val = [{"step": 10, "split": "val", "accuracy": 0.91, "loss": 0.3}, {"step": 20, "split": "val", "accuracy": 0.95},
           {"step": 30, "split": "val", "accuracy": 0.93}, {"step": 30, "split": "train", "loss": 0.1}]
    fake_run(tmp_path / "done", report={"accuracy": 0.9412}, metrics=val, age=7200, preset="mnist-fast")
    fake_run(tmp_path / "killed", metrics=val[:2], age=3600)
    fake_run(tmp_path / "bench" / "nested", status={"status": "early_stopped", "step": 40, "best": {"accuracy": 0.97},
                                                     "updated": "2026-12-01T10:00:00+00:00"})
    fake_run(tmp_path / "live", metrics=val[:1], age=0)
    fake_run(tmp_path / "killed-9", status={"status": "running", "step": 7, "best": None})  # no training holds it
    held = fake_run(tmp_path / "training", status={"status": "running", "step": 3, "best": None})
    from archzoo.training.run_folder import RunLock

    lock = RunLock(held).__enter__()
    fake_run(tmp_path / "empty", weights=False)
    (tmp_path / "not-a-run").mkdir()
    try:
        rc, out, _ = cli(capsys, "runs", str(tmp_path))
    finally:
        lock.__exit__()
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert rc == 0 and out.splitlines()[0].split() == ["run", "preset", "model", "status", "step", "best", "val", "test", "date"]
    assert set(rows) == {str(tmp_path / n) for n in ("done", "killed", "bench/nested", "live", "empty", "killed-9", "training")}
    assert " interrupted (killed) " in rows[str(tmp_path / "killed-9")] and " running " in rows[str(tmp_path / "training")]
    done = rows[str(tmp_path / "done")]
    assert " mnist-fast " in done and " - " in rows[str(tmp_path / "killed")]  # older runs name no preset
    assert "simple_cnn on mnist" in done and " finished " in done and "accuracy 0.9500" in done and "accuracy 0.9412" in done
    assert " interrupted " in rows[str(tmp_path / "killed")] and " 20 " in rows[str(tmp_path / "killed")]
    nested = rows[str(tmp_path / "bench" / "nested")]
    assert "finished (early stop)" in nested and "accuracy 0.9700" in nested and "2026-12-01 10:00:00" in nested
    assert " running " in rows[str(tmp_path / "live")] and " not started " in rows[str(tmp_path / "empty")]


def test_runs_of_a_missing_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "runs", str(tmp_path / "none"))
    assert rc == 2 and "is not a folder" in err
    rc, out, _ = cli(capsys, "runs", str(tmp_path))
    assert rc == 0 and out.startswith("no runs under")
