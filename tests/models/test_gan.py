"""Contract of the GAN family (models/gan.py): generator and discriminator shapes, gradients to every
parameter, save/load, the DCGAN architecture guidelines, and one-line errors for bad labels and sizes."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch
from torch import nn

from archzoo.config import to_dict
from archzoo.errors import UserError
from archzoo.layers import use_impl
from archzoo.models import MODELS, create_model, list_models
from archzoo.models.gan import GAN, MinibatchStd
from archzoo.training.checkpoint import load_model, save_weights
from archzoo.training.config import resolve_config
from helpers import MODEL_FAMILIES

GANS = MODEL_FAMILIES["gan"]
SIZES = [{}, {"in_channels": 3, "image_size": 32}]


def test_the_family_is_every_registered_gan() -> None:
    # by the builders' declared return type: building every registered model (VGG-16 ...) takes seconds
    assert [name for name in list_models() if typing.get_type_hints(MODELS.get(name)).get("return") is GAN] == GANS
    assert all(type(create_model(name)) is GAN for name in GANS)


@pytest.mark.parametrize("kwargs", SIZES, ids=["mnist", "rgb32"])
@pytest.mark.parametrize("name", GANS)
def test_generator_and_discriminator_shapes(name: str, kwargs: dict) -> None:
    model = create_model(name, **kwargs).eval()
    c, s = kwargs.get("in_channels", 1), kwargs.get("image_size", 28)
    for batch_size in (1, 5):
        inputs = model.example_inputs(batch_size)
        z, y = inputs[0], (inputs[1] if len(inputs) > 1 else None)
        assert z.shape == (batch_size, 100)
        with torch.no_grad():
            images = model.generator(z, y)
            assert images.shape == (batch_size, c, s, s) and images.dtype == torch.float32
            assert images.abs().max() <= 1.0  # tanh: the range the data is scaled to
            logits = model.discriminator(images, y)
            assert logits.shape == (batch_size, 1) and torch.isfinite(logits).all()
            assert torch.equal(model(*inputs), logits)  # forward is D(G(z)), the generator's loss graph
            assert not torch.equal(model.generator(z + 1.0, y), images)  # the noise matters


@pytest.mark.parametrize("name", GANS)
def test_save_then_load_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    cfg = resolve_config(None, ["task='image_generation'", f"model.name={name!r}"])
    torch.manual_seed(1)
    model = create_model(name, **cfg.model.args).eval()
    save_weights(model, tmp_path / "model.safetensors", to_dict(cfg), step=3)
    loaded, loaded_cfg = load_model(tmp_path)
    assert loaded_cfg == cfg and type(loaded) is GAN
    inputs = model.example_inputs(4)
    with torch.no_grad():
        assert torch.equal(loaded(*inputs), model(*inputs))
        assert torch.equal(loaded.generator(*inputs), model.generator(*inputs))
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert {k.split(".")[0] for k in model.state_dict()} == {"generator", "discriminator"}  # both nets, one file


@pytest.mark.parametrize(("image_size", "up"), [(28, 2), (32, 3)])
def test_dcgan_follows_the_architecture_guidelines(image_size: int, up: int) -> None:
    """Radford et al. 2015, Sec. 3: strided convolutions and fractionally strided ones instead of pooling,
    batch norm in both networks except G's output and D's input, ReLU in G (tanh out), LeakyReLU in D."""
    model = create_model("dcgan", image_size=image_size)
    g, d = model.generator, model.discriminator
    assert not any(isinstance(m, nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d) for m in model.modules())
    transposed = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(transposed) == len(convs) == up and all(m.stride == (2, 2) for m in transposed + convs)
    assert isinstance(g.net[-1], nn.Tanh) and not isinstance(g.net[-2], nn.BatchNorm2d)
    assert isinstance(d.net[1], nn.LeakyReLU) and d.net[1].negative_slope == 0.2  # no batch norm on D's input
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == up - 1
    assert sum(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in g.modules()) == up
    assert any(isinstance(m, nn.ReLU) for m in g.modules()) and not any(isinstance(m, nn.LeakyReLU) for m in g.modules())
    # the paper's initialisation: N(0, 0.02)
    weights = torch.cat([m.weight.flatten() for m in transposed + convs])
    assert abs(weights.std().item() - 0.02) < 0.002


def test_dcgan_parameter_count() -> None:
    # G: project 100 -> 128*7*7 (no bias) + BN; convT 128->64 4x4 (no bias) + BN; convT 64->1 4x4 + bias
    g = 100 * 6272 + 2 * 6272 + 128 * 64 * 16 + 2 * 64 + 64 * 16 + 1
    # D: conv 1->64 4x4 + bias; conv 64->128 4x4 (no bias) + BN; linear 128*7*7 -> 1
    d = 16 * 64 + 64 + 64 * 128 * 16 + 2 * 128 + 6272 + 1
    model = create_model("dcgan")
    assert sum(p.numel() for p in model.generator.parameters()) == g
    assert sum(p.numel() for p in model.discriminator.parameters()) == d


def test_dcgan_discriminator_can_have_its_own_width() -> None:
    model = create_model("dcgan", channels=32, d_channels=64)
    assert model.generator.net[-2].in_channels == 32 and model.discriminator.net[0].out_channels == 64
    assert model.discriminator.net[2].out_channels == 128 and model(torch.randn(3, 100)).shape == (3, 1)


def test_conditional_models_use_the_class() -> None:
    for model in (create_model("cgan").eval(), create_model("dcgan", num_classes=10).eval()):
        z = torch.randn(2, 100)
        with torch.no_grad():
            assert not torch.equal(model.generator(z, torch.tensor([3, 3])), model.generator(z, torch.tensor([4, 4])))


@pytest.mark.parametrize(("name", "kwargs", "labels", "message"), [
    ("dcgan", {}, torch.tensor([1, 2]), "unconditional"),
    ("cgan", {}, None, "needs one class index per sample"),
    ("cgan", {}, torch.tensor([3, 10]), "class index out of range: the model knows classes 0..9"),
    ("cgan", {}, torch.tensor([-1, 0]), "out of range"),
])
def test_bad_labels_are_one_line_errors(name: str, kwargs: dict, labels: torch.Tensor | None, message: str) -> None:
    model = create_model(name, **kwargs)
    with pytest.raises(UserError, match=message) as excinfo:
        model(torch.randn(2, 100), labels)
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("dcgan", {"image_size": 30}, "power of two"),
    ("dcgan", {"channels": 0}, "channels"),
    ("dcgan", {"d_channels": -1}, "d_channels must be >= 1"),
    ("dcgan", {"minibatch_std": -2}, "minibatch_std is a group size"),
    ("cgan", {"num_classes": 1}, "num_classes >= 2"),
    ("gan_mlp", {"latent_dim": 0}, "latent_dim >= 1"),
    ("gan_mlp", {"dropout": 1.0}, "dropout"),
])
def test_bad_builder_arguments_are_one_line_errors(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        create_model(name, **kwargs)


def test_wrong_noise_shape_is_a_one_line_error() -> None:
    with pytest.raises(UserError, match=r"expects noise of shape \(B, 100\)"):
        create_model("gan_mlp")(torch.randn(2, 64))


def test_minibatch_std_matches_a_hand_computation() -> None:
    """Karras et al. 2018, Sec. 3: per group, the std over the group of every feature and pixel, averaged
    into one value that every member gets as an extra constant channel."""
    torch.manual_seed(0)
    x = torch.randn(8, 2, 3, 3)
    out = MinibatchStd(4)(x)
    assert out.shape == (8, 3, 3, 3) and torch.equal(out[:, :2], x)
    for n in range(8):
        members = [m for m in range(8) if m % 2 == n % 2]  # groups of 4: sample n joins group n mod 2
        values = x[members]  # (4, 2, 3, 3)
        stds = [(sum((v - sum(values[:, c, i, j].tolist()) / 4) ** 2 for v in values[:, c, i, j].tolist()) / 4
                 + 1e-8) ** 0.5 for c in range(2) for i in range(3) for j in range(3)]
        assert torch.allclose(out[n, 2], torch.full((3, 3), sum(stds) / len(stds)), atol=1e-6)
    whole = MinibatchStd(4)(x[:5])  # 5 samples do not split into groups of 4: the whole batch is one
    assert torch.allclose(whole[:, 2], x[:5].std(0, unbiased=False).mean().expand(5, 3, 3), atol=1e-4)
    same = MinibatchStd(0)(x[:1].expand(6, -1, -1, -1))  # identical samples: no spread, sqrt(1e-8)
    assert torch.allclose(same[:, 2], torch.full((6, 3, 3), 1e-4))


@pytest.mark.parametrize("kwargs", [{"minibatch_std": 4}, {"minibatch_std": 0, "base_conv": True},
                                    {"minibatch_std": 4, "base_conv": True, "image_size": 32, "in_channels": 3}])
def test_dcgan_options_keep_shapes_and_gradients(kwargs: dict) -> None:
    model = create_model("dcgan", **kwargs).eval()
    c, s = kwargs.get("in_channels", 1), kwargs.get("image_size", 28)
    assert any(isinstance(m, MinibatchStd) for m in model.discriminator.modules())
    with torch.no_grad():
        for batch_size in (1, 5, 8):
            z = torch.randn(batch_size, 100)
            assert model.generator(z).shape == (batch_size, c, s, s) and model(z).shape == (batch_size, 1)
    out = model.train()(torch.randn(8, 100))
    (out * torch.randn_like(out)).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    # the spread feature feeds D's logit: a batch of copies scores differently from a varied batch
    d = model.discriminator.eval()
    images = torch.rand(8, c, s, s) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(d(images[:1].expand(8, -1, -1, -1))[0], d(images)[0])


@pytest.mark.parametrize("name", GANS)
def test_reference_layers_compute_the_fused_gan(name: str) -> None:
    """Training mode (batch statistics), the generator loss graph D(G(z)): outputs and every gradient."""
    kwargs = {"dropout": 0.0} if name != "dcgan" else {"channels": 8}
    results = {}
    for impl in ("reference", "fused"):
        torch.manual_seed(0)
        model = create_model(name, **kwargs).train().double()
        inputs = [x.double() if x.is_floating_point() else x for x in model.example_inputs(4)]
        with use_impl(impl):
            out = model(*inputs)
            out.sum().backward()
        results[impl] = (out.detach(), {n: p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(results["reference"][0], results["fused"][0], atol=1e-10, rtol=1e-10)
    for pname, grad in results["fused"][1].items():
        torch.testing.assert_close(results["reference"][1][pname], grad, atol=1e-10, rtol=1e-10, msg=pname)
