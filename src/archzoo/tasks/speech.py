"""Spoken-digit recognition (FSDD): features, SpecAugment, and the isolated-digit task.

Audio becomes log-mel (or MFCC) frames once, when a split is first read (``layers/spectral.py``; 25 ms Hann
windows every 10 ms by default), normalised per utterance (mean and variance of every band over the
utterance's frames: gain and channel removed). Models take the padded frames and their lengths.
Training batches are length-bucketed, trimmed to their longest utterance and, with ``augment =
"specaugment"``, masked in frequency and time, drawn from the step's seed.

``SpokenDigits`` classifies isolated digits on the standard split (recording index 0-4 test, 5-49 train,
``val_size`` of the training recordings drawn at random for validation) or leave-one-speaker-out
(``holdout_speaker``: all of that speaker's recordings are the test set, validation comes from the others).
The connected-digit (CTC) task builds on ``SpeechTask`` in ``tasks/connected_digits.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.data.audio import Clip, change_speed, load_spoken_digits, pad_waveforms, read_audio, trim_silence
from archzoo.data.sources import DATASETS
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.layers.spectral import LogMelSpectrogram, normalize_utterances
from archzoo.tasks.base import Task, TensorPairSplits, check_count, length_buckets, model_device, register_task
from archzoo.tasks.classification import accuracy_and_loss, confusion_matrix

FEATURES = ("logmel", "mfcc")
AUGMENTS = ("none", "specaugment")

# One split of utterances: padded frames (N, T, F), lengths in frames (N,), labels (N,) or targets.
Split = tuple[Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class SpeechConfig:
    """Features and augmentation shared by the speech tasks (fields of each task's config)."""

    dataset: str = "spoken-digits"
    features: str = "logmel"  # logmel (dB) | mfcc
    n_mels: int = 40
    n_mfcc: int = 13
    n_fft: int = 256  # at 8 kHz: 32 ms of spectrum resolution per frame
    win_ms: float = 25.0
    hop_ms: float = 10.0
    augment: str = "specaugment"  # none | specaugment (Park et al. 2019: frequency and time masks)
    freq_masks: int = 2
    freq_mask_width: int = 8  # F: each frequency mask covers U{0..F} bands
    time_masks: int = 2
    time_mask_width: int = 10  # T: each time mask covers U{0..T} frames ...
    time_mask_ratio: float = 0.2  # ... and at most this fraction of the utterance (p)
    top_db: float = 80.0  # log-mel floored this far below each utterance's loudest bin (librosa's default 80)
    trim_db: float = 0.0  # > 0: leading/trailing frames this far below the loudest frame cut before features
    freq_warp: float = 0.0  # VTLP-like: log-mel bands stretched by a factor ~ U[1 - w, 1 + w] per utterance
    max_seconds: float = 5.0  # longest user recording accepted by `archzoo transcribe`

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise UserError(f"data.features must be one of {', '.join(FEATURES)}, got {self.features!r}")
        if self.augment not in AUGMENTS:
            raise UserError(f"data.augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if min(self.n_mels, self.n_mfcc, self.n_fft) < 1 or self.n_mfcc > self.n_mels:
            raise UserError("data.n_mels, data.n_mfcc and data.n_fft must be >= 1, with n_mfcc <= n_mels")
        if not 0 < self.hop_ms <= self.win_ms or self.max_seconds <= 0:
            raise UserError("data.hop_ms must be in (0, data.win_ms] and data.max_seconds > 0")
        if min(self.freq_masks, self.freq_mask_width, self.time_masks, self.time_mask_width) < 0 or \
                not 0 <= self.time_mask_ratio <= 1:
            raise UserError("SpecAugment counts and widths must be >= 0 and data.time_mask_ratio in [0, 1]")
        if self.top_db <= 0 or self.trim_db < 0:
            raise UserError(f"data.top_db must be > 0 and data.trim_db >= 0 (0: no trimming), got {self.top_db} "
                            f"and {self.trim_db}")
        if not 0 <= self.freq_warp < 0.5:
            raise UserError(f"data.freq_warp is the largest relative stretch of the mel axis, in [0, 0.5); "
                            f"got {self.freq_warp}")
        if self.freq_warp and self.features != "logmel":
            raise UserError("data.freq_warp stretches log-mel bands; it needs data.features='logmel'")


def warp_bands(x: Tensor, alpha: Tensor) -> Tensor:
    """Each utterance's frequency axis stretched: output band f reads the input at band f * alpha (linear
    interpolation between bands, clamped at the top band). Padding frames (zeros) stay zeros.

    Reference: Jaitly & Hinton 2013, "Vocal Tract Length Perturbation (VTLP) improves speech
        recognition", ICML Workshop on Deep Learning for Audio, Speech and Language Processing.
    Differs from paper: the warp is linear in mel-band index and applied to the log-mel features (VTLP
        warps the filterbank's centre frequencies piecewise linearly in Hz before the log).
    Shapes: x (b, T, F), alpha (b,) -> (b, T, F).
    """
    bands = x.shape[-1]
    position = (torch.arange(bands, device=x.device, dtype=torch.float32)[None, :] * alpha[:, None].float()).clamp(0, bands - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=bands - 1)
    frac = (position - low).to(x.dtype)[:, None, :]

    def take(index: Tensor) -> Tensor:
        return x.gather(2, index[:, None, :].expand(-1, x.shape[1], -1))

    return take(low) * (1 - frac) + take(high) * frac


def spec_augment(x: Tensor, lengths: Tensor, generator: torch.Generator, shard: slice, cfg: SpeechConfig) -> Tensor:
    """Frequency and time masking of normalised features: masked values become 0, the utterance mean.

    Math: per mask, a width w ~ U{0..W} and a start s ~ U{0..N - w}; frequency masks cover bands
        [s, s + w) with W = F (``freq_mask_width``) of N = bands; time masks cover frames [s, s + w) with
        W = min(T, ⌊p L⌋) of N = L, the utterance's length. Drawn for the whole global batch (lengths of
        all its utterances), applied to the rows ``shard`` that ``x`` holds.
    Reference: Park, Chan, Zhang, Chiu, Zoph, Cubuk & Le 2019, "SpecAugment: A Simple Data Augmentation
        Method for Automatic Speech Recognition", arXiv:1904.08779, Sec. 2.
    Differs from paper: no time warping (the paper finds it the least useful part); with
        ``freq_warp``, each utterance's mel axis is first stretched (``warp_bands``).
    Shapes: x (b, T, F) (this shard), lengths (B,) of the global batch -> (b, T, F).
    """
    B, (T, bands) = len(lengths), x.shape[1:]
    keep = torch.ones(B, T, bands, dtype=torch.bool)

    def spans(count: int, max_width: Tensor, extent: Tensor, size: int) -> Tensor:
        """(B, size) True inside ``count`` random spans per row."""
        covered = torch.zeros(B, size, dtype=torch.bool)
        position = torch.arange(size)
        for _ in range(count):
            width = (torch.rand(B, generator=generator) * (max_width + 1)).floor()
            start = (torch.rand(B, generator=generator) * (extent - width + 1)).floor()
            covered |= (position >= start[:, None]) & (position < (start + width)[:, None])
        return covered

    full = torch.full((B,), float(bands))
    keep &= ~spans(cfg.freq_masks, torch.full((B,), float(min(cfg.freq_mask_width, bands))), full, bands)[:, None, :]
    frames = lengths.cpu().float()
    widths = torch.minimum(torch.full((B,), float(cfg.time_mask_width)), (cfg.time_mask_ratio * frames).floor())
    keep &= ~spans(cfg.time_masks, widths, frames, T)[:, :, None]
    if cfg.freq_warp:  # drawn after the masks, so that configurations without it draw the same masks
        alpha = 1 + cfg.freq_warp * (2 * torch.rand(B, generator=generator) - 1)
        x = warp_bands(x, alpha[shard].to(x.device))
    return x * keep[shard].to(x.device, x.dtype)


def trim(x: Tensor, lengths: Tensor) -> Tensor:
    """Frames (B, T, F) cut to the longest utterance of the batch."""
    return x[:, :int(lengths.max())]


@dataclass
class Transcripts:
    """What ``Run.transcribe`` returns: for each file, the recognised digits (``texts``) and the ``top``
    best readings with their probabilities (``alternatives``); ``notes`` tell what was done to the audio
    (mixed down, resampled). With ``posteriors=True``, ``features`` holds each file's normalised feature
    frames (T, F) and, for a CTC model, ``frame_posteriors`` each file's per-frame class posteriors (T', V)
    over ``posterior_labels`` (the blank first); ``plot`` draws them."""

    files: list[str]
    texts: list[str]
    alternatives: list[list[tuple[str, float]]]
    notes: list[str]
    features: list[Tensor] | None = None
    frame_posteriors: list[Tensor] | None = None
    posterior_labels: list[str] | None = None

    def lines(self) -> list[str]:
        """One line per file: the file, its digits, and the alternatives with probabilities, tab-separated."""
        return [f"{path}\t{text or '(nothing)'}\t" + "  ".join(f"{t or '(nothing)'} {p:.3f}" for t, p in alternatives)
                for path, text, alternatives in zip(self.files, self.texts, self.alternatives, strict=True)]

    def plot(self, path: Path, index: int = 0, title: str = "") -> Path:
        """File ``index``'s feature frames, above its per-frame posteriors for a CTC model, as a PNG."""
        from archzoo.viz.plots import plot_ctc_posteriors

        if self.features is None:
            raise UserError("transcribe with posteriors=True to plot the features")
        posteriors = None if self.frame_posteriors is None else self.frame_posteriors[index]
        return plot_ctc_posteriors(self.features[index], posteriors, self.posterior_labels or [], Path(path), title)


class SpeechTask(TensorPairSplits, Task):
    """What the speech tasks share: the feature front end, splits held as (frames, lengths, targets) on the
    task's device, bucketed batches with SpecAugment, and reading a user's recordings."""

    cfg: SpeechConfig
    verbs = ("transcribe",)

    def __init__(self, cfg: SpeechConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        spec = DATASETS.get(cfg.dataset)
        if spec.meta.get("format") != "spoken-digits":
            load_spoken_digits(cfg.dataset, data_dir)  # raises the one-line error naming the speech datasets
        self.sample_rate = int(spec.meta["sample_rate"])  # type: ignore[call-overload]
        self.classes: list[str] = list(spec.meta["classes"])  # type: ignore[arg-type]
        self.frontend = LogMelSpectrogram(self.sample_rate, cfg.n_fft, round(cfg.win_ms * self.sample_rate / 1000),
                                          round(cfg.hop_ms * self.sample_rate / 1000), cfg.n_mels,
                                          cfg.n_mfcc if cfg.features == "mfcc" else 0, top_db=cfg.top_db)
        self.device = torch.device("cpu")
        self._splits: dict[str, Split] = {}

    # -- features ------------------------------------------------------------------------------
    @torch.no_grad()
    def featurize(self, waveforms: list[Tensor], chunk: int = 256) -> tuple[Tensor, Tensor]:
        """Normalised feature frames (N, T_max, F) and frame counts (N,) of 1-D waveforms, computed in
        chunks of similar length (little padding) on the task's device."""
        if self.cfg.trim_db:
            frontend = self.frontend
            waveforms = [trim_silence(w, self.cfg.trim_db, frontend.win_length, frontend.hop_length) for w in waveforms]
        order = sorted(range(len(waveforms)), key=lambda i: len(waveforms[i]))
        frontend = self.frontend.to(self.device)
        parts: list[tuple[Tensor, Tensor]] = []
        # float32 even when called under the trainer's bf16 autocast (a split read for its first evaluation)
        with torch.autocast(self.device.type, enabled=False):
            for start in range(0, len(order), chunk):
                batch, lengths = pad_waveforms([waveforms[i] for i in order[start:start + chunk]])
                feats, frames = frontend(batch.to(self.device), lengths.to(self.device))
                parts.append((normalize_utterances(feats, frames), frames))
        steps = max(int(f.max()) for _, f in parts)
        out = torch.zeros(len(waveforms), steps, frontend.num_features, device=self.device)
        frames_out = torch.zeros(len(waveforms), dtype=torch.long, device=self.device)
        index = torch.tensor(order, device=self.device)
        at = 0
        for feats, frames in parts:
            rows = index[at:at + len(frames)]
            out[rows, :feats.shape[1]] = feats
            frames_out[rows] = frames
            at += len(frames)
        return out, frames_out

    def read_recordings(self, paths: list[str | Path]) -> tuple[Tensor, Tensor, list[str]]:
        """Frames and lengths of a user's audio files plus notices (mixed down, resampled); unusable files
        raise one line naming the file and the fix."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise UserError("nothing to transcribe: give one or more WAV files")
        audio = [read_audio(p, self.sample_rate, self.frontend.win_length, self.cfg.max_seconds) for p in paths]
        feats, frames = self.featurize([a.waveform for a in audio])
        return feats, frames, [notice for a in audio for notice in a.notices]

    def transcribe(self, model: nn.Module, files: list[str | Path], top: int = 3, posteriors: bool = False) -> Transcripts:
        """What was said in each file: the task's ``top`` best readings with their probabilities (and, with
        ``posteriors``, the feature frames for ``Transcripts.plot``)."""
        return self.recognise(model, files, top, posteriors)

    @torch.no_grad()
    def recognise(self, model: nn.Module, files: str | Path | list[str | Path], top: int, posteriors: bool,
                  **decoding: Any) -> Transcripts:
        """``transcribe``'s work; ``decoding`` goes to the task's ``readings``."""
        check_count("--top", top, 1, 1000, "ask for fewer alternatives")
        files = [files] if isinstance(files, (str, Path)) else list(files)
        feats, frames, notices = self.read_recordings(files)
        device = model_device(model)
        model.eval()
        alternatives, frame_posteriors = self.readings(model, feats.to(device), frames.to(device), top, **decoding)
        result = Transcripts([str(p) for p in files], [a[0][0] for a in alternatives], alternatives,
                             [f"notice: {n}" for n in notices])
        if posteriors:
            result.features = [f[:int(n)].cpu() for f, n in zip(feats, frames, strict=True)]
            result.frame_posteriors = frame_posteriors
            result.posterior_labels = ["blank", *self.classes] if frame_posteriors is not None else None
        return result

    def readings(self, model: nn.Module, feats: Tensor, frames: Tensor, top: int, **decoding: Any
                 ) -> tuple[list[list[tuple[str, float]]], list[Tensor] | None]:
        """Per recording, the ``top`` best (text, probability), best first; and, for a model that reads
        frame by frame (CTC), each recording's per-frame posteriors (T', V) on the CPU, else None."""
        raise NotImplementedError

    # -- the trainer contract --------------------------------------------------------------------
    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise UserError(f"no {name!r} split; choose one of train, val, test")
        if name not in self._splits:
            self._load(name)
        return self._splits[name]

    def _load(self, name: str) -> None:
        """Build split ``name`` (a task may build them all at once) into ``self._splits``."""
        raise NotImplementedError

    def has_split(self, name: str) -> bool:
        return name in ("train", "val", "test")


    def model_args(self) -> dict[str, Any]:
        return {"in_features": self.frontend.num_features}

    def epoch_order(self, epoch: int, seed: int, batch_size: int) -> Tensor:
        """Length-bucketed batches (``length_buckets``): utterances of similar length pad little."""
        return length_buckets(self.split("train")[1], batch_size, seed, epoch)

    def augment(self, x: Tensor, lengths: Tensor, seed: int, shard: slice) -> Tensor:
        """SpecAugment of this shard's frames, drawn from ``seed`` over the global batch's ``lengths``."""
        if self.cfg.augment == "none":
            return x
        return spec_augment(x, lengths, torch.Generator().manual_seed(seed), shard, self.cfg)


@dataclass(frozen=True)
class SpokenDigitsConfig(SpeechConfig):
    holdout_speaker: str = ""  # "": the standard split; a speaker: leave-one-speaker-out, that speaker is the test set
    val_size: int = 270  # training recordings held out for validation, drawn with val_seed (10% of 2,700)
    val_seed: int = 0
    label_smoothing: float = 0.0
    # speed perturbation (Ko et al. 2015): every training recording once per factor, resampled to be played
    # that many times faster (tempo and pitch together); (1.0,) = the recordings as they are
    speeds: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.speeds or any(not 0.5 <= f <= 2.0 for f in self.speeds) or len(set(self.speeds)) < len(self.speeds):
            raise UserError(f"data.speeds lists distinct speed factors in [0.5, 2.0] (e.g. [0.9, 1.0, 1.1]), "
                            f"got {list(self.speeds)}")
        if self.val_size < 1:
            raise UserError(f"data.val_size must be >= 1 (the best checkpoint is chosen on it), got {self.val_size}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"data.label_smoothing must be in [0, 1), got {self.label_smoothing}")


@register_task("spoken_digits")
class SpokenDigits(SpeechTask):
    """Isolated spoken digits: cross-entropy, accuracy, per-speaker accuracy, confusion matrix."""

    Config = SpokenDigitsConfig
    primary_metric = "accuracy"
    higher_is_better = True
    cfg: SpokenDigitsConfig

    def __init__(self, cfg: SpokenDigitsConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        self.clips: dict[str, list[Clip]] = {}  # each split's recordings, in the order of its tensors

    def is_test(self, clip: Clip) -> bool:
        """The standard split's test recordings (index 0-4), or all of the held-out speaker's."""
        return clip.speaker == self.cfg.holdout_speaker if self.cfg.holdout_speaker else clip.index <= 4

    def _load(self, name: str) -> None:
        """Read every recording once and featurize all three splits (a few seconds). Validation is a seeded
        random draw from the training recordings: drawn across every recording index, because upstream
        recorded some (speaker, digit) pairs in sessions that follow the index (nicolas's "eight" at index
        0-9 is a third shorter than at 10-49), and a validation set of whole index ranges would leave a
        session out of training."""
        cfg = self.cfg
        clips = load_spoken_digits(cfg.dataset, self.data_dir)
        speakers = sorted({c.speaker for c in clips})
        if cfg.holdout_speaker and cfg.holdout_speaker not in speakers:
            raise UserError(f"data.holdout_speaker {cfg.holdout_speaker!r} is none of the speakers of "
                            f"{cfg.dataset}: {', '.join(speakers)} (or '' for the standard split)")
        rest = [c for c in clips if not self.is_test(c)]
        if cfg.val_size >= len(rest):
            raise UserError(f"data.val_size={cfg.val_size} leaves no training recordings (there are {len(rest)})")
        order = torch.randperm(len(rest), generator=torch.Generator().manual_seed(cfg.val_seed)).tolist()
        held = set(order[:cfg.val_size])
        parts = {"test": [c for c in clips if self.is_test(c)],
                 "val": [c for i, c in enumerate(rest) if i in held], "train": [c for i, c in enumerate(rest) if i not in held]}
        parts["train"] = [replace(c, waveform=change_speed(c.waveform, f)) for f in cfg.speeds for c in parts["train"]]
        for part, mine in parts.items():
            feats, frames = self.featurize([c.waveform for c in mine])
            self._splits[part] = (feats, frames, torch.tensor([c.digit for c in mine], device=self.device))
            self.clips[part] = mine

    def model_args(self) -> dict[str, Any]:
        return {**super().model_args(), "num_classes": len(self.classes)}

    def train_batch(self, indices: Tensor, shard: slice, seed: int) -> tuple[Tensor, ...]:
        feats, frames, labels = self.split("train")
        everyone = indices.to(self.device)
        mine = everyone[shard]
        x = trim(feats[mine], frames[mine])
        return self.augment(x, frames[everyone], seed, shard), frames[mine], labels[mine]

    def loss(self, model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        x, lengths, labels = batch
        return F.cross_entropy(model(x, lengths).float(), labels, label_smoothing=self.cfg.label_smoothing)

    @torch.no_grad()
    def predict(self, model: nn.Module, feats: Tensor, frames: Tensor, batch_size: int) -> Tensor:
        """Logits (N, classes), float32, in batches each trimmed to its longest utterance."""
        model.eval()
        return torch.cat([model(trim(feats[i:i + batch_size], frames[i:i + batch_size]), frames[i:i + batch_size]).float()
                          for i in range(0, len(frames), batch_size)])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        feats, frames, labels = self.split(split)
        return accuracy_and_loss(self.predict(model, feats, frames, batch_size), labels)

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        lines = [f"{self.cfg.dataset} {result['protocol']} test ({result['examples']} recordings): accuracy "
                 f"{result['accuracy']:.4f}, loss {result['loss']:.4f}", "per-speaker accuracy:"]
        lines += [f"  {name:>12}  {acc:.4f}" for name, acc in result["per_speaker_accuracy"].items()]
        lines.append("per-digit accuracy:")
        lines += [f"  {name:>12}  {acc:.4f}" for name, acc in result["per_class_accuracy"].items()]
        wrong = [f"{m['file']} {m['true']}->{m['predicted']}" for m in result["misclassified"][:10]]
        return lines + [f"misclassified: {', '.join(wrong) or 'none'}"]

    @torch.no_grad()
    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        from archzoo.viz.plots import plot_confusion

        feats, frames, labels = self.split("test")
        logits = self.predict(model, feats, frames, batch_size)
        probs, pred = logits.softmax(1).max(1)
        confusion, per_class = confusion_matrix(labels, pred, len(self.classes))
        plot_confusion(confusion, self.classes, out_dir / "confusion.png")
        clips = self.clips["test"]
        correct = (pred == labels).cpu()
        speakers = sorted({c.speaker for c in clips})
        per_speaker = {s: correct[[i for i, c in enumerate(clips) if c.speaker == s]].double().mean().item() for s in speakers}
        wrong = [{"file": f"{c.digit}_{c.speaker}_{c.index}.wav", "true": self.classes[c.digit],
                  "predicted": self.classes[int(pred[i])], "probability": round(float(probs[i]), 4)}
                 for i, c in enumerate(clips) if not correct[i]]
        result = {
            "split": "test", "protocol": f"leave-one-speaker-out ({self.cfg.holdout_speaker})"
            if self.cfg.holdout_speaker else "standard split (index 0-4)", "examples": len(labels),
            "loss": F.cross_entropy(logits, labels).item(), "accuracy": correct.double().mean().item(),
            "per_class_accuracy": dict(zip(self.classes, per_class, strict=True)), "per_speaker_accuracy": per_speaker,
            "confusion": confusion.tolist(), "misclassified": wrong,
        }
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        return result

    def readings(self, model: nn.Module, feats: Tensor, frames: Tensor, top: int, **decoding: Any
                 ) -> tuple[list[list[tuple[str, float]]], None]:
        """Each recording's most likely digit and the ``top`` best with probabilities."""
        probs = self.predict(model, feats, frames, 64).float().softmax(1)
        values, indices = probs.topk(min(top, len(self.classes)), dim=1)
        return [[(self.classes[int(k)], float(v)) for v, k in zip(vs, i, strict=True)]
                for vs, i in zip(values, indices, strict=True)], None
