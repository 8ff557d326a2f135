"""Audio: reading WAV files (the dataset's and a user's) and the Free Spoken Digit Dataset.

Files are read with soundfile (libsndfile: PCM of any width, float, WAVE_FORMAT_EXTENSIBLE) into float32
in [-1, 1]. A user's file is made to look like the training data: stereo is mixed down and another
sample rate is resampled with scipy's polyphase filter (``resample_poly``), each with a one-line notice;
what cannot be fixed (not audio, empty, too short, too long, silent, non-finite) is a one-line error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from archzoo.data.sources import DATASETS, locate
from archzoo.errors import UserError

# FSDD file names: {digit}_{speaker}_{index}.wav, index 0-49 not zero-padded (7_jackson_32.wav)
CLIP_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


@dataclass(frozen=True)
class Clip:
    """One recording: its label, speaker and index (from the file name) and samples (S,) float32."""

    digit: int
    speaker: str
    index: int
    waveform: torch.Tensor


@dataclass(frozen=True)
class Audio:
    """A user's file as the model wants it: mono float32 samples at the model's rate, and what was done."""

    waveform: torch.Tensor
    notices: tuple[str, ...]


# the sample rates a user's file may have: resampling from a rate r builds a polyphase filter of about
# 20 max(r, 8000) / gcd(r, 8000) taps, so a header claiming 2^31 Hz would ask for gigabytes
MIN_RATE, MAX_RATE = 1_000, 384_000


def _read(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """(samples (S, channels) float32, sample rate); anything libsndfile cannot decode raises one line.
    With ``max_seconds``, the header's length and rate are checked before any sample is read."""
    import soundfile as sf

    if not path.is_file():
        raise UserError(f"audio file {path} does not exist (or is not a file)")
    try:
        if max_seconds is not None:
            info = sf.info(str(path))
            if not MIN_RATE <= info.samplerate <= MAX_RATE:
                raise UserError(f"{path} has a sample rate of {info.samplerate:,} Hz; give a recording at "
                                f"{MIN_RATE:,}-{MAX_RATE:,} Hz (8 kHz like the training recordings)")
            if info.frames > max_seconds * info.samplerate:
                raise UserError(f"{path} is {info.frames / info.samplerate:.1f} s long; this model takes at most "
                                f"{max_seconds:g} s of audio: cut it into shorter files (e.g. "
                                f"`sox {path.name} part.wav trim 0 {max_seconds:g}`)")
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path} is not readable audio ({first}); give a WAV file (mono, "
                        "16-bit PCM, 8 kHz like the training recordings)") from None
    return data, int(rate)


def read_audio(path: str | Path, sample_rate: int, min_samples: int, max_seconds: float) -> Audio:
    """A user's audio file as mono float32 at ``sample_rate``.

    Stereo (any number of channels) is averaged to mono and another rate resampled (polyphase FIR,
    scipy.signal.resample_poly with its default Kaiser window), each with a notice. Refused in one
    line: unreadable or non-audio files, a sample rate outside 1-384 kHz, no samples, fewer than
    ``min_samples`` (one analysis window) after resampling, more than ``max_seconds`` (checked on the
    header, before reading), non-finite samples, and digital silence.
    """
    path = Path(path)
    data, rate = _read(path, max_seconds)
    notices = []
    if data.shape[0] == 0:
        raise UserError(f"{path} holds no samples (an empty recording); record at least one spoken digit")
    seconds = data.shape[0] / rate
    if seconds > max_seconds:
        raise UserError(f"{path} is {seconds:.1f} s long; this model takes at most {max_seconds:g} s of audio: "
                        f"cut it into shorter files (e.g. `sox {path.name} part.wav trim 0 {max_seconds:g}`)")
    if not np.isfinite(data).all():
        raise UserError(f"{path} contains non-finite samples (NaN or infinity); re-export it as 16-bit PCM WAV")
    if data.shape[1] > 1:
        notices.append(f"{path}: {data.shape[1]} channels mixed down to mono")
        data = data.mean(axis=1, keepdims=True)
    mono = data[:, 0]
    if rate != sample_rate:
        from scipy.signal import resample_poly

        ratio = Fraction(sample_rate, rate)
        mono = resample_poly(mono, ratio.numerator, ratio.denominator).astype(np.float32)
        notices.append(f"{path}: resampled from {rate:,} Hz to {sample_rate:,} Hz")
    if len(mono) < min_samples:
        raise UserError(f"{path} is {1000 * len(mono) / sample_rate:.1f} ms long, shorter than one analysis "
                        f"window ({1000 * min_samples / sample_rate:g} ms); record at least one spoken digit")
    if not np.abs(mono).max() > 0:
        raise UserError(f"{path} is silent (every sample is zero); check the microphone and record again")
    return Audio(torch.from_numpy(np.ascontiguousarray(mono)), tuple(notices))


def load_spoken_digits(dataset: str = "spoken-digits", data_dir: str | Path | None = None) -> list[Clip]:
    """Every recording of a spoken-digit dataset, checksum-verified, in catalogue order.

    Shapes: each clip's waveform (S,) float32 in [-1, 1] at the dataset's ``sample_rate``.
    """
    spec = DATASETS.get(dataset)
    if spec.meta.get("format") != "spoken-digits":
        names = [n for n in DATASETS.names() if DATASETS.get(n).meta.get("format") == "spoken-digits"]
        raise UserError(f"dataset {dataset!r} is not a spoken-digit dataset; choose one of: {', '.join(names)}")
    rate = int(spec.meta["sample_rate"])  # type: ignore[call-overload]
    clips = []
    for name, path in locate(spec, data_dir).items():
        match = CLIP_NAME.match(name)
        if match is None:  # the catalogue names every file; a mismatch is a catalogue bug
            raise ValueError(f"{name} is not named digit_speaker_index.wav")
        data, file_rate = _read(path)
        if file_rate != rate or data.shape[1] != 1:
            raise UserError(f"{path} is {file_rate} Hz with {data.shape[1]} channels, not {rate} Hz mono as catalogued; "
                            f"delete it and run `archzoo data fetch {dataset}`")
        clips.append(Clip(int(match[1]), match[2], int(match[3]), torch.from_numpy(np.ascontiguousarray(data[:, 0]))))
    return clips


def pad_waveforms(waveforms: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D waveforms with zeros into one batch: (B, S_max) and their lengths (B,) int64."""
    lengths = torch.tensor([len(w) for w in waveforms], dtype=torch.long)
    batch = torch.zeros(len(waveforms), int(lengths.max()) if len(waveforms) else 0)
    for i, w in enumerate(waveforms):
        batch[i, :len(w)] = w
    return batch, lengths


def trim_silence(waveform: torch.Tensor, top_db: float, frame_length: int, hop_length: int, margin: int = 1) -> torch.Tensor:
    """The recording without its leading and trailing silence: frames (``frame_length`` samples every
    ``hop_length``) whose mean power is more than ``top_db`` below the loudest frame's are cut from both
    ends, keeping ``margin`` frames on each side (as librosa.effects.trim, which uses RMS in dB).
    Speakers differ in how much silence their files hold (FSDD: lucas about 21 of 57 frames, nicolas none),
    and a model trained on tightly cut recordings reads that silence as speech.

    Shapes: waveform (S,) -> (S',) with S' <= S; recordings shorter than one frame come back unchanged.
    """
    if len(waveform) <= frame_length:
        return waveform
    power = waveform.unfold(0, frame_length, hop_length).square().mean(1)
    db = 10 * torch.log10(power.clamp(min=1e-10))
    loud = (db >= db.max() - top_db).nonzero().flatten()
    first, last = max(int(loud[0]) - margin, 0), min(int(loud[-1]) + margin, len(db) - 1)
    return waveform[first * hop_length: last * hop_length + frame_length]


def change_speed(waveform: torch.Tensor, factor: float) -> torch.Tensor:
    """The recording played ``factor`` times faster at the same sample rate: tempo and pitch scaled together,
    as speed perturbation does (Ko, Peddinti, Povey & Khudanpur 2015, "Audio augmentation for speech
    recognition", Interspeech). Polyphase resampling by the rational p/q nearest the factor (q <= 20).

    Shapes: waveform (S,) -> (≈ S / factor,).
    """
    if factor == 1.0:
        return waveform
    from scipy.signal import resample_poly

    ratio = Fraction(factor).limit_denominator(20)
    out = resample_poly(waveform.numpy(), ratio.denominator, ratio.numerator)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


def seconds_to_samples(seconds: float, sample_rate: int) -> int:
    return int(math.floor(seconds * sample_rate + 0.5))
