"""Speech features (layers/spectral.py): the DFT reference equal to torch.stft, both equal to librosa's
log-mel and MFCC, batching and padding that change nothing, and per-utterance normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from archzoo.errors import UserError
from archzoo.layers import use_impl
from archzoo.layers.spectral import (
    LogMelSpectrogram,
    hann_window,
    mel_filterbank,
    normalize_utterances,
    stft_power_fused,
    stft_power_reference,
)
from helpers import SHARED_DATA

librosa = pytest.importorskip("librosa")


def chirp(samples: int, rate: int = 8000, seed: int = 0) -> np.ndarray:
    """A rising tone with harmonics and a little noise: energy spread over the whole band."""
    t = np.arange(samples) / rate
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * (200 * t + 1500 * t * t)
    return 0.5 * np.sin(phase) + 0.2 * np.sin(3 * phase) + 0.01 * rng.standard_normal(samples)


def signals() -> list[np.ndarray]:
    found = [chirp(3000), chirp(1200, seed=1), chirp(260, seed=2)]  # 260: barely more than one window
    clip = SHARED_DATA / "spoken-digits" / "recordings" / "3_theo_7.wav"
    if clip.is_file():
        import soundfile as sf

        found.append(sf.read(str(clip), dtype="float64")[0])
    return found


@pytest.mark.parametrize("n_mfcc", [0, 13])
@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_log_mel_and_mfcc_equal_librosa(impl: str, n_mfcc: int) -> None:
    """librosa.power_to_db(melspectrogram(...), top_db=80) and mfcc(S=...): Hann 200 in 256, hop 80, 40
    Slaney mel bands, 8 kHz, centred frames with zero padding; float64 to 1e-4 dB (librosa builds its
    filterbank in float32)."""
    frontend = LogMelSpectrogram(8000, 256, 200, 80, 40, n_mfcc).double()
    for y in signals():
        mel = librosa.feature.melspectrogram(y=y, sr=8000, n_fft=256, hop_length=80, win_length=200, n_mels=40)
        expected = librosa.power_to_db(mel, top_db=80.0)
        if n_mfcc:
            expected = librosa.feature.mfcc(S=expected, n_mfcc=n_mfcc)
        with use_impl(impl):
            ours, frames = frontend(torch.from_numpy(y)[None])
        assert frames.item() == expected.shape[1] == 1 + len(y) // 80
        np.testing.assert_allclose(ours[0].numpy().T, expected, atol=1e-4, rtol=0)


def test_mel_filterbank_equals_librosa() -> None:
    for n_mels, n_fft, f_min, f_max in ((40, 256, 0.0, None), (23, 512, 100.0, 3000.0)):
        expected = librosa.filters.mel(sr=8000, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, dtype=np.float64)
        np.testing.assert_allclose(mel_filterbank(n_mels, n_fft, 8000, f_min, f_max).numpy(), expected, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dft_reference_equals_torch_stft_with_gradients(dtype: torch.dtype) -> None:
    x = torch.randn(3, 1000, dtype=dtype, requires_grad=True)
    window = torch.nn.functional.pad(hann_window(200, dtype), (28, 28))
    ref = stft_power_reference(x, 256, 80, window)
    fused = stft_power_fused(x, 256, 80, window)
    tol = {"atol": 1e-3, "rtol": 1e-4} if dtype == torch.float32 else {}
    torch.testing.assert_close(ref, fused, **tol)
    grad = torch.randn_like(ref)
    (g1,) = torch.autograd.grad(ref, x, grad)
    (g2,) = torch.autograd.grad(fused, x, grad)
    torch.testing.assert_close(g1, g2, **tol)


def test_hann_window_is_scipys_periodic_hann() -> None:
    from scipy.signal import get_window

    np.testing.assert_allclose(hann_window(200, torch.float64).numpy(), get_window("hann", 200, fftbins=True))


@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_a_padded_batch_gives_each_waveform_its_own_features(impl: str) -> None:
    frontend = LogMelSpectrogram(n_mfcc=13)
    waves = [torch.from_numpy(chirp(n, seed=n)).float() for n in (3000, 1700, 250)]
    batch = torch.zeros(3, 3500)
    batch[1, 1700:] = 0.3  # garbage after the end must not leak in either
    for i, w in enumerate(waves):
        batch[i, :len(w)] = w
    lengths = torch.tensor([len(w) for w in waves])
    with use_impl(impl):
        feats, frames = frontend(batch, lengths)
        assert frames.tolist() == [1 + n // 80 for n in lengths.tolist()]
        for i, w in enumerate(waves):
            alone, _ = frontend(w[None])
            n = int(frames[i])
            if i == 1:  # the garbage starts at sample 1700: frames reaching past it differ, earlier ones do not
                n = (1700 - 128) // 80 + 1
            torch.testing.assert_close(feats[i, :n], alone[0, :n], atol=1e-3, rtol=1e-4)


def test_utterance_normalisation_uses_only_real_frames() -> None:
    x = torch.randn(2, 10, 4) * 3 + 5
    lengths = torch.tensor([10, 6])
    y = normalize_utterances(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(y[i, :n].mean(0), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(y[i, :n].var(0, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
        assert (y[i, n:] == 0).all()
    # a gain (a constant in dB) is removed entirely
    torch.testing.assert_close(normalize_utterances(x + 20.0, lengths), y, atol=1e-4, rtol=0)


def test_bad_front_end_settings_are_one_line_errors() -> None:
    for kwargs in ({"win_length": 300}, {"hop_length": 0}, {"n_mfcc": 50}):
        with pytest.raises(UserError) as excinfo:
            LogMelSpectrogram(**kwargs)
        assert "\n" not in str(excinfo.value)
    with pytest.raises(UserError, match="f_max"):
        mel_filterbank(40, 256, 8000, 0.0, 5000.0)
    with pytest.raises(UserError, match="waveforms"):
        LogMelSpectrogram()(torch.zeros(100))
    assert math.isfinite(LogMelSpectrogram()(torch.zeros(1, 400))[0].sum().item())  # silence: floored, finite
