"""GANs through the CLI: train a conditional GAN on real digits, evaluate it, draw grids, a chosen class
and an interpolation strip with `archzoo sample`; and each bad input as one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from archzoo.cli.main import main
from archzoo.config import to_dict
from archzoo.models import create_model
from archzoo.training.checkpoint import save_weights
from archzoo.training.config import resolve_config, save_config

TINY = ["--set", "data.dataset='mnist-small'", "--set", "data.val_size=9400", "--set", "model.args.g_hidden=[32]",
        "--set", "model.args.d_hidden=[32]", "--set", "model.args.latent_dim=16", "--set", "train.eval_batch_size=500",
        "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cgan") / "run"
    assert main(["train", "mnist-cgan", "--max-steps", "9", "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture
def unconditional_run(tmp_path: Path) -> Path:
    """An untrained gan_mlp checkpoint: enough for the sampler's checks."""
    cfg = resolve_config("mnist-gan_mlp", []).with_model_args({"in_channels": 1, "image_size": 28})
    run = tmp_path / "run"
    run.mkdir()
    save_weights(create_model("gan_mlp", **cfg.model.args), run / "model.safetensors", to_dict(cfg), step=0)
    save_config(cfg, run / "config.json")
    return run


def test_train_and_eval_write_grids(cgan_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (cgan_run / "samples" / "step-000009.png").is_file() and (cgan_run / "progress.png").is_file()
    assert main(["eval", str(cgan_run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cgan on mnist-small test (10000 real images") and "D loss" in out and "samples.png" in out


@pytest.mark.parametrize("extra", [[], ["--class", "3"], ["--interpolate", "-n", "8"], ["--interpolate", "--class", "9"]])
def test_sample_writes_a_png(cgan_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    out = tmp_path / "grid.png"
    assert main(["sample", str(cgan_run), "-n", "16", "--out", str(out), "--seed", "2", *extra]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    with Image.open(out) as image:
        width, height = image.size
    strip = "--interpolate" in extra
    assert width / height > 3.8 if strip else width / height < 3.8  # a strip is one row; a grid is 8 wide


def test_sample_without_out_writes_into_the_run(unconditional_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(unconditional_run), "--seed", "5"]) == 0
    assert (unconditional_run / "samples-seed5.png").is_file()
    assert str(unconditional_run / "samples-seed5.png") in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "message"), [
    (["--class", "3"], "--class needs a class-conditional model"),
    (["-n", "0"], "-n must be >= 1, got 0"),
    (["-n", "-4"], "-n must be >= 1, got -4"),
    (["--interpolate", "-n", "1"], "an interpolation needs at least 2 images"),
    (["-n", "100000"], "-n = 100,000 is more than 1,024: a grid of more images is unreadable"),
    (["--interpolate", "-n", "65"], "-n = 65 is more than 64: an interpolation strip is one row"),
    (["--seed", "18446744073709551616"], "argument --seed: must be an integer in [0, 2^63 - 1]"),
    (["--out", "."], "argument --out: . is a folder; give a file name such as samples.png"),
    (["--prompt", "ROMEO"], "is a image_generation run: --prompt does not apply"),
])
def test_bad_sampling_input_is_one_line(unconditional_run: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                                        message: str) -> None:
    assert main(["sample", str(unconditional_run), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archzoo: error:") and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("index", ["10", "-1"])
def test_class_out_of_range_is_one_line(cgan_run: Path, capsys: pytest.CaptureFixture[str], index: str) -> None:
    assert main(["sample", str(cgan_run), "--class", index]) == 2
    err = capsys.readouterr().err
    assert f"--class {index} is out of range: the model knows classes 0..9" in err and len(err.strip().splitlines()) == 1


def test_image_options_are_refused_for_a_language_model_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = resolve_config("names-lstm", ["model.args.hidden_size=8", "model.args.embedding_dim=4"])
    cfg = cfg.with_model_args({"vocab_size": 27})
    run = tmp_path / "lm"
    run.mkdir()
    save_weights(create_model("lstm_lm", **cfg.model.args), run / "model.safetensors", to_dict(cfg), step=0)
    assert main(["sample", str(run), "--class", "3", "--interpolate"]) == 2
    assert "is a language_model run: --class, --interpolate do not apply" in capsys.readouterr().err
