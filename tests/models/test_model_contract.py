"""Contract over every registered image classifier (STYLE.md tests 3): shapes, finiteness, gradients,
save/load, strict state_dict, input variants, and the canonical parameter counts. Language models
have theirs in test_rnn_lm.py; the registry test below makes sure every model is in one of them."""

from __future__ import annotations

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
from helpers import MODEL_FAMILIES, REGISTERED_MODELS, model_params

ALL = [name for name in list_models() if isinstance(create_model(name), ImageClassifier)]
PARAMS = model_params(ALL)
VARIANTS = [{}, {"in_channels": 3, "image_size": 32}, {"num_classes": 7}]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_registry_holds_the_documented_models() -> None:
    # the generic tests here and in test_rnn_lm.py cover exactly these; a new family must not slip past
    assert ALL == MODEL_FAMILIES["image_classifier"]
    assert list_models() == REGISTERED_MODELS


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


@pytest.mark.parametrize("kwargs", VARIANTS[:2], ids=["mnist", "rgb32"])
@pytest.mark.parametrize("name", PARAMS)
def test_every_parameter_gets_a_gradient(name: str, kwargs: dict) -> None:
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


@pytest.mark.parametrize("kwargs", VARIANTS[:2], ids=["mnist", "rgb32"])
@pytest.mark.parametrize("name", PARAMS)
def test_save_then_load_model_gives_identical_outputs(name: str, kwargs: dict, tmp_path: Path) -> None:
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
