"""The contract every registered model keeps (STYLE.md tests 3), run over ``list_models()`` so a model
is covered the moment it is registered: outputs with the batch first, finite and deterministic in eval
mode; a gradient for every parameter; save -> load gives identical outputs from the checkpoint's own
config; strict state dicts; canonical variants with the parameter counts their papers or reference
implementations state. Then the image classifiers' input variants. Family files test what only
their family does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from archzoo.config import to_dict
from archzoo.errors import UserError
from archzoo.models import create_model, list_models
from archzoo.models.base import ImageClassifier
from archzoo.training.checkpoint import load_model, save_weights
from archzoo.training.config import resolve_config
from helpers import MODEL_FAMILIES, SLOW_MODELS, model_params

# every model with its defaults, and the variants that take other code paths
VARIANT_PATHS = [("rnn_forecaster", {"decoder": "autoregressive"}), ("lstm_forecaster", {"decoder": "autoregressive"}),
                 ("gru_forecaster", {"decoder": "autoregressive"}), ("gpt", {"tie_weights": True}),
                 ("gpt", {"positions": "rotary"}), ("gpt", {"positions": "sinusoidal"}), ("dcgan", {"num_classes": 10}),
                 ("seq2seq_gru_context", {"maxout_size": 0}), ("seq2seq_lstm", {"reverse_source": False})]
EVERY = [pytest.param(name, kwargs, id=name + "".join(f"-{k}={v}" for k, v in kwargs.items()),
                      marks=[pytest.mark.slow] if name in SLOW_MODELS else [])
         for name, kwargs in [(n, {}) for n in list_models()] + VARIANT_PATHS]
# by the builders' declared return type: building every registered model to ask takes seconds
ALL = MODEL_FAMILIES["image_classifier"]
PARAMS = model_params(ALL)
VARIANTS = [{}, {"in_channels": 3, "image_size": 32}, {"num_classes": 7}]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main_output(out: object) -> torch.Tensor:
    """The prediction of a forward: the tensor itself, or the first of (logits, state)."""
    return out if isinstance(out, torch.Tensor) else main_output(out[0])  # type: ignore[index]


# ------------------------------------------------------------------------------ every registered model


@pytest.mark.parametrize(("name", "kwargs"), EVERY)
def test_outputs_have_the_batch_are_finite_and_deterministic(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    for batch_size in (1, 3):
        inputs = model.example_inputs(batch_size)
        assert all(x.shape[0] == batch_size for x in inputs)
        with torch.no_grad():
            out = main_output(model(*inputs))
            assert out.shape[0] == batch_size and out.is_floating_point() and torch.isfinite(out).all()
            assert torch.equal(main_output(model(*inputs)), out)  # eval mode: no dropout, no batch statistics


@pytest.mark.parametrize(("name", "kwargs"), EVERY)
def test_every_parameter_gets_a_gradient(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = create_model(name, **kwargs).train()
    if not any(p.requires_grad for p in model.parameters()):  # the naive forecasts and the Hopfield networks,
        assert name in ("naive_last", "seasonal_naive", "hopfield", "modern_hopfield")  # which store, not train
        return
    out = main_output(model(*model.example_inputs(4)))
    (out * torch.randn_like(out)).sum().backward()
    for pname, p in model.named_parameters():  # (an embedding's unused rows get none; its used ones do)
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}.{pname}"
        assert p.grad.abs().sum() > 0, f"{name}.{pname} has an all-zero gradient"


@pytest.mark.parametrize(("name", "kwargs"), EVERY)
def test_save_then_load_gives_identical_outputs_and_strict_state(name: str, kwargs: dict, tmp_path: Path) -> None:
    cfg = resolve_config(None, [f"model.name={name!r}", *[f"model.args.{k}={json.dumps(v)}" for k, v in kwargs.items()]])
    torch.manual_seed(1)
    model = create_model(name, **cfg.model.args).eval()
    save_weights(model, tmp_path / "model.safetensors", to_dict(cfg), step=7)
    loaded, loaded_cfg = load_model(tmp_path)  # rebuilt from the checkpoint's own config, no flags
    assert type(loaded) is type(model) and loaded_cfg == cfg and not loaded.training
    inputs = model.example_inputs(2)
    with torch.no_grad():
        assert torch.equal(main_output(loaded(*inputs)), main_output(model(*inputs)))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    state = model.state_dict()
    if state:  # strict both ways: an extra or a missing key is refused
        with pytest.raises(RuntimeError, match="Unexpected key"):
            loaded.load_state_dict({**state, "extra.weight": torch.zeros(1)}, strict=True)
        first = next(iter(state))
        with pytest.raises(RuntimeError, match="Missing key"):
            loaded.load_state_dict({k: v for k, v in state.items() if k != first}, strict=True)


# Canonical variants and the counts their sources state (the CNNs' are in test_cnn.py, TextCNN's in
# test_sentence_models.py, DCGAN's in test_gan.py, with the same exactness).
CANONICAL = [
    # nanoGPT's shakespeare-char model (6 x 384, 6 heads, context 256, bias-free, tied head) reports
    # "number of parameters: 10.65M", counting without the position embedding
    ("gpt", {"tie_weights": True, "bias": False}, 10_646_784, "position.weight"),
    # bentrevett/pytorch-seq2seq tutorial 1 (de 7,853 / en 5,893 words): "13,898,501 trainable parameters"
    ("seq2seq_lstm", {"src_vocab_size": 7853, "tgt_vocab_size": 5893}, 13_898_501, None),
    # tutorial 2's 14,219,781 plus Cho et al.'s initial decoder state s_0 = tanh(V h_T) (512 x 512 + 512),
    # which bentrevett leaves out; linear output as theirs (maxout_size 0)
    ("seq2seq_gru_context", {"src_vocab_size": 7853, "tgt_vocab_size": 5893, "maxout_size": 0},
     14_219_781 + 262_656, None),
    # tutorial 3's 20,518,405 less 262,144: Bahdanau et al.'s s_0 reads the backward state alone (512 -> 512),
    # bentrevett's reads both directions (1024 -> 512)
    ("seq2seq_attention", {"src_vocab_size": 7853, "tgt_vocab_size": 5893, "maxout_size": 0},
     20_518_405 - 262_144, None),
]


@pytest.mark.parametrize(("name", "kwargs", "expected", "left_out"), CANONICAL, ids=[c[0] for c in CANONICAL])
def test_canonical_variants_have_their_sources_parameter_counts(name: str, kwargs: dict, expected: int,
                                                                 left_out: str | None) -> None:
    model = create_model(name, **kwargs)
    excluded = dict(model.named_parameters())[left_out].numel() if left_out else 0
    assert n_params(model) - excluded == expected


# ------------------------------------------------------------------------------ image classifiers


def test_the_image_classifiers_are_found_by_type() -> None:
    assert {"lenet5", "mlp", "resnet20", "simple_cnn", "vgg11"} <= set(ALL)
    assert all(isinstance(create_model(name), ImageClassifier) for name in ALL if name not in SLOW_MODELS)


@pytest.mark.parametrize("kwargs", VARIANTS, ids=["mnist", "rgb32", "7classes"])
@pytest.mark.parametrize("name", PARAMS)
def test_output_shape_and_finite(name: str, kwargs: dict) -> None:
    model = create_model(name, **kwargs).eval()
    c, s, k = kwargs.get("in_channels", 1), kwargs.get("image_size", 28), kwargs.get("num_classes", 10)
    for batch_size in (1, 3):
        (x,) = model.example_inputs(batch_size)
        assert x.shape == (batch_size, c, s, s)
        with torch.no_grad():
            out = model(x)
            assert out.shape == (batch_size, k)
            assert out.dtype == torch.float32 and torch.isfinite(out).all()
            # eval mode is deterministic (dropout off) and the output depends on the input
            assert torch.equal(model(x), out)
            assert not torch.allclose(model(x + 1.0), out)


@pytest.mark.parametrize("kwargs", VARIANTS[1:2], ids=["rgb32"])
@pytest.mark.parametrize("name", PARAMS)
def test_every_parameter_gets_a_gradient_on_rgb32(name: str, kwargs: dict) -> None:
    model = create_model(name, **kwargs).train()
    (x,) = model.example_inputs(8)
    x.requires_grad_(True)
    out = model(x)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}.{pname} has an all-zero gradient"


@pytest.mark.parametrize("kwargs", VARIANTS[1:2], ids=["rgb32"])
@pytest.mark.parametrize("name", PARAMS)
def test_save_then_load_model_gives_identical_outputs_on_rgb32(name: str, kwargs: dict, tmp_path: Path) -> None:
    overrides = [f"model.name={name!r}"] + [f"model.args.{k}={v}" for k, v in kwargs.items()]
    cfg = resolve_config(None, overrides)
    torch.manual_seed(1)
    model = create_model(name, **cfg.model.args).eval()
    save_weights(model, tmp_path / "model.safetensors", to_dict(cfg), step=7)
    loaded, loaded_cfg = load_model(tmp_path)  # rebuilt from the checkpoint's own config, no flags
    assert type(loaded) is type(model) and loaded_cfg == cfg and not loaded.training
    (x,) = model.example_inputs(4)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize("name", PARAMS)
def test_state_dict_loads_strictly_and_only_strictly(name: str) -> None:
    torch.manual_seed(1)
    a = create_model(name).eval()
    torch.manual_seed(2)
    b = create_model(name).eval()
    (x,) = a.example_inputs(2)
    with torch.no_grad():
        assert not torch.equal(a(x), b(x))
    b.load_state_dict(a.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    state = a.state_dict()
    with pytest.raises(RuntimeError, match="Unexpected key"):
        b.load_state_dict({**state, "extra.weight": torch.zeros(1)}, strict=True)
    first = next(iter(state))
    with pytest.raises(RuntimeError, match="Missing key"):
        b.load_state_dict({k: v for k, v in state.items() if k != first}, strict=True)
    # a variant with another input shape has the same keys but different shapes: refused too
    with pytest.raises(RuntimeError, match="size mismatch"):
        create_model(name, in_channels=3, image_size=32).load_state_dict(state, strict=True)


@pytest.mark.parametrize("name", PARAMS)
def test_wrong_input_shape_is_a_one_line_error(name: str) -> None:
    model = create_model(name)
    for bad in (torch.rand(2, 3, 28, 28), torch.rand(2, 1, 32, 32), torch.rand(1, 28, 28)):
        with pytest.raises(UserError, match=r"expects images of shape \(B, 1, 28, 28\)") as excinfo:
            model(bad)
        assert "\n" not in str(excinfo.value)


def test_simple_cnn_parameter_count() -> None:
    # conv 1->32 (3x3): 320; conv 32->64: 18,496; FC 64*7*7 -> 128: 401,536; FC 128 -> 10: 1,290
    assert n_params(create_model("simple_cnn")) == 320 + 18_496 + 401_536 + 1_290 == 421_642


def test_lenet5_parameter_count() -> None:
    """LeCun et al. 1998 (Sec. II-B) count exactly 60,000 trainable parameters in C1..F6:
    C1 156 + S2 12 + C3 1,516 + S4 32 + C5 48,120 + F6 10,164. Our full-C3 variant has 61,706, for the
    reasons the LeNet5 docstring gives under "Differs from paper": C3 connects all 6 S2 maps to each
    of its 16 maps (2,416 parameters, +900 over the sparse connection table), S2/S4 are plain
    pooling without the trainable coefficient and bias (-44), and the output is a linear layer
    (+850) instead of RBF units with fixed weights: 60,000 + 900 - 44 + 850 = 61,706."""
    model = create_model("lenet5")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [n_params(c) for c in convs] == [156, 2_416]  # C1 6*(25+1); C3 16*(6*25+1), fully connected
    assert [n_params(fc) for fc in linears] == [48_120, 10_164, 850]  # C5 (as a 400->120 FC), F6, output
    paper = 156 + 12 + 1_516 + 32 + 48_120 + 10_164
    assert paper == 60_000
    assert n_params(model) == paper + (2_416 - 1_516) - (12 + 32) + 850 == 61_706
    # RGB 32x32: only C1 grows (3 input channels); the padding becomes 0 and the rest is unchanged
    assert n_params(create_model("lenet5", in_channels=3, image_size=32)) == 61_706 + 2 * 6 * 25


def test_mlp_default_is_800_800() -> None:
    model = create_model("mlp")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 800), (800, 800), (800, 10)]
    assert n_params(model) == 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10 == 1_276_810
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2


def test_lenet5_geometry_matches_the_paper_on_32x32() -> None:
    # C1 6@28x28, S2 6@14x14, C3 16@10x10, S4 16@5x5 on the padded 32x32 input (Fig. 2)
    model = create_model("lenet5").eval()
    shapes = []
    x = torch.rand(1, 1, 28, 28)
    for layer in model.features:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes[0] == (6, 28, 28) and shapes[2] == (6, 14, 14) and shapes[3] == (16, 10, 10) and shapes[5] == (16, 5, 5)


@pytest.mark.parametrize("kwargs", [{"activation": "relu", "pool": "max"}, {"image_size": 20}, {"image_size": 48}])
def test_lenet5_options(kwargs: dict) -> None:
    model = create_model("lenet5", **kwargs).eval()
    (x,) = model.example_inputs(2)
    assert model(x).shape == (2, 10)
    if "activation" in kwargs:
        assert any(isinstance(m, nn.ReLU) for m in model.modules())
        assert any(isinstance(m, nn.MaxPool2d) for m in model.modules())
