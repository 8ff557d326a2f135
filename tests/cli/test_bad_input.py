"""Bad input through ``main([...])``: each mistake is one line on stderr starting with 'archzoo: error:',
a non-zero exit code and no traceback (STYLE.md tests 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archzoo.cli.main import main
from archzoo.config import to_dict
from archzoo.models import create_model
from archzoo.training.checkpoint import save_weights
from archzoo.training.config import resolve_config, save_config
from helpers import small_run_overrides

SMALL = [arg for o in small_run_overrides() for arg in ("--set", o)]


def expect_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc != 0 and rc != 1, f"exit code {rc} for {argv}: {err}"  # 1 is an internal error (a bug)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    assert lines[0].startswith("archzoo: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder holding an (untrained) archzoo checkpoint: cheap, but valid for eval and predict."""
    cfg = resolve_config(None, small_run_overrides(**{"model.name": "mlp"}))
    cfg = cfg.with_model_args({"in_channels": 1, "image_size": 28, "num_classes": 10})
    run = tmp_path / "run"
    run.mkdir()
    save_weights(create_model("mlp", **cfg.model.args), run / "model.safetensors", to_dict(cfg), step=0)
    save_config(cfg, run / "config.json")
    return run


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "digit.png"
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[6:22, 12:16] = 255  # a "1"
    Image.fromarray(pixels).save(path)
    return path


UNKNOWN_NAMES = {
    "model": (["train", "--model", "simple_cn", "--dry-run"], "unknown model 'simple_cn'", "did you mean: simple_cnn"),
    "model-key": (["train", "--set", "model.name='lenet'", "--dry-run"], "unknown model 'lenet'", "lenet5"),
    "dataset": (["train", "--dataset", "mnist-smal", "--dry-run"], "unknown dataset 'mnist-smal'", "mnist-small"),
    "preset": (["train", "quickstar"], "unknown preset 'quickstar'", "did you mean: quickstart"),
    "train-key": (["train", "--set", "train.lrr=1e-3"], "unknown config key 'train.lrr'", "train.lr"),
    "data-key": (["train", "--set", "data.augmnt='shift'"], "unknown config key 'data.augmnt'", "data.augment"),
    "section": (["train", "--set", "trian.lr=1e-3"], "unknown config key 'trian.lr'", "train.lr"),
    "model-arg": (["train", "--set", "model.dropot=0.1"], "'dropot'", "did you mean: dropout"),
    "info-model": (["info", "simple_cn"], "unknown model 'simple_cn'", "simple_cnn"),
    "info-arg": (["info", "simple_cnn", "--set", "hiden=64"], "'hiden'", "did you mean: hidden"),
    "benchmark": (["bench", "mnist-simple-cnn"], "unknown benchmark 'mnist-simple-cnn'", "mnist-simple_cnn"),
}


@pytest.mark.parametrize("case", UNKNOWN_NAMES.values(), ids=UNKNOWN_NAMES.keys())
def test_unknown_names_suggest_close_matches(capsys: pytest.CaptureFixture[str], case: tuple) -> None:
    argv, *needles = case
    expect_error(capsys, argv, *needles)


INVALID_VALUES = {
    "lr-zero": (["train", "--set", "train.lr=0"], "train.lr must be", "> 0", "got 0.0"),
    "lr-negative": (["train", "--set", "train.lr=-1"], "train.lr must be", "> 0", "got -1.0"),
    "batch-zero": (["train", "--set", "train.batch_size=0"], "train.batch_size must be", ">= 1", "got 0"),
    "lr-text": (["train", "--set", "train.lr=fast"], "'train.lr' expects float"),
    "batch-float": (["train", "--set", "train.batch_size=6.4"], "'train.batch_size' expects int"),
    "no-equals": (["train", "--set", "train.lr"], "not of the form section.key=value"),
    "epochs-zero": (["train", "--epochs", "0"], "train.epochs must be >= 1"),
    "max-steps-negative": (["train", "--max-steps", "-1", "--dry-run"], "max_steps"),
    "max-steps-text": (["train", "--max-steps", "ten"], "invalid int value: 'ten'"),
    "device": (["train", "--device", "tpu", "--dry-run"], "--device must be auto, cpu or cuda"),
    "augment": (["train", "--set", "data.augment='rotate'"], "data.augment must be 'none' or some of shift, crop"),
    "optimizer": (["train", "--set", "train.optimizer='adamm'"], "train.optimizer must be one of"),
    "dropout": (["train", "--set", "model.dropout=1.5", "--dry-run", *SMALL], "dropout must be in [0, 1)"),
    "val-size": (["train", "--dry-run", *SMALL, "--set", "data.val_size=10000"], "leaves no training data"),
    "batch-too-big": (["train", "--dry-run", *SMALL, "--set", "train.batch_size=20000"], "larger than the 9500"),
    "info-dropout": (["info", "simple_cnn", "--set", "dropout=2"], "dropout must be in [0, 1)"),
    "info-width": (["info", "mlp", "--set", "hidden_sizes=[800, 0]"], "hidden_sizes must be >= 1"),
    "info-size": (["info", "simple_cnn", "--set", "image_size=30"], "divisible by 4"),
    "info-batch": (["info", "simple_cnn", "--batch-size", "0"], "--batch-size must be >= 1"),
}


@pytest.mark.parametrize("case", INVALID_VALUES.values(), ids=INVALID_VALUES.keys())
def test_invalid_values(capsys: pytest.CaptureFixture[str], case: tuple) -> None:
    argv, *needles = case
    expect_error(capsys, argv, *needles)


BAD_COMMAND_LINES = {
    "subcommand": (["trian"], "invalid choice: 'trian'", "did you mean: train, translate, transcribe?"),
    "flag": (["train", "--bogus"], "unrecognized arguments: --bogus"),
    "eval-flag": (["eval", "run", "--wich", "best"], "unrecognized arguments: --wich"),
    "nothing": ([], "required: command"),
    "eval-no-run": (["eval"], "required: run_dir"),
    "which": (["eval", "run", "--which", "worst"], "invalid choice: 'worst'"),
    "list-kind": (["list", "modles"], "invalid choice: 'modles'", "did you mean: models?"),
    "data-action": (["data", "fecth", "mnist"], "invalid choice: 'fecth'", "did you mean: fetch?"),
}


@pytest.mark.parametrize("case", BAD_COMMAND_LINES.values(), ids=BAD_COMMAND_LINES.keys())
def test_bad_command_lines(capsys: pytest.CaptureFixture[str], case: tuple) -> None:
    argv, *needles = case
    line = expect_error(capsys, argv, *needles)
    assert line.endswith("--help`)")


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("ARCHZOO_DATA", str(empty))
    expect_error(capsys, ["train", "--dataset", "fashion-mnist", "--dry-run"],
                 "dataset 'fashion-mnist' is missing", str(empty / "fashion-mnist"),
                 "archzoo data fetch fashion-mnist", "archzoo data import fashion-mnist")


def test_the_run_fixture_is_valid(capsys: pytest.CaptureFixture[str], run_dir: Path, png: Path) -> None:
    # the control for the tests below: with intact inputs the same commands succeed
    assert main(["predict", str(run_dir), str(png)]) == 0
    assert capsys.readouterr().out.startswith(f"{png}\t")


def test_eval_on_a_folder_that_is_not_a_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    expect_error(capsys, ["eval", folder], str(folder), "is it an archzoo run folder?")
    expect_error(capsys, ["eval", tmp_path / "missing"], "does not exist")
    expect_error(capsys, ["predict", folder, folder / "notes.txt"], "is it an archzoo run folder?")
    expect_error(capsys, ["train", "--resume", folder], "not an archzoo run folder (no config.json)")


@pytest.mark.parametrize("size", [4, 100, "half"])
def test_eval_on_a_truncated_checkpoint(capsys: pytest.CaptureFixture[str], run_dir: Path, size: int | str) -> None:
    weights = run_dir / "model.safetensors"
    full = weights.read_bytes()
    weights.write_bytes(full[: len(full) // 2 if size == "half" else size])
    expect_error(capsys, ["eval", run_dir], str(weights), "corrupt or truncated")
    expect_error(capsys, ["predict", run_dir, "x.png"], "corrupt or truncated")


def test_eval_on_a_safetensors_file_that_is_not_archzoos(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    save_file({"weight": torch.zeros(3, 3)}, foreign / "model.safetensors", metadata={"format": "pt"})
    expect_error(capsys, ["eval", foreign], "is not an archzoo checkpoint")
    expect_error(capsys, ["eval", foreign / "model.safetensors"], "is not an archzoo checkpoint")


def test_eval_on_weights_that_do_not_fit_the_model(capsys: pytest.CaptureFixture[str], run_dir: Path) -> None:
    cfg = resolve_config(None, ["model.name='lenet5'"]).with_model_args({"num_classes": 10})
    save_weights(create_model("mlp"), run_dir / "model.safetensors", to_dict(cfg), step=0)  # mlp weights, lenet5 config
    expect_error(capsys, ["eval", run_dir], "do not fit model 'lenet5'")


def test_predict_on_files_that_are_not_images(capsys: pytest.CaptureFixture[str], run_dir: Path, tmp_path: Path,
                                              png: Path) -> None:
    text = tmp_path / "note.png"
    text.write_text("this is not an image\n")
    expect_error(capsys, ["predict", run_dir, png, text], str(text), "not a readable image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    expect_error(capsys, ["predict", run_dir, empty], "not a readable image")
    expect_error(capsys, ["predict", run_dir, tmp_path / "missing.png"], "missing.png")
    expect_error(capsys, ["predict", run_dir, png, "--top", "0"], "--top must be >= 1")


def test_out_that_cannot_be_a_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # tests run as root, so permissions would not stop the write; a regular file in the path does
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker / "run", blocker):
        expect_error(capsys, ["train", "quickstart", "--max-steps", "1", "--out", out, "--no-progress", *SMALL],
                     f"cannot write to folder {out}", "--out")
    assert blocker.read_text() == "x"


def test_eval_batch_size_and_resume_flags(capsys: pytest.CaptureFixture[str], run_dir: Path) -> None:
    expect_error(capsys, ["eval", run_dir, "--batch-size", "0"], "--batch-size must be >= 1")
    for extra in (["--set", "train.lr=1"], ["--epochs", "0"], ["--model", "mlp"], ["--out", run_dir]):
        expect_error(capsys, ["train", "--resume", run_dir, *extra], "--resume continues a run with its own config")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu(capsys: pytest.CaptureFixture[str], run_dir: Path) -> None:
    expect_error(capsys, ["eval", run_dir, "--device", "cuda"], "no CUDA GPU is visible", "--device cpu")


def test_bench_json_that_cannot_be_written(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # refused before the benchmark runs (which would take minutes)
    expect_error(capsys, ["bench", "mnist-throughput", "--json", blocker / "r.json", "--work-dir", tmp_path / "w"],
                 "cannot write to folder")


def test_errors_are_flattened_to_one_line_and_bugs_are_labelled(capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import archzoo.cli.listing as listing
    from archzoo.errors import UserError

    def user_error(args: object) -> int:
        raise UserError("first line\n  second line")

    monkeypatch.setattr(listing, "run", user_error)
    assert expect_error(capsys, ["list"]) == "archzoo: error: first line second line"

    def bug(args: object) -> int:
        raise RuntimeError("shape mismatch\nat layer 3")

    monkeypatch.setattr(listing, "run", bug)
    monkeypatch.delenv("ARCHZOO_DEBUG", raising=False)
    assert main(["list"]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [err.rstrip("\n")] and "Traceback" not in err
    assert err.startswith("archzoo: internal error: RuntimeError: shape mismatch at layer 3 (rerun with ARCHZOO_DEBUG=1")
    monkeypatch.setenv("ARCHZOO_DEBUG", "1")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["list"])

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(listing, "run", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "archzoo: interrupted\n"
