"""Helpers shared by the test modules (imported as ``helpers``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from archzoo.models import MODELS, list_models
from archzoo.models.base import ImageClassifier

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def family(*modules: str) -> list[str]:
    """The registered models whose builders live in ``archzoo.models.<module>``, for the family's own
    tests: a model added to a family is in them the moment it is registered."""
    return [n for n in list_models() if MODELS.get(n).__module__.rsplit(".", 1)[-1] in modules]


def returning(kind: type) -> list[str]:
    """The registered models whose builders declare that they return a ``kind``."""
    return [n for n in list_models() if issubclass(typing.get_type_hints(MODELS.get(n))["return"], kind)]


# Families for the tests of what only a family does (shapes, decoding, ...); what every model must do is
# tested over the whole registry in tests/models/test_model_contract.py.
MODEL_FAMILIES: dict[str, list[str]] = {
    "associative_memory": family("hopfield"),
    "forecaster": family("forecast"), "gan": family("gan"), "image_classifier": returning(ImageClassifier),
    "recurrent_lm": family("rnn_lm"), "sentence_classifier": family("sentence", "bert"),
    "sequence_model": family("sequence"), "speech": family("speech"), "transformer_lm": family("gpt"),
    "translator": family("seq2seq"),
}
REGISTERED_MODELS = list_models()

# Models whose forward has no matmul or convolution, so the FLOP count (multiply-adds only) is 0: the
# naive forecasts copy values, NBSVM gathers and sums its n-gram weights
NO_MATMUL_MODELS = {"naive_last", "seasonal_naive", "nbsvm"}

# Models whose generic tests take seconds each on 2 cores; the fast suite covers their code through smaller
# siblings (resnet20/plain20 for the 56-layer nets, vgg11/vgg11_bn for vgg16) or through the small
# configurations of tests/models/test_cnn.py (densenet_bc, googlenet, option-B shortcuts), and `-m slow`
# runs the generic tests on them too.
SLOW_MODELS = {"densenet_bc", "googlenet", "plain56", "resnet18", "resnet56", "vgg16", "vgg16_bn"}


def model_params(names: list[str]) -> list:
    """``names`` for ``pytest.mark.parametrize``, the ones in SLOW_MODELS marked slow."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_MODELS else n for n in names]

needs_shared_data = pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist not staged")
needs_spoken_digits = pytest.mark.skipif(not (SHARED_DATA / "spoken-digits").is_dir(),
                                         reason="../shared/data/spoken-digits not staged")
needs_mr = pytest.mark.skipif(not (SHARED_DATA / "rt-polarity").is_dir(), reason="../shared/data/rt-polarity not staged")


def small_run_overrides(**extra: object) -> list[str]:
    """Overrides for a seconds-long real-data run on the built-in MNIST subset."""
    base = {"data.dataset": "'mnist-small'", "data.val_size": 500, "train.batch_size": 64,
            "train.log_every_steps": 5, "train.precision": "'fp32'"}
    base.update({k: (repr(v) if isinstance(v, str) else v) for k, v in extra.items()})
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in base.items()]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``archzoo ARGV...`` in-process: (exit code, stdout, stderr); a traceback anywhere fails."""
    from archzoo.cli.main import main

    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err
