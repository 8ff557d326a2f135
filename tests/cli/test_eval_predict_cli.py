"""``archzoo eval`` and ``archzoo predict`` end to end on a run trained once per module on real data."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archzoo.cli.main import main
from archzoo.data.images import load_idx_split
from helpers import SHARED_DATA, small_run_overrides

STEPS = 150
VARIANTS = ("plain", "inverted", "rgb", "big")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The quickstart preset with the MLP (the fastest model to train on two cores) for 150 steps on
    the built-in MNIST subset: about 93% test accuracy. Returns the run folder and its test accuracy."""
    run = tmp_path_factory.mktemp("trained") / "run"
    overrides = [arg for o in small_run_overrides() for arg in ("--set", o)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHZOO_DATA", str(SHARED_DATA))
        mp.setenv("XDG_CACHE_HOME", str(run.parent / "cache"))
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            rc = main(["train", "quickstart", "--model", "mlp", "--max-steps", str(STEPS), "--out", str(run),
                       "--no-progress", *overrides])
    assert rc == 0, out.getvalue()
    accuracy = float(re.search(r"^test: loss=[\d.]+ accuracy=([\d.]+)$", out.getvalue(), re.M).group(1))
    assert accuracy > 0.85
    return run, accuracy


@pytest.fixture(scope="module")
def digit_images(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, int, str]]:
    """The first MNIST test image of each class, as PNG files in four forms: as stored (light on dark),
    inverted (dark ink on white paper), RGB, and resized to 100x100."""
    folder = tmp_path_factory.mktemp("digits")
    test = load_idx_split("mnist-small", "test")  # the full, real MNIST test set
    files = []
    for label in range(10):
        index = int((test.labels == label).nonzero()[0])
        pixels = test.images[index, 0].numpy()
        forms = {
            "plain": Image.fromarray(pixels, mode="L"),
            "inverted": Image.fromarray(255 - pixels, mode="L"),
            "rgb": Image.fromarray(np.stack([pixels] * 3, axis=-1), mode="RGB"),
            "big": Image.fromarray(pixels, mode="L").resize((100, 100), Image.Resampling.BILINEAR),
        }
        for form, image in forms.items():
            path = folder / f"digit{label}-{form}.png"
            image.save(path)
            files.append((path, label, form))
    return files


def parse_predictions(out: str) -> dict[str, list[tuple[str, float]]]:
    result = {}
    for line in out.splitlines():
        path, ranked = line.split("\t")
        fields = ranked.split()
        result[path] = [(fields[i], float(fields[i + 1])) for i in range(0, len(fields), 2)]
    return result


def test_eval_prints_accuracy_and_per_class_and_writes_plots(capsys: pytest.CaptureFixture[str],
                                                             trained: tuple[Path, float]) -> None:
    run, train_accuracy = trained
    for name in ("eval.json", "confusion.png", "misclassified.png"):
        (run / name).unlink()
    rc, out, err = cli(capsys, "eval", str(run))
    assert rc == 0 and err == ""
    lines = out.splitlines()
    head = re.fullmatch(r"mlp on mnist-small test \(10000 examples\): accuracy ([\d.]+), loss ([\d.]+)", lines[0])
    assert head, lines[0]
    # the same best weights on the same test set as at the end of training
    assert float(head.group(1)) == pytest.approx(train_accuracy, abs=1e-4)
    assert lines[1] == "per-class accuracy:"
    per_class = [re.fullmatch(r"\s+(\d)\s+([\d.]+)", line) for line in lines[2:12]]
    assert all(per_class) and [m.group(1) for m in per_class] == [str(c) for c in range(10)]
    report = json.loads((run / "eval.json").read_text())
    assert [float(m.group(2)) for m in per_class] == pytest.approx(list(report["per_class_accuracy"].values()), abs=1e-4)
    assert lines[12] == f"weights: best.safetensors (step {report['step']}), fp32" and report["weights"] == "best.safetensors"
    # only what this evaluation wrote, not the other files of the run folder
    assert lines[13] == "wrote " + ", ".join(str(run / n) for n in ("confusion.png", "eval.json", "misclassified.png"))
    assert len(lines) == 14
    for name in ("confusion.png", "misclassified.png"):
        with Image.open(run / name) as im:
            assert im.format == "PNG"


def test_eval_last_weights_and_a_weights_file(capsys: pytest.CaptureFixture[str], trained: tuple[Path, float]) -> None:
    run, _ = trained
    rc, out_last, _ = cli(capsys, "eval", str(run), "--which", "last", "--batch-size", "4096")
    assert rc == 0 and out_last.startswith("mlp on mnist-small test (10000 examples): accuracy ")
    report = json.loads((run / "eval.json").read_text())  # says which weights it is about
    assert report["weights"] == "model.safetensors" and report["step"] == STEPS
    assert f"weights: model.safetensors (step {STEPS}), fp32" in out_last
    rc, out_file, _ = cli(capsys, "eval", str(run / "best.safetensors"))
    assert rc == 0 and f"{run / 'eval.json'}" in out_file.splitlines()[-1]


def test_predict_top3_on_real_digits(capsys: pytest.CaptureFixture[str], trained: tuple[Path, float],
                                     digit_images: list[tuple[Path, int, str]]) -> None:
    run, _ = trained
    rc, out, err = cli(capsys, "predict", str(run), *(str(p) for p, _, _ in digit_images))
    assert rc == 0 and err == ""
    predictions = parse_predictions(out)
    assert list(predictions) == [str(p) for p, _, _ in digit_images]  # one line per image, in order
    correct = {form: 0 for form in VARIANTS}
    for path, label, form in digit_images:
        top = predictions[str(path)]
        assert len(top) == 3 and len({c for c, _ in top}) == 3
        probs = [p for _, p in top]
        assert probs == sorted(probs, reverse=True) and 0 <= probs[-1] and sum(probs) <= 1.0 + 2e-3
        correct[form] += top[0][0] == str(label)
    assert sum(correct.values()) >= 30, correct  # most of the 40 (35 when written; a random model gets about 4)
    assert min(correct.values()) >= 6, correct  # in every form: inversion, colour and size are handled


def test_predict_is_invariant_to_inversion_and_colour(capsys: pytest.CaptureFixture[str], trained: tuple[Path, float],
                                                      digit_images: list[tuple[Path, int, str]]) -> None:
    run, _ = trained
    by_form = {(label, form): path for path, label, form in digit_images}
    rc, out, _ = cli(capsys, "predict", str(run), *(str(by_form[c, f]) for c in range(10) for f in ("plain", "inverted", "rgb")))
    assert rc == 0
    predictions = parse_predictions(out)
    for c in range(10):
        plain, inverted, rgb = (predictions[str(by_form[c, f])] for f in ("plain", "inverted", "rgb"))
        assert plain[0][0] == inverted[0][0] == rgb[0][0]
        assert plain[0][1] == pytest.approx(inverted[0][1], abs=0.02) and plain == rgb


def test_predict_top_option(capsys: pytest.CaptureFixture[str], trained: tuple[Path, float],
                            digit_images: list[tuple[Path, int, str]]) -> None:
    run, _ = trained
    image = str(digit_images[0][0])
    rc, out, _ = cli(capsys, "predict", str(run), image, "--top", "5")
    assert rc == 0 and len(parse_predictions(out)[image]) == 5
    rc, out, _ = cli(capsys, "predict", str(run), image, "--top", "50")  # capped at the number of classes
    ranked = parse_predictions(out)[image]
    assert rc == 0 and sorted(c for c, _ in ranked) == [str(c) for c in range(10)]
    assert sum(p for _, p in ranked) == pytest.approx(1.0, abs=6e-3)


def test_predict_reads_a_list_of_inputs_from_a_file_or_stdin(capsys: pytest.CaptureFixture[str], trained: tuple[Path, float],
                                                            digit_images: list[tuple[Path, int, str]], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    run, _ = trained
    paths = [str(p) for p, _, form in digit_images if form == "plain"]
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(paths) + "\n")
    rc, from_file, _ = cli(capsys, "predict", str(run), "--input", str(listing))
    assert rc == 0 and list(parse_predictions(from_file)) == paths
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(listing.read_bytes())))
    rc, from_stdin, _ = cli(capsys, "predict", str(run), "--input", "-")
    assert rc == 0 and from_stdin == from_file


@pytest.mark.parametrize(("flags", "message"), [(["--dtype", "bf16"], "bf16"), (["--quantize", "int8"], "int8")])
def test_eval_and_predict_in_bf16_and_int8(capsys: pytest.CaptureFixture[str], trained: tuple[Path, float],
                                          digit_images: list[tuple[Path, int, str]], tmp_path: Path, flags: list[str],
                                          message: str) -> None:
    run, accuracy = trained
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("config.json", "best.safetensors", "model.safetensors"):
        (copy / name).write_bytes((run / name).read_bytes())
    rc, out, _ = cli(capsys, "eval", str(copy), "--device", "cpu", *flags)
    head = re.match(r"mlp on mnist-small test \(10000 examples\): accuracy ([\d.]+)", out)
    assert rc == 0 and head and abs(float(head.group(1)) - accuracy) < 0.01
    assert out.splitlines()[12].endswith("bf16" if message == "bf16" else "fp32, int8")
    assert json.loads((copy / "eval.json").read_text())["dtype" if message == "bf16" else "quantize"] == message
    rc, out, _ = cli(capsys, "predict", str(copy), str(digit_images[0][0]), "--device", "cpu", *flags)
    assert rc == 0 and len(parse_predictions(out)) == 1
