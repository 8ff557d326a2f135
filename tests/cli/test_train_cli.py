"""``archzoo train`` and ``archzoo list`` end to end through ``main([...])``, in-process, on real data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from archzoo.cli.main import main
from archzoo.data import DATASETS
from archzoo.models import list_models
from archzoo.tasks import TASKS
from archzoo.training import checkpoint
from archzoo.training.config import list_presets
from helpers import REGISTERED_MODELS, SHARED_DATA, small_run_overrides


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def sets(*overrides: str) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def test_train_quickstart_short_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    rc, out, err = cli(capsys, "train", "quickstart", "--max-steps", "20", "--set", "train.eval_every_steps=10",
                       "--out", str(run), "--no-progress", *sets(*small_run_overrides()))
    assert rc == 0, err
    assert err == ""  # --no-progress: no bar, and no warnings
    assert "simple_cnn: 421,642 parameters | classification on mnist-small | 20 steps of batch 64 | device cpu" in out
    assert re.search(r"^step 10 epoch 0: val loss=[\d.]+ accuracy=[\d.]+$", out, re.M)
    assert "stopped: max_steps after 20 steps" in out
    test = re.search(r"^test: loss=([\d.]+) accuracy=([\d.]+)$", out, re.M)
    assert test, out
    accuracy = float(test.group(2))
    assert 0.3 < accuracy <= 1.0  # 20 steps of a real CNN on real digits: far above chance (0.1)
    assert out.rstrip().splitlines()[-1] == f"run folder: {run}"
    for name in ("config.json", "model.safetensors", "best.safetensors", "status.json", "metrics.jsonl",
                 "curves.png", "eval.json", "confusion.png", "misclassified.png"):
        assert (run / name).is_file(), name
    assert (checkpoint.latest_checkpoint(run) / "state.pt").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["name"] == "simple_cnn" and config["data"]["dataset"] == "mnist-small"
    assert config["train"]["max_steps"] == 20 and config["train"]["batch_size"] == 64
    assert config["model"]["args"] == {"in_channels": 1, "image_size": 28, "num_classes": 10}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in records if r["split"] == "train"]
    assert [r["step"] for r in records if r["split"] == "val"] == [10, 20]
    assert len(train_losses) == 4 and train_losses[-1] < train_losses[0]
    assert json.loads((run / "eval.json").read_text())["accuracy"] == pytest.approx(accuracy, abs=1e-4)


def test_dry_run_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for out_args in (["--out", str(work / "dry")], []):  # with --out, and with the default runs/<name>-<time>
        rc, out, err = cli(capsys, "train", "quickstart", "--dry-run", "--no-progress", *out_args,
                           *sets(*small_run_overrides()))
        assert rc == 0, err
        assert re.search(r"^dry run ok: one step, train loss [\d.]+; nothing written$", out, re.M), out
        assert "run folder" not in out
        assert list(work.iterdir()) == []


def test_shortcut_flags_reach_the_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, out, err = cli(capsys, "train", "--model", "lenet5", "--dataset", "mnist-small", "--epochs", "2",
                       "--dry-run", "--set", "data.val_size=1000", "--set", "train.batch_size=100")
    assert rc == 0, err
    # (10,000 - 1,000) / 100 = 90 steps per epoch, two epochs
    assert "lenet5: 61,706 parameters | classification on mnist-small | 180 steps of batch 100" in out
    rc, out, err = cli(capsys, "train", "quickstart", "--max-steps", "7", "--dry-run", "--set", "model.hidden=32",
                       *sets(*small_run_overrides()))
    assert rc == 0, err
    assert "simple_cnn: 119,530 parameters" in out and "| 7 steps of batch 64" in out  # model.X is a model argument


@pytest.mark.parametrize(("kind", "expected"), [
    ("models", list_models()), ("presets", list_presets()), ("datasets", DATASETS.names()), ("tasks", TASKS.names()),
])
def test_list(capsys: pytest.CaptureFixture[str], kind: str, expected: list[str]) -> None:
    rc, out, _ = cli(capsys, "list", kind)
    names = [line.split("\t")[0] for line in out.splitlines()]  # presets come with their descriptions
    assert rc == 0 and names == expected and expected


def test_list_defaults_to_models_and_filters(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "list")
    assert rc == 0 and out.splitlines() == REGISTERED_MODELS
    rc, out, _ = cli(capsys, "list", "models", "*cnn*")
    assert rc == 0 and out.splitlines() == ["simple_cnn", "speech_cnn", "textcnn"]
    rc, out, _ = cli(capsys, "list", "presets", "mnist-*")
    names = [line.split("\t")[0] for line in out.splitlines()]
    assert rc == 0 and "quickstart" not in names and "mnist-simple_cnn" in names
    rc, out, _ = cli(capsys, "list", "models", "zzz*")
    assert rc == 0 and out == ""


def test_help_and_version_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "--version")
    assert rc == 0 and out.startswith("archzoo ")
    for argv in (["--help"], ["train", "--help"], ["eval", "--help"], ["predict", "--help"], ["info", "--help"]):
        rc, out, _ = cli(capsys, *argv)
        assert rc == 0 and out.startswith("usage: archzoo"), argv


@pytest.mark.skipif(not (SHARED_DATA / "daily-min-temperatures").is_dir(),
                    reason="../shared/data/daily-min-temperatures not staged")
def test_the_weather_preset_says_what_it_filled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train", "daily-temps-gru", "--max-steps", "3", "--out", str(tmp_path / "run"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert ("notice: filled 2 missing timestamp(s) of daily-min-temperatures by linear interpolation: "
            "1984-12-31, 1988-12-31") in out.splitlines()
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["filled_points"] == 2 and report["filled_in_test"] == 0 and report["test_span"] == ["1990-01-01",
                                                                                                      "1990-12-31"]
