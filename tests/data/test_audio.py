"""Audio files (data/audio.py) and the spoken-digit catalogue entry: a user's WAV made to match the training
data (mixed down, resampled, with notices) or refused in one line, and the FSDD recordings read in full."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from archzoo.data import DATASETS
from archzoo.data.audio import change_speed, load_spoken_digits, read_audio, trim_silence
from archzoo.errors import UserError
from helpers import needs_spoken_digits


def tone(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_a_mono_8khz_wav_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, tone(0.5, 8000), 8000, subtype="PCM_16")
    audio = read_audio(path, 8000, 200, 5.0)
    assert audio.notices == () and audio.waveform.shape == (4000,) and audio.waveform.dtype == torch.float32
    assert audio.waveform.abs().max() == pytest.approx(0.3, abs=1e-3)


def test_stereo_is_mixed_down_and_another_rate_resampled_with_notices(tmp_path: Path) -> None:
    path = tmp_path / "b.wav"
    left, right = tone(0.5, 16000, 440.0), tone(0.5, 16000, 440.0) * 0.5
    sf.write(path, np.stack([left, right], 1), 16000, subtype="PCM_24")
    audio = read_audio(path, 8000, 200, 5.0)
    assert len(audio.notices) == 2 and "2 channels mixed down" in audio.notices[0]
    assert "resampled from 16,000 Hz to 8,000 Hz" in audio.notices[1]
    assert audio.waveform.shape == (4000,)
    spectrum = np.abs(np.fft.rfft(audio.waveform.numpy()))
    assert np.argmax(spectrum) * 8000 / 4000 == pytest.approx(440.0, abs=2.0)  # the tone is still at 440 Hz
    assert audio.waveform.abs().max() == pytest.approx(0.225, abs=0.01)  # the mean of the two channels


@pytest.mark.parametrize(("make", "needle"), [
    (lambda p: p.write_text("not audio at all"), "not readable audio"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), 8000), "no samples"),
    (lambda p: sf.write(p, tone(0.01, 8000), 8000), "shorter than one analysis window"),
    (lambda p: sf.write(p, tone(6.0, 8000), 8000), "at most 5 s"),
    (lambda p: sf.write(p, np.zeros(4000, np.float32), 8000), "silent"),
    (lambda p: sf.write(p, np.full(4000, np.nan, np.float32), 8000, subtype="FLOAT"), "non-finite"),
])
def test_unusable_files_are_refused_in_one_line(tmp_path: Path, make, needle: str) -> None:  # noqa: ANN001
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(UserError, match=needle) as excinfo:
        read_audio(path, 8000, 200, 5.0)
    assert "\n" not in str(excinfo.value) and str(path) in str(excinfo.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_audio(tmp_path / "nope.wav", 8000, 200, 5.0)


def test_the_catalogue_lists_every_recording_with_checksums_and_urls() -> None:
    spec = DATASETS.get("spoken-digits")
    assert len(spec.files) == 3000 and sum(f.size for f in spec.files) == 21_128_848
    names = {f.name for f in spec.files}
    assert names == {f"{d}_{s}_{i}.wav" for d in range(10) for s in spec.meta["speakers"] for i in range(50)}  # type: ignore[union-attr]
    assert all(re.fullmatch(r"[0-9a-f]{64}", f.sha256) and f.url.endswith("/v1.0.10/recordings/" + f.name) for f in spec.files)


def test_missing_recordings_are_summarised_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ARCHZOO_DATA", raising=False)
    with pytest.raises(UserError) as excinfo:
        load_spoken_digits("spoken-digits", tmp_path)
    message = str(excinfo.value)
    assert "and 2,994 more" in message and "archzoo data fetch spoken-digits" in message and len(message) < 600


def test_a_dataset_of_another_kind_is_refused() -> None:
    with pytest.raises(UserError, match="not a spoken-digit dataset"):
        load_spoken_digits("mnist")


@needs_spoken_digits
def test_every_recording_is_read_with_its_label_speaker_and_index() -> None:
    clips = load_spoken_digits()
    assert len(clips) == 3000
    lengths = [len(c.waveform) for c in clips]
    assert min(lengths) == 1148 and max(lengths) == 18262  # the data README's extremes
    longest = clips[lengths.index(18262)]
    assert (longest.digit, longest.speaker, longest.index) == (9, "theo", 16)
    assert all(c.waveform.abs().max() <= 1.0 for c in clips)


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.25])
def test_a_change_of_speed_scales_duration_and_pitch_together(factor: float) -> None:
    rate, seconds, hz = 8000, 1.0, 440.0
    t = torch.arange(int(rate * seconds)) / rate
    faster = change_speed(torch.sin(2 * torch.pi * hz * t), factor)
    assert faster.dtype == torch.float32
    assert abs(len(faster) - rate * seconds / factor) <= 1
    spectrum = torch.fft.rfft(faster * torch.hann_window(len(faster)))
    peak_hz = spectrum.abs().argmax().item() * rate / len(faster)
    assert abs(peak_hz - hz * factor) < 2.0


def test_speed_one_is_the_recording_itself() -> None:
    wave = torch.randn(1000)
    assert change_speed(wave, 1.0) is wave


def test_trimming_cuts_leading_and_trailing_silence_only() -> None:
    rate, hop, frame = 8000, 80, 200
    speech = torch.from_numpy(tone(0.3, rate))
    quiet = 1e-4 * torch.randn(2000)  # -70 dB below the tone
    padded = torch.cat([quiet, speech, torch.zeros(500), speech, quiet])
    trimmed = trim_silence(padded, 30.0, frame, hop, margin=0)
    inner = len(speech) * 2 + 500
    assert inner <= len(trimmed) <= inner + 2 * frame  # the gap between the words stays, the ends go
    assert trim_silence(padded, 100.0, frame, hop, margin=0).shape[0] >= len(padded) - frame  # nothing is that quiet
    short = torch.randn(150)
    assert trim_silence(short, 30.0, frame, hop) is short
