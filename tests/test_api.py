"""The Python API (archzoo.api): its docstring examples run as tests, lazy imports, keyword overrides,
and bad input as one-line UserErrors."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import archzoo
from archzoo import api
from archzoo.errors import UserError
from helpers import REPO


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> api.Run:
    """The docstring examples, run once: they train an MLP for 30 steps on the built-in MNIST subset."""
    tmp = tmp_path_factory.mktemp("api")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        result = doctest.testmod(api, extraglobs={"archzoo": archzoo, "torch": torch, "tmp": tmp}, report=True,
                                 optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0, result
    return archzoo.load(tmp / "run")


def test_the_docstring_examples_pass(run: api.Run) -> None:
    assert run.config.model.name == "mlp" and run.verbs == ("predict", "evaluate", "export")
    assert run.config.preset == "quickstart"  # saved in config.json, shown by `archzoo runs`
    assert repr(run).startswith("Run(") and "mlp for classification" in repr(run)


def test_import_archzoo_and_help_stay_light() -> None:
    code = "import sys, archzoo; assert 'torch' not in sys.modules; archzoo.__version__; print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "ok\n"
    code = "import sys; from archzoo.cli.main import build_parser; build_parser(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_predict_takes_what_users_have(run: api.Run, tmp_path: Path) -> None:
    from archzoo.data.images import load_idx_split

    test = load_idx_split("mnist-small", "test")
    pixels = test.images[:4, 0]  # uint8 (4, 28, 28), the real test digits
    path = tmp_path / "digit.png"
    Image.fromarray(pixels[0].numpy()).save(path)
    from_tensor = run.predict(pixels[:, None])  # (N, 1, 28, 28) uint8
    assert from_tensor.probs.shape == (4, 10) and len(from_tensor.lines()) == 4
    assert torch.allclose(run.predict(pixels[:, None].float() / 255).probs, from_tensor.probs)
    assert torch.allclose(run.predict(pixels[0].numpy()).probs, from_tensor.probs[:1])  # numpy (28, 28)
    # a file and a PIL image are prepared as the dataset's digits are: the same for both
    assert torch.allclose(run.predict(str(path)).probs, run.predict(Image.open(path)).probs)
    assert run.predict([path, pixels[1].numpy()]).names == [str(path), "#1"]
    accuracy = (run.predict(test.images[:200]).probs.argmax(1) == test.labels[:200]).float().mean()
    assert accuracy > 0.6  # trained for 30 steps


@pytest.mark.parametrize(("inputs", "message"), [
    (torch.zeros(2, 3, 28, 28), "images of shape (1, 28, 28) or a batch (N, 1, 28, 28), got an array of shape (2, 3, 28, 28)"),
    (np.full((28, 28), 2.0), "float image arrays must hold pixels in [0, 1]"),
    (torch.zeros(28, 28, dtype=torch.int32), "must be uint8 (0..255) or float"),
    (42, "predict takes an image, a file path or a list of them, got int"),
    ([], "got an empty list"),
    (["no-such.png"], "image no-such.png does not exist"),
    ([object()], "predict cannot read a object"),
])
def test_wrong_inputs_are_one_line(run: api.Run, inputs: object, message: str) -> None:
    with pytest.raises(UserError, match=".*") as err:
        run.predict(inputs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_verbs_of_other_tasks_and_unknown_options_are_refused(run: api.Run) -> None:
    with pytest.raises(UserError, match="is a classification run \\(mlp\\): it can predict, evaluate, export, not generate"):
        run.generate("ROMEO:")
    with pytest.raises(UserError, match="predict of a classification run takes no beam; its options: top, batch_size"):
        run.predict(torch.zeros(1, 28, 28), beam=3)


def test_evaluate_records_the_weights_and_step(run: api.Run, tmp_path: Path) -> None:
    result = run.evaluate(out_dir=tmp_path)
    assert result["weights"] == "best.safetensors" and result["step"] == run.step and result["dtype"] == "fp32"
    assert {p.name for p in run.written} == {"eval.json", "confusion.png", "misclassified.png"}


def test_bf16_and_int8_runs_agree_with_fp32(run: api.Run) -> None:
    digits = torch.rand(8, 1, 28, 28)
    fp32 = run.predict(digits).probs
    for kwargs in ({"dtype": "bf16"}, {"quantize": "int8"}):
        fast = archzoo.load(run.run_dir, device="cpu", **kwargs)
        assert (fast.predict(digits).probs - fp32).abs().max() < 0.05, kwargs


@pytest.mark.parametrize(("call", "message"), [
    (lambda: archzoo.create_model("resnet2O"), "unknown model 'resnet2O' (did you mean: resnet20"),
    (lambda: archzoo.load(REPO / "src"), "has no model weights"),
    (lambda: archzoo.load(REPO / "no-such-run"), "does not exist; give a run folder"),
    (lambda: archzoo.train("mnist-fast", lr="high", out="x"), "config key 'train.lr' expects float"),
    (lambda: archzoo.train("mnist-fast", lrr=1.0), "unknown config key 'lrr' (did you mean: lr"),
    (lambda: archzoo.train("mnist-fast", seed=1, dataset=3), "config key 'data.dataset' expects str"),
])
def test_bad_calls_are_one_line(call: object, message: str) -> None:
    with pytest.raises(UserError) as err:
        call()  # type: ignore[operator]
    assert message in str(err.value) and "\n" not in str(err.value)


def test_keyword_overrides_find_their_section() -> None:
    assert api.override_strings("mnist-fast", {"epochs": 2, "augment": "shift", "dropout": 0.1, "model": "mlp",
                                              "train": {"betas": [0.9, 0.95]}}) == [
        "train.epochs=2", 'data.augment="shift"', "model.args.dropout=0.1", 'model.name="mlp"', "train.betas=[0.9, 0.95]"]


def test_load_refuses_bad_precision_options(run: api.Run) -> None:
    with pytest.raises(UserError, match="unknown dtype 'fp16'"):
        archzoo.load(run.run_dir, dtype="fp16")
    with pytest.raises(UserError, match="unknown quantization 'int4'"):
        archzoo.load(run.run_dir, quantize="int4")
    with pytest.raises(UserError, match="unknown export format 'tflite'"):
        run.export("tflite")
