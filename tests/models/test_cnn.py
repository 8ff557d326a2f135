"""The CNN family (alexnet, vgg*, googlenet, resnet*, plain*, densenet_bc): parameter counts against the papers,
geometry, whole-model parity of the reference path, the fused path and a torch.nn twin, and bad arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import Conv2d, torch_nn_twin, use_impl
from archzoo.models import create_model


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(name: str, **kwargs) -> nn.Module:
    """Build without allocating or initialising memory (the ImageNet-sized nets have up to 138M parameters)."""
    with torch.device("meta"):
        return create_model(name, **kwargs)


IMAGENET = {"in_channels": 3, "image_size": 224, "num_classes": 1000}
CIFAR = {"in_channels": 3, "image_size": 32, "num_classes": 10}


@pytest.mark.parametrize("name,kwargs,expected,tolerance", [
    # He et al. 2015 (arXiv:1512.03385) Sec. 4.2: ResNet-20 0.27M, ResNet-56 0.85M (option A has no parameters)
    ("resnet20", CIFAR, 270_000, 0.01), ("resnet56", CIFAR, 850_000, 0.01),
    ("plain20", CIFAR, 270_000, 0.01), ("plain56", CIFAR, 850_000, 0.01),
    # Table 1 / torchvision: ResNet-18 11,689,512 exactly
    ("resnet18", IMAGENET, 11_689_512, 0.0),
    # Simonyan & Zisserman 2015 Table 2: 133M (A) and 138M (D); exact counts as torchvision's vgg11 / vgg16
    ("vgg11", {**IMAGENET, "hidden": 4096}, 132_863_336, 0.0), ("vgg16", {**IMAGENET, "hidden": 4096}, 138_357_544, 0.0),
    # the BN variants drop the conv biases (β replaces them): torchvision's 132,868,840 / 138,365,992 minus them
    ("vgg11_bn", {**IMAGENET, "hidden": 4096}, 132_868_840 - 2_752, 0.0),
    ("vgg16_bn", {**IMAGENET, "hidden": 4096}, 138_365_992 - 4_224, 0.0),
    # Krizhevsky et al. 2012: "60 million parameters"; two-tower connectivity, FC 4096: 60,965,224
    ("alexnet", {**IMAGENET, "hidden": 4096, "groups": 2}, 60_965_224, 0.0),
    # Szegedy et al. 2015 Table 1 sums to about 6.8M; with true 5x5 convs (torchvision uses 3x3 there) and
    # biases the network has 7.0M: within 3% of the table
    ("googlenet", {**IMAGENET, "width": 1.0, "batch_norm": False}, 6_800_000, 0.03),
    # Huang et al. 2017 Table 2: DenseNet-BC (L=100, k=12) 0.8M
    ("densenet_bc", CIFAR, 800_000, 0.05),
])
def test_parameter_counts_match_the_papers(name: str, kwargs: dict, expected: int, tolerance: float) -> None:
    count = n_params(on_meta(name, **kwargs))
    assert abs(count - expected) <= tolerance * expected, f"{name}: {count:,} vs {expected:,}"


def test_exact_small_counts() -> None:
    assert n_params(on_meta("resnet20", **CIFAR)) == 269_722
    assert n_params(on_meta("resnet56", **CIFAR)) == 853_018
    assert n_params(on_meta("densenet_bc", **CIFAR)) == 769_162
    # option B adds projections; the plain nets have exactly option A's parameters
    assert n_params(on_meta("resnet20", shortcut="B", **CIFAR)) > 269_722
    assert n_params(on_meta("plain56", **CIFAR)) == 853_018


def feature_shapes(module: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes = []
    for layer in module:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    return shapes


def test_geometry_on_the_canonical_inputs() -> None:
    with torch.device("meta"):
        resnet18 = create_model("resnet18", **IMAGENET)
        x = torch.empty(1, 3, 224, 224)
        assert feature_shapes(resnet18.stages, resnet18.stem(x)) == [(64, 56, 56), (128, 28, 28), (256, 14, 14),
                                                                     (512, 7, 7)]
        alexnet = create_model("alexnet", **IMAGENET, hidden=4096, groups=2)
        assert tuple(alexnet.features(x).shape[1:]) == (256, 6, 6)
        vgg = create_model("vgg16", **IMAGENET, hidden=4096)
        assert tuple(vgg.features(x).shape[1:]) == (512, 7, 7)
        googlenet = create_model("googlenet", **IMAGENET, width=1.0)
        stem = googlenet.stem(x)
        assert tuple(stem.shape[1:]) == (192, 28, 28)
        assert tuple(googlenet.inceptions(stem).shape[1:]) == (1024, 7, 7)
    resnet20 = create_model("resnet20").eval()
    with torch.no_grad():
        assert feature_shapes(resnet20.stages, resnet20.stem(torch.rand(1, 1, 28, 28))) == [
            (16, 28, 28), (32, 14, 14), (64, 7, 7)]
        assert tuple(create_model("vgg11").eval().features(torch.rand(1, 1, 28, 28)).shape[1:]) == (512, 1, 1)
        assert tuple(create_model("alexnet").eval().features(torch.rand(1, 1, 28, 28)).shape[1:]) == (256, 2, 2)


# small but complete configurations: every block type, shortcut option and stem path, on 8x8 or 16x16 inputs
PARITY = {
    "alexnet": {"image_size": 16, "widths": (8, 12, 16, 16, 8), "hidden": 16, "groups": 2},
    "googlenet": {"image_size": 8, "width": 0.125},
    "resnet20": {"image_size": 8, "shortcut": "B"},
    "plain20": {"image_size": 8, "in_channels": 3},
    "densenet_bc": {"image_size": 8, "depth": 16, "growth_rate": 4},
    "simple_cnn": {"image_size": 8, "channels": (4, 6), "hidden": 8},
    "lenet5": {"image_size": 16},
}


def train_step(model: nn.Module, x: torch.Tensor, probe: torch.Tensor) -> dict:
    model.zero_grad(set_to_none=True)
    out = model(x)
    (out * probe).sum().backward()
    return {"out": out.detach(), "grads": {n: p.grad for n, p in model.named_parameters()},
            "buffers": {n: b.clone() for n, b in model.named_buffers()}}


@pytest.mark.parametrize("name", list(PARITY))
def test_reference_fused_and_torch_nn_twin_agree_on_whole_models(name: str) -> None:
    """Training mode in float64: batch-norm batch statistics, running statistics and every gradient."""
    torch.manual_seed(0)
    model = create_model(name, **PARITY[name]).double().train()
    for m in model.modules():  # dropout would draw different masks in the twin's different call order
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    twin = torch_nn_twin(model)
    assert not any(isinstance(m, Conv2d) for m in twin.modules())
    (x,) = model.example_inputs(3)
    x = x.double()
    probe = torch.randn(3, 10, dtype=torch.float64)
    expected = train_step(twin, x, probe)
    for impl in ("reference", "fused"):
        ours = create_model(name, **PARITY[name]).double().train()
        for m in ours.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        ours.load_state_dict(model.state_dict(), strict=True)
        with use_impl(impl):
            got = train_step(ours, x, probe)
        torch.testing.assert_close(got["out"], expected["out"], atol=1e-9, rtol=1e-9)
        for key in ("grads", "buffers"):
            assert got[key].keys() == expected[key].keys()
            for n, v in expected[key].items():
                torch.testing.assert_close(got[key][n], v, atol=1e-9, rtol=1e-9, msg=lambda m, n=n, i=impl: f"{i} {n}: {m}")


def test_plain_and_residual_nets_share_parameters_but_not_outputs() -> None:
    resnet, plain = create_model("resnet20").eval(), create_model("plain20").eval()
    plain.load_state_dict(resnet.state_dict(), strict=True)  # option A shortcuts have no parameters
    (x,) = resnet.example_inputs(2)
    with torch.no_grad():
        assert not torch.allclose(resnet(x), plain(x))
    block = resnet.stages[1][0]  # 16 -> 32 channels, stride 2: subsample and zero-pad 8 channels each side
    with torch.no_grad():
        y = torch.randn(2, 16, 28, 28)
        s = block.shortcut(y)
    assert s.shape == (2, 32, 14, 14)
    assert torch.equal(s[:, 8:24], y[:, :, ::2, ::2]) and not s[:, :8].any() and not s[:, 24:].any()


def test_small_densenet_trains_every_parameter() -> None:
    model = create_model("densenet_bc", depth=16, dropout=0.2).train()
    (x,) = model.example_inputs(4)
    out = model(x)
    assert out.shape == (4, 10)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name,kwargs,match", [
    ("densenet_bc", {"depth": 50}, "6n \\+ 4"),
    ("resnet20", {"shortcut": "C"}, "shortcut must be one of"),
    ("alexnet", {"image_size": 12}, "at least 15x15"),
    ("alexnet", {"groups": 5}, "groups=5 must divide"),
    ("googlenet", {"width": 0.0}, "width must be"),
    ("vgg16", {"dropout": 1.0}, "dropout must be"),
    ("resnet18", {"image_size": 4}, "at least 8x8"),
])
def test_bad_arguments_are_one_line_errors(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(UserError, match=match) as excinfo:
        create_model(name, **kwargs)
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("name", ["resnet20", "vgg11", "alexnet", "googlenet", "densenet_bc"])
def test_wrong_image_shape_names_the_expected_shape(name: str) -> None:
    model = create_model(name, in_channels=3, image_size=32)
    for bad in (torch.rand(2, 1, 32, 32), torch.rand(2, 3, 28, 28)):
        with pytest.raises(UserError, match=r"expects images of shape \(B, 3, 32, 32\)"):
            model(bad)


def test_the_family_learns_a_batch_of_real_digits_at_low_resolution() -> None:
    """The cheap learning check of the fast suite (the full-size one is in test_model_learning.py, marked
    slow): residual and dense blocks fit 32 real digits pooled to 14x14."""
    from archzoo.data.images import load_idx_split
    from archzoo.tasks.classification import normalise

    train = load_idx_split("mnist-small", "train")
    x = torch.nn.functional.avg_pool2d(normalise(train.images[:32], 0.1307, 0.3081), 2)
    y = train.labels[:32]
    for name, kwargs, lr in [("resnet20", {}, 3e-3), ("densenet_bc", {"depth": 10, "growth_rate": 6}, 1e-2)]:
        torch.manual_seed(0)
        model = create_model(name, image_size=14, **kwargs).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        losses = []
        for _ in range(40):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.25 * losses[0], f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_simple_cnn_pooling_before_the_activation_is_the_classic_order(activation: str, batch_norm: bool) -> None:
    torch.manual_seed(0)
    model = create_model("simple_cnn", channels=(4, 8), hidden=16, activation=activation, batch_norm=batch_norm).eval()
    x = torch.randn(3, 1, 28, 28)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)] or [nn.Identity(), nn.Identity()]
    h = x
    for conv, norm in zip(convs, norms, strict=True):
        h = nn.functional.max_pool2d(getattr(torch, activation)(norm(conv(h))), 2)  # activation, then pooling
    torch.testing.assert_close(model(x), model.classifier(h))
