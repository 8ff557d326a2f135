"""Generative adversarial networks: the MLP GAN, DCGAN and the class-conditional GAN.

A ``GAN`` module holds a ``generator`` and a ``discriminator``; the image-generation task trains
them with one optimizer each (STYLE.md convention 5) and owns the losses and the sampling. The
module's own ``forward`` is the whole graph the generator loss is computed on, D(G(z)), so the
generic tests and ``archzoo info`` see every layer of both networks. Both are built from archzoo's
layers (``Linear``, ``Conv2d``, ``ConvTranspose2d``, batch norm, dropout), so ``impl`` switches them
to the reference paths like every other family.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import BatchNorm1d, BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, Linear
from archzoo.models.base import check_dropout, check_widths
from archzoo.models.registry import register_model


def with_labels(h: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """Append the one-hot class of each row as extra features (B, F) or extra constant channels
    (B, C, H, W): the conditioning of Mirza & Osindero 2014 (arXiv:1411.1784, Sec. 3.2)."""
    if not num_classes:
        return h
    assert y is not None
    onehot = F.one_hot(y, num_classes).to(h.dtype)
    if h.dim() == 4:
        onehot = onehot[:, :, None, None].expand(-1, -1, *h.shape[2:])
    return torch.cat([h, onehot], 1)


class MLPGenerator(nn.Module):
    """z (B, Z) [+ one-hot class] -> MLP with LeakyReLU 0.2 (and batch norm after every hidden layer
    but the first) -> tanh pixels (B, C, H, W) in [-1, 1]."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], hidden_sizes: tuple[int, ...],
                 num_classes: int, batch_norm: bool):
        super().__init__()
        self.num_classes, self.image_shape = num_classes, image_shape
        widths = [latent_dim + num_classes, *hidden_sizes]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            norm = [BatchNorm1d(fan_out)] if batch_norm and i > 0 else []
            layers += [Linear(fan_in, fan_out), *norm, nn.LeakyReLU(0.2, inplace=True)]
        layers += [Linear(widths[-1], math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_labels(z, y, self.num_classes)).view(len(z), *self.image_shape)  # (B, C, H, W)


class MLPDiscriminator(nn.Module):
    """Images (B, C, H, W) [+ one-hot class] -> LeakyReLU MLP with dropout -> one logit (B, 1)."""

    def __init__(self, image_shape: tuple[int, int, int], hidden_sizes: tuple[int, ...], dropout: float,
                 num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        widths = [math.prod(image_shape) + num_classes, *hidden_sizes]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [Linear(fan_in, fan_out), nn.LeakyReLU(0.2, inplace=True), Dropout(dropout)]
        layers.append(Linear(widths[-1], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_labels(x.flatten(1), y, self.num_classes))


def dcgan_depth(image_size: int) -> tuple[int, int]:
    """(base, k): the image is base x base doubled k times, base 4..7 (28 = 7 * 2^2, 32 = 4 * 2^3)."""
    k = 0
    while image_size % 2 == 0 and image_size // 2 >= 4:
        image_size //= 2
        k += 1
    if k < 1 or image_size > 7:
        raise UserError(f"dcgan needs an image size of 4..7 times a power of two (28 or 32, say), got {image_size * 2**k}")
    return image_size, k


class MinibatchStd(nn.Module):
    """Append one feature map holding the spread of the batch: a discriminator that sees it can tell a
    batch of near-identical samples from a varied one, so the generator is rewarded for variety.

    Math: split the batch into groups of G samples (sample n joins group n mod (B / G)); per group,
        s = mean over c, h, w of sqrt(Var_g[x_{g,c,h,w}] + 1e-8) (biased variance over the G members);
        every member gets s as an extra constant channel. G = min(group_size, B), the whole batch
        when that does not divide B (and when ``group_size`` is 0).
    Reference: Karras, Aila, Laine & Lehtinen 2018, "Progressive Growing of GANs for Improved
        Quality, Stability, and Variation", arXiv:1710.10196, Sec. 3 (group size 4 in their code).
    Shapes: (B, C, H, W) -> (B, C + 1, H, W).
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        g = min(self.group_size, b) if self.group_size else b
        if b % g:
            g = b
        groups = x.float().view(g, b // g, *x.shape[1:])  # (G, B/G, C, H, W)
        spread = (groups.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))  # (B/G,)
        feature = spread.repeat(g).to(x.dtype)[:, None, None, None].expand(b, 1, *x.shape[2:])
        return torch.cat([x, feature], 1)


class DCGANGenerator(nn.Module):
    """Project and reshape, then fractionally strided convolutions with batch norm and ReLU.

    Math: h_0 = ReLU(BN(W z)) reshaped to (C * 2^(k-1), base, base); each of the k
        ConvTranspose2d(kernel 4, stride 2, padding 1) doubles H and W and halves the channels;
        the last one outputs the image channels through tanh, with no batch norm; with
        ``base_conv`` a stride-1 ConvTranspose2d(kernel 5) -> BN -> ReLU at the base resolution
        comes first.
    Shapes: z (B, Z) -> images (B, C, H, W), H = W = base * 2^k.
    """

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], channels: int, num_classes: int,
                 base_conv: bool = False):
        super().__init__()
        self.num_classes = num_classes
        base, k = dcgan_depth(image_shape[1])
        self.start = (channels * 2 ** (k - 1), base, base)
        self.project = nn.Sequential(Linear(latent_dim + num_classes, math.prod(self.start), bias=False),
                                     BatchNorm1d(math.prod(self.start)), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        width = self.start[0]
        if base_conv:
            layers += [ConvTranspose2d(width, width, 5, 1, 2, bias=False), BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
        for _ in range(k - 1):
            layers += [ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), BatchNorm2d(width // 2),
                       nn.ReLU(inplace=True)]
            width //= 2
        layers += [ConvTranspose2d(width, image_shape[0], 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(with_labels(z, y, self.num_classes)).view(len(z), *self.start)  # (B, C', base, base)
        return self.net(h)


class DCGANDiscriminator(nn.Module):
    """Strided convolutions with batch norm (not on the input layer) and LeakyReLU 0.2, no pooling;
    the last feature map (with ``minibatch_std`` >= 0, plus the ``MinibatchStd`` channel) is
    flattened into one logit.

    Shapes: images (B, C, H, W) -> logits (B, 1).
    """

    def __init__(self, image_shape: tuple[int, int, int], channels: int, num_classes: int, minibatch_std: int = -1):
        super().__init__()
        self.num_classes = num_classes
        base, k = dcgan_depth(image_shape[1])
        layers: list[nn.Module] = [Conv2d(image_shape[0] + num_classes, channels, 4, 2, 1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        width = channels
        for _ in range(k - 1):
            layers += [Conv2d(width, width * 2, 4, 2, 1, bias=False), BatchNorm2d(width * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        if minibatch_std >= 0:
            layers.append(MinibatchStd(minibatch_std))
            width += 1
        layers += [nn.Flatten(), Linear(width * base * base, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_labels(x, y, self.num_classes))


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2015, Sec. 4: weights from N(0, 0.02); batch-norm gains from N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class GAN(nn.Module):
    """A generator G and a discriminator D trained against each other.

    Math: min_G max_D E_x[log D(x)] + E_z[log(1 - D(G(z)))], z ~ N(0, I); with labels y both
        networks also read y (the conditional GAN). ``forward`` returns D's logit on G's samples,
        the graph of the generator's loss.
    Reference: Goodfellow et al. 2014, "Generative Adversarial Nets", arXiv:1406.2661, Eq. 1;
        Mirza & Osindero 2014, "Conditional Generative Adversarial Nets", arXiv:1411.1784, Eq. 2.
    Shapes: z (B, Z), y (B,) class indices for a conditional model -> logits (B, 1);
        ``generator(z, y)`` -> images (B, C, H, W) in [-1, 1].
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, latent_dim: int,
                 image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.image_shape, self.num_classes = latent_dim, image_shape, num_classes

    def check_labels(self, batch_size: int, y: torch.Tensor | None) -> None:
        """One-line errors for labels given to an unconditional model, missing or out of range."""
        if not self.num_classes:
            if y is not None:
                raise UserError("this GAN is unconditional and takes no class labels; "
                                "train a conditional model (cgan, or num_classes > 0) to choose classes")
            return
        if y is None or y.shape != (batch_size,):
            raise UserError(f"a conditional GAN needs one class index per sample, shape ({batch_size},), "
                            f"got {None if y is None else tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise UserError(f"class index out of range: the model knows classes 0..{self.num_classes - 1}")

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise UserError(f"{type(self.generator).__name__} expects noise of shape (B, {self.latent_dim}), "
                            f"got {tuple(z.shape)}")
        self.check_labels(len(z), y)
        return self.discriminator(self.generator(z, y), y)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        z = torch.randn(batch_size, self.latent_dim)
        return (z, torch.randint(0, self.num_classes, (batch_size,))) if self.num_classes else (z,)


def check_gan_shape(name: str, in_channels: int, image_size: int, latent_dim: int, num_classes: int) -> None:
    if in_channels < 1 or image_size < 4 or latent_dim < 1 or num_classes < 0 or num_classes == 1:
        raise UserError(f"{name}: need in_channels >= 1, image_size >= 4, latent_dim >= 1 and num_classes 0 "
                        f"(unconditional) or >= 2, got {in_channels}, {image_size}, {latent_dim}, {num_classes}")


def mlp_gan(name: str, in_channels: int, image_size: int, latent_dim: int, g_hidden: tuple[int, ...],
            d_hidden: tuple[int, ...], dropout: float, batch_norm: bool, num_classes: int) -> GAN:
    check_gan_shape(name, in_channels, image_size, latent_dim, num_classes)
    check_widths(name, "g_hidden and d_hidden", (*g_hidden, *d_hidden))
    check_dropout(name, dropout)
    shape = (in_channels, image_size, image_size)
    return GAN(MLPGenerator(latent_dim, shape, g_hidden, num_classes, batch_norm),
               MLPDiscriminator(shape, d_hidden, dropout, num_classes), latent_dim, shape, num_classes)


@register_model("gan_mlp")
def gan_mlp(in_channels: int = 1, image_size: int = 28, latent_dim: int = 100,
            g_hidden: tuple[int, ...] = (256, 512, 1024), d_hidden: tuple[int, ...] = (512, 256),
            dropout: float = 0.3, batch_norm: bool = True) -> GAN:
    """The original GAN: fully connected generator and discriminator.

    Reference: Goodfellow et al. 2014, arXiv:1406.2661 (MNIST: ReLU/sigmoid generator, maxout
        discriminator with dropout).
    Differs from paper: tanh output on images scaled to [-1, 1] instead of sigmoid; LeakyReLU 0.2
        in both networks instead of ReLU in G and maxout units in D; batch norm in G's hidden
        layers (``batch_norm``; without it the generator collapsed within 5 MNIST epochs here);
        the generator is trained with the non-saturating loss the paper recommends in Sec. 3
        rather than the minimax one.
    """
    return mlp_gan("gan_mlp", in_channels, image_size, latent_dim, g_hidden, d_hidden, dropout, batch_norm, 0)


@register_model("cgan")
def cgan(in_channels: int = 1, image_size: int = 28, latent_dim: int = 100, num_classes: int = 10,
         g_hidden: tuple[int, ...] = (256, 512, 1024), d_hidden: tuple[int, ...] = (512, 256),
         dropout: float = 0.3, batch_norm: bool = True) -> GAN:
    """Class-conditional GAN: both networks read the one-hot class.

    Reference: Mirza & Osindero 2014, "Conditional Generative Adversarial Nets", arXiv:1411.1784,
        Sec. 4.1 (MNIST, fully connected networks).
    Differs from paper: the class is concatenated to the input of each network instead of being
        mapped by its own hidden layer (200 / 1000 units in G, maxout in D) before joining; layer
        layers as ``gan_mlp``.
    """
    if num_classes < 2:
        raise UserError(f"cgan needs num_classes >= 2, got {num_classes}")
    return mlp_gan("cgan", in_channels, image_size, latent_dim, g_hidden, d_hidden, dropout, batch_norm, num_classes)


@register_model("dcgan")
def dcgan(in_channels: int = 1, image_size: int = 28, latent_dim: int = 100, channels: int = 64,
          d_channels: int = 0, num_classes: int = 0, minibatch_std: int = -1, base_conv: bool = False) -> GAN:
    """Deep convolutional GAN for 28x28 (two up-samplings from 7x7) or 32x32 (three from 4x4) images.

    Reference: Radford, Metz & Chintala 2015, "Unsupervised Representation Learning with Deep
        Convolutional Generative Adversarial Networks", arXiv:1511.06434, Sec. 3 (architecture
        guidelines) and Fig. 1.
    Differs from paper: sized for small images (the paper's generator makes 64x64 from 4x4 with
        1024..128 channels); ``channels`` is G's last width and D's first (``d_channels``, when
        not 0, gives D its own, so a small generator can face a stronger critic); ``num_classes > 0``
        conditions both networks on the class as in ``cgan``. Two additions, both off by default:
        ``minibatch_std`` >= 0 appends Karras et al.'s minibatch standard deviation (arXiv:1710.10196,
        Sec. 3; ``MinibatchStd``, groups of that size, 0 for the whole batch) to D's last feature map,
        so D can see a lack of variety; ``base_conv`` puts a stride-1 5x5 transposed convolution with
        batch norm and ReLU at G's base resolution before the up-samplings, as the generator of the
        TensorFlow DCGAN tutorial (tensorflow.org/tutorials/generative/dcgan) does at 7x7.
    """
    check_gan_shape("dcgan", in_channels, image_size, latent_dim, num_classes)
    check_widths("dcgan", "channels", (channels,))
    if d_channels < 0:
        raise UserError(f"dcgan: d_channels must be >= 1, or 0 for the same as channels, got {d_channels}")
    if minibatch_std < -1:
        raise UserError(f"dcgan: minibatch_std is a group size >= 1, 0 for the whole batch or -1 for none, "
                        f"got {minibatch_std}")
    shape = (in_channels, image_size, image_size)
    model = GAN(DCGANGenerator(latent_dim, shape, channels, num_classes, base_conv),
                DCGANDiscriminator(shape, d_channels or channels, num_classes, minibatch_std), latent_dim, shape,
                num_classes)
    dcgan_init(model)
    return model
