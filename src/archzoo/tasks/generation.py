"""Image generation with a GAN: the discriminator and generator losses, fixed-noise sample grids,
latent interpolation and class-conditional sampling.

Models hold a ``generator`` and a ``discriminator`` (``archzoo.models.gan``). A training step has
two phases, each with its own optimizer: the discriminator's, then the generator's against the
updated discriminator (Goodfellow et al. 2014, Algorithm 1 with k = 1). The noise of a step is
drawn from the step's seed, so data, noise and resume are exact like every other task's.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.data.images import load_idx_split
from archzoo.data.sources import DATASETS
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text, ensure_writable_dir
from archzoo.tasks.base import Task, check_count, check_seed, register_task

if TYPE_CHECKING:
    from archzoo.training.trainer import TrainStep

PROGRESS_COLUMNS = 8  # fixed-noise samples kept per evaluation for the progress image


@dataclass(frozen=True)
class GenerationConfig:
    dataset: str = "mnist"
    val_size: int = 1000  # real images carved from train with ``val_seed`` for the validation losses
    val_seed: int = 0
    label_smoothing: float = 0.0  # one-sided: the discriminator's target for real images is 1 - this
    grid_size: int = 64  # images in the fixed-noise grid drawn after every evaluation
    grid_seed: int = 0

    def __post_init__(self) -> None:
        if self.val_size < 0 or self.grid_size < 1:
            raise UserError("data.val_size must be >= 0 and data.grid_size >= 1")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise UserError(f"data.label_smoothing must be in [0, 0.5), got {self.label_smoothing}")


MAX_GRID = 1024  # images in one sample grid: 128 rows of 8, about 14,000 x 1,200 pixels
MAX_STRIP = 64  # images in one interpolation strip (one row)


@dataclass
class ImageSamples:
    """Generated images (N, C, H, W) in [0, 1] (``Run.sample``), drawn as a grid of ``columns`` with a
    title per image (the class of a conditional model) and a caption; ``default_file`` names the PNG
    that the CLI writes into the run folder when no file is given."""

    images: torch.Tensor
    titles: list[str]
    caption: str
    columns: int
    default_file: str
    notes: list[str] = field(default_factory=list)
    streamed = False

    def save(self, path: Path) -> Path:
        from archzoo.viz.plots import plot_image_grid

        return plot_image_grid(self.images, self.titles, Path(path), self.caption, columns=self.columns)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode (batch-norm running statistics, no dropout) for a block; the mode is restored."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for ``module`` in a block: the generator's phase backpropagates through
    the discriminator to its input only."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def draw_noise(count: int, latent_dim: int, seed: int) -> torch.Tensor:
    """Standard normal latent points (count, Z) that depend only on ``seed``."""
    return torch.randn(count, latent_dim, generator=torch.Generator().manual_seed(seed))


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of D's logits against a constant target, in float32 (autocast-safe)."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@dataclass
class GanView:
    """The two networks a phase calls (either may be a DDP wrapper) and the model's sizes."""

    generator: nn.Module
    discriminator: nn.Module
    model: nn.Module

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim


@register_task("image_generation")
class ImageGeneration(Task):
    """Adversarial training of a generator on an image dataset.

    Math: discriminator phase L_D = -log D(x) - log(1 - D(G(z))) with the real target 1 - s under
        one-sided label smoothing s; generator phase, non-saturating, L_G = -log D(G(z)).
    Reference: Goodfellow et al. 2014, arXiv:1406.2661, Sec. 3 and Algorithm 1; one-sided label
        smoothing: Salimans et al. 2016, "Improved Techniques for Training GANs", arXiv:1606.03498, Sec. 3.4.
    Shapes: real images (B, C, H, W) scaled to [-1, 1], labels (B,), noise (B, Z).
    Differs from paper: the generator's phase reuses the samples of the discriminator's phase (one
        generator forward per step, as pytorch/examples' DCGAN does) and scores them with the
        updated discriminator.
    """

    Config = GenerationConfig
    primary_metric = "d_loss"
    higher_is_better = False
    verbs = ("sample",)

    def __init__(self, cfg: GenerationConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        spec = DATASETS.get(cfg.dataset)
        if "classes" not in spec.meta:
            raise UserError(f"{cfg.dataset} is not an image dataset; choose mnist or fashion-mnist")
        self.classes: list[str] = list(spec.meta["classes"])  # type: ignore[arg-type]
        self.mean, self.std = float(spec.meta["mean"]), float(spec.meta["std"])  # type: ignore[arg-type]
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.device = torch.device("cpu")
        self._image_shape: tuple[int, ...] | None = None
        self._fakes: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # noise id -> (noise, G(noise)) of this step
        self.progress: list[tuple[int, torch.Tensor]] = []  # (step, fixed-noise samples) per evaluation

    # -- data --------------------------------------------------------------------------------
    def _load(self, name: str) -> None:
        cfg = self.cfg
        if name == "test":
            test = load_idx_split(cfg.dataset, "test", self.data_dir)
            self._splits["test"] = (test.images.float().div(127.5).sub(1).to(self.device), test.labels.to(self.device))
            return
        train = load_idx_split(cfg.dataset, "train", self.data_dir)
        if cfg.val_size >= len(train):
            raise UserError(f"data.val_size={cfg.val_size} leaves no training data ({len(train)} images)")
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.val_seed))
        val_idx, train_idx = order[: cfg.val_size].sort().values, order[cfg.val_size:].sort().values
        self._image_shape = tuple(train.images.shape[1:])
        images = train.images.float().div(127.5).sub(1)  # uint8 -> [-1, 1], the range of tanh
        self._splits["train"] = (images[train_idx].to(self.device), train.labels[train_idx].to(self.device))
        if cfg.val_size:
            self._splits["val"] = (images[val_idx].to(self.device), train.labels[val_idx].to(self.device))

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, C, H, W) in [-1, 1] and labels (N,) of a split."""
        if not self.has_split(name):
            raise UserError(f"no {name!r} split (data.val_size is 0); choose train or test")
        if name not in self._splits:
            self._load(name)
        return self._splits[name]

    def has_split(self, name: str) -> bool:
        return name in ("train", "test") or (name == "val" and self.cfg.val_size > 0)

    def model_args(self) -> dict[str, Any]:
        if self._image_shape is None:
            self.split("train")
        assert self._image_shape is not None
        c, h, _ = self._image_shape
        return {"in_channels": c, "image_size": h}

    def num_train_examples(self) -> int:
        return len(self.split("train")[1])

    def to(self, device: torch.device) -> None:
        self.device = device
        self._splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self._splits.items()}

    def train_batch(self, indices: torch.Tensor, shard: slice, seed: int) -> tuple[torch.Tensor, ...]:
        """Real images, their labels and the noise seed of this shard: (x, y, [seed, global batch,
        shard start, shard stop]); the noise is drawn for the whole global batch and sliced, as
        augmentation is."""
        x_all, y_all = self.split("train")
        mine = indices.to(self.device)[shard]
        return x_all[mine], y_all[mine], torch.tensor([seed, len(indices), shard.start, shard.stop])

    def noise(self, model: nn.Module, noise_seed: torch.Tensor) -> torch.Tensor:
        seed, count, start, stop = noise_seed.tolist()
        return draw_noise(count, model.latent_dim, seed)[start:stop].to(self.device)

    # -- training ----------------------------------------------------------------------------
    def optimizer_phases(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        return [("discriminator", model.discriminator), ("generator", model.generator)]

    def check_model(self, model: nn.Module) -> None:
        if model.num_classes and model.num_classes != len(self.classes):
            raise UserError(f"the model is conditioned on {model.num_classes} classes but {self.cfg.dataset} has "
                            f"{len(self.classes)}; set model.args.num_classes={len(self.classes)}")

    def training_step(self, step: TrainStep) -> list[torch.Tensor]:
        """The discriminator's phase, then the generator's against the updated discriminator.

        Under torchrun each phase calls its own network through that network's DDP wrapper
        (``step.module``), and the generator's phase draws its samples again through it: a DDP
        module must see the forward of every backward it averages. (In one process the samples of
        the discriminator's phase are reused, one generator forward per step; the generator's batch
        norm then updates its running statistics once per step instead of twice.)
        """
        model = step.model
        d_view = GanView(model.generator, step.module(0), model)
        g_view = GanView(step.module(1), model.discriminator, model)
        reuse = not step.distributed
        d_loss = step.optimize(0, lambda batch: self.phase_loss("discriminator", d_view, batch, reuse))
        g_loss = step.optimize(1, lambda batch: self.phase_loss("generator", g_view, batch, reuse))
        return [d_loss, g_loss]

    def phase_loss(self, phase: str, model: nn.Module | GanView, batch: tuple[torch.Tensor, ...],
                   reuse: bool = True) -> torch.Tensor:
        """The loss of one phase on one batch; ``reuse`` keeps the discriminator phase's samples, with
        their graph, for the generator phase of the same batch."""
        x, y, noise_seed = batch
        labels = y if model.num_classes else None
        G, D = model.generator, model.discriminator
        if phase == "discriminator":
            self.check_model(model)
            if reuse:
                fake = G(self.noise(model, noise_seed), labels)
                self._fakes[id(noise_seed)] = (noise_seed, fake)  # kept, with its graph, for the generator phase
            else:
                with torch.no_grad():
                    fake = G(self.noise(model, noise_seed), labels)
            return bce(D(x, labels), 1.0 - self.cfg.label_smoothing) + bce(D(fake.detach(), labels), 0.0)
        cached = self._fakes.pop(id(noise_seed), None)
        fake = cached[1] if cached is not None and cached[0] is noise_seed else G(self.noise(model, noise_seed), labels)
        with frozen(D):
            return bce(D(fake, labels), 1.0)

    def is_better(self, new: dict[str, float], best: dict[str, float]) -> bool:
        """GAN losses do not rank sample quality, so the latest evaluation is kept as the best."""
        return True

    # -- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, model: nn.Module, count: int, seed: int = 0, labels: torch.Tensor | None = None,
                 batch_size: int = 1000, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``count`` images (count, C, H, W) in [-1, 1] on the CPU from noise drawn with ``seed`` (or the
        given ``noise``), in evaluation mode. Conditional models need ``labels`` (count,); without
        them the classes cycle 0, 1, 2, ..."""
        if count < 1:
            raise UserError(f"the number of samples must be >= 1, got {count}")
        if labels is None and model.num_classes:
            labels = torch.arange(count) % model.num_classes
        model.check_labels(count, labels)
        device = next(model.parameters()).device
        z = draw_noise(count, model.latent_dim, seed) if noise is None else noise
        out = []
        with eval_mode(model):
            for i in range(0, count, batch_size):
                y = None if labels is None else labels[i:i + batch_size].to(device)
                out.append(model.generator(z[i:i + batch_size].to(device), y).float().cpu())
        return torch.cat(out)

    def interpolate(self, model: nn.Module, count: int, seed: int = 0, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``count`` images along the straight line between two latent points drawn with ``seed``
        (Radford et al. 2015, Sec. 6.1, walking in the latent space)."""
        if count < 2:
            raise UserError(f"an interpolation needs at least 2 images, got -n {count}")
        ends = draw_noise(2, model.latent_dim, seed)
        t = torch.linspace(0, 1, count)[:, None]
        return self.generate(model, count, labels=labels, noise=(1 - t) * ends[0] + t * ends[1])

    def sample(self, model: nn.Module, n: int = 64, seed: int = 0, class_index: int | None = None,
               interpolate: bool = False) -> ImageSamples:
        """``n`` generated images (or, with ``interpolate``, a strip of ``n`` between two latent points),
        of one class ``class_index`` for a conditional model; bounded so that the grid stays drawable
        (MAX_GRID images, MAX_STRIP in a strip), refused before anything is allocated."""
        seed = check_seed(seed)
        if interpolate and isinstance(n, int) and n < 2:
            raise UserError(f"an interpolation needs at least 2 images, got -n {n}")
        if interpolate:
            check_count("-n", n, 2, MAX_STRIP, "an interpolation strip is one row; draw fewer images")
        else:
            check_count("-n", n, 1, MAX_GRID, "a grid of more images is unreadable and needs gigabytes to draw; "
                        "draw several grids with other seeds")
        labels = None
        if class_index is not None:
            if not model.num_classes:
                raise UserError(f"--class needs a class-conditional model (cgan, or num_classes > 0); "
                                f"this {type(model.generator).__name__} is unconditional")
            if isinstance(class_index, bool) or not isinstance(class_index, int) or not 0 <= class_index < model.num_classes:
                raise UserError(f"--class {class_index} is out of range: the model knows classes "
                                f"0..{model.num_classes - 1}")
            labels = torch.full((n,), class_index)
        if interpolate:
            images = self.interpolate(model, n, seed, labels)
            caption = f"interpolation between two latent points (seed {seed})"
        else:
            images = self.generate(model, n, seed, labels)
            caption = f"{n} samples (seed {seed})"
        if class_index is not None:
            caption += f", class {self.classes[class_index] if class_index < len(self.classes) else class_index}"
        titles = [self.classes[int(c)] for c in torch.arange(n) % model.num_classes] if (
            model.num_classes and class_index is None) else []
        return ImageSamples((images + 1) / 2, titles, caption, n if interpolate else 8, f"samples-seed{seed}.png")

    # -- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        """Discriminator and generator losses on a split's real images and as many generated ones,
        and D's mean probability of "real" for each; the noise is fixed per split."""
        x_all, y_all = self.split(split)
        d_loss = g_loss = d_real = d_fake = 0.0
        noise = draw_noise(len(x_all), model.latent_dim, len(split)).to(self.device)
        with eval_mode(model):
            for i in range(0, len(x_all), batch_size):
                x, z = x_all[i:i + batch_size], noise[i:i + batch_size]
                labels = y_all[i:i + batch_size] if model.num_classes else None
                real = model.discriminator(x, labels).float()
                fake = model.discriminator(model.generator(z, labels), labels).float()
                n = len(x) / len(x_all)
                d_loss += n * (bce(real, 1.0) + bce(fake, 0.0)).item()
                g_loss += n * bce(fake, 1.0).item()
                d_real += n * torch.sigmoid(real).mean().item()
                d_fake += n * torch.sigmoid(fake).mean().item()
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}

    def fixed_grid(self, model: nn.Module) -> torch.Tensor:
        return self.generate(model, self.cfg.grid_size, self.cfg.grid_seed)

    def after_evaluation(self, model: nn.Module, out_dir: Path, step: int, epoch: int) -> None:
        """The fixed-noise grid of this point of training, ``samples/step-NNNNNN.png``; its first
        images are kept for the progress image."""
        from archzoo.viz.plots import plot_image_grid

        images = self.fixed_grid(model)
        self.progress.append((step, images[:PROGRESS_COLUMNS].clone()))
        folder = ensure_writable_dir(out_dir / "samples", "choose another run folder with --out")
        plot_image_grid((images + 1) / 2, [], folder / f"step-{step:06d}.png",
                        f"fixed noise after step {step} (epoch {epoch + 1})")

    def state_dict(self) -> dict[str, Any]:
        return {"progress_steps": [s for s, _ in self.progress],
                "progress_images": [img for _, img in self.progress]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.progress = list(zip(state.get("progress_steps", []), state.get("progress_images", []), strict=True))

    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        """Test-split losses, the final fixed-noise grid (``samples.png``) and the progress image
        (``progress.png``: one row of the same noise per evaluation)."""
        from archzoo.viz.plots import plot_image_grid

        result: dict[str, Any] = {"split": "test", "examples": len(self.split("test")[1]),
                                  **self.evaluate(model, "test", batch_size)}
        images = self.fixed_grid(model)
        plot_image_grid((images + 1) / 2, [], out_dir / "samples.png", f"fixed noise, seed {self.cfg.grid_seed}")
        if self.progress:
            rows = torch.cat([img for _, img in self.progress])
            titles = [f"step {step}" if k == 0 else "" for step, img in self.progress for k in range(len(img))]
            plot_image_grid((rows + 1) / 2, titles, out_dir / "progress.png", "the same noise over training",
                            columns=PROGRESS_COLUMNS)
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        return result

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        return [f"{self.cfg.dataset} test ({result['examples']} real images and as many generated): "
                f"D loss {result['d_loss']:.4f}, G loss {result['g_loss']:.4f}, D(real) {result['d_real']:.3f}, "
                f"D(fake) {result['d_fake']:.3f}",
                "sample quality: `archzoo bench` computes FID and precision/recall on classifier features"]
