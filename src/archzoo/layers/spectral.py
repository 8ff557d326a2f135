"""Speech features: power spectrogram, mel filterbank, log-mel (dB) and MFCC, batched, on any device.

One front end, two compute paths for its transform (STYLE convention 1): ``stft_power_reference`` frames
the signal and multiplies by the DFT's cosine and sine matrices, written from the formula;
``stft_power_fused`` calls ``torch.stft``. The mel filterbank, the dB conversion and the DCT are the same
matrices and formulas on both paths, written to equal librosa's defaults (Slaney mel scale and area
normalisation, ``power_to_db``, orthonormal DCT-II), which the tests check against librosa itself.

Batches are right-padded waveforms with their lengths: frames are centred (``n_fft // 2`` zeros on each
side, librosa's and torch's ``center=True`` with constant padding), so a waveform of S samples has
1 + S // hop frames whatever the padding after it, and padding never changes its features.

Shapes: B batch, S samples, T frames, K = n_fft // 2 + 1 frequency bins, M mel bands, C cepstra.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.impl import ImplSwitch


def hann_window(length: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> Tensor:
    """The periodic Hann window (scipy's ``get_window("hann", fftbins=True)``), for spectral analysis.

    Math: w[n] = 0.5 - 0.5 cos(2π n / N), n = 0..N-1.
    """
    n = torch.arange(length, dtype=torch.float64, device=device)
    return (0.5 - 0.5 * torch.cos(2 * math.pi * n / length)).to(dtype)


def centred_window(window: Tensor, n_fft: int) -> Tensor:
    """A window of ``win_length <= n_fft`` zero-padded on both sides to ``n_fft`` (as torch.stft and librosa)."""
    left = (n_fft - len(window)) // 2
    return torch.nn.functional.pad(window, (left, n_fft - len(window) - left))


def num_frames(lengths: Tensor, hop_length: int) -> Tensor:
    """Frames of centred analysis of each waveform: 1 + S // hop."""
    return 1 + torch.div(lengths, hop_length, rounding_mode="floor")


def stft_power_reference(waveform: Tensor, n_fft: int, hop_length: int, window: Tensor) -> Tensor:
    """Power spectrogram by framing and the discrete Fourier transform, written out.

    Math: x is padded with n_fft/2 zeros on each side; frame m is x_m[n] = x[m·hop + n] w[n], n < N = n_fft;
          X[m, k] = Σ_n x_m[n] e^{-2πi kn/N} = Σ_n x_m[n] cos(2πkn/N) - i Σ_n x_m[n] sin(2πkn/N);
          P[m, k] = |X[m, k]|², k = 0..N/2 (the other half mirrors it for a real signal).
    Reference: Allen & Rabiner 1977, "A unified approach to short-time Fourier analysis and synthesis",
        Proc. IEEE 65(11); the centred, zero-padded framing of librosa.stft (McFee et al. 2015).
    Shapes: waveform (B, S), window (n_fft,) -> power (B, T, K), T = 1 + S // hop.
    """
    x = torch.nn.functional.pad(waveform, (n_fft // 2, n_fft // 2))
    frames = x.unfold(-1, n_fft, hop_length) * window  # (B, T, N)
    n = torch.arange(n_fft, dtype=torch.float64, device=waveform.device)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64, device=waveform.device)
    angle = 2 * math.pi * torch.outer(n, k) / n_fft  # (N, K); exact in float64 before the cast
    real = frames @ torch.cos(angle).to(waveform.dtype)
    imag = frames @ torch.sin(angle).to(waveform.dtype)
    return real.square() + imag.square()


def stft_power_fused(waveform: Tensor, n_fft: int, hop_length: int, window: Tensor) -> Tensor:
    """``stft_power_reference`` on ``torch.stft`` (an FFT): same arguments, same result."""
    spec = torch.stft(waveform, n_fft, hop_length, window=window, center=True, pad_mode="constant",
                      return_complex=True)  # (B, K, T)
    return spec.abs().square().transpose(1, 2)


def hz_to_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale (Auditory Toolbox; librosa's default): linear below 1 kHz, logarithmic above.

    Math: m = f / (200/3) for f < 1000 Hz; m = 15 + ln(f / 1000) / (ln 6.4 / 27) above.
    """
    linear = hz / (200.0 / 3.0)
    log = 15.0 + torch.log(hz.clamp(min=1e-10) / 1000.0) / (math.log(6.4) / 27.0)
    return torch.where(hz >= 1000.0, log, linear)


def mel_to_hz(mel: Tensor) -> Tensor:
    """The inverse of ``hz_to_mel``."""
    linear = mel * (200.0 / 3.0)
    log = 1000.0 * torch.exp((math.log(6.4) / 27.0) * (mel - 15.0))
    return torch.where(mel >= 15.0, log, linear)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> Tensor:
    """Triangular mel filters with Slaney's area normalisation (librosa.filters.mel's defaults).

    Math: n_mels + 2 edge frequencies f_0..f_{M+1} equally spaced in mel between f_min and f_max; filter
          m rises linearly from f_{m} to f_{m+1} and falls to f_{m+2}, scaled by 2 / (f_{m+2} - f_m) so
          every filter has the same area.
    Reference: Slaney 1998, "Auditory Toolbox", Interval Research tech. report #1998-010; Davis &
        Mermelstein 1980, IEEE Trans. ASSP 28(4).
    Shapes: -> (M, K) float32, applied as mel = power @ filters.T.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise UserError(f"mel filterbank: need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}")
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(hz_to_mel(torch.tensor(float(f_min), dtype=torch.float64)).item(),
                                     hz_to_mel(torch.tensor(float(f_max), dtype=torch.float64)).item(),
                                     n_mels + 2, dtype=torch.float64))
    width = edges.diff()  # (M + 1,)
    ramps = edges[:, None] - bins[None, :]  # (M + 2, K)
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return (filters * (2.0 / (edges[2:] - edges[:-2]))[:, None]).float()


def dct_matrix(n_mfcc: int, n_mels: int) -> Tensor:
    """The orthonormal DCT-II as a matrix (scipy.fft.dct(type=2, norm="ortho"), librosa's MFCC).

    Math: c_k = s_k Σ_m x_m cos(π k (2m + 1) / (2M)), s_0 = √(1/M), s_k = √(2/M) for k > 0.
    Shapes: -> (M, C), applied as cepstra = log_mel @ matrix.
    """
    m = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)
    basis = torch.cos(math.pi * k[None, :] * (2 * m[:, None] + 1) / (2 * n_mels))
    scale = torch.full((n_mfcc,), math.sqrt(2.0 / n_mels), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / n_mels)
    return (basis * scale).float()


def frame_mask(frame_lengths: Tensor, steps: int) -> Tensor:
    """(B, T) boolean, True at each utterance's real frames."""
    return torch.arange(steps, device=frame_lengths.device)[None, :] < frame_lengths[:, None]


def power_to_db(power: Tensor, frame_lengths: Tensor, amin: float = 1e-10, top_db: float | None = 80.0) -> Tensor:
    """Decibels of a power spectrogram, floored ``top_db`` below each utterance's own peak (librosa's
    ``power_to_db`` with ref = 1, per utterance of a batch).

    Math: D = 10 log10(max(P, amin)); D = max(D, max_{real frames} D - top_db).
    Shapes: power (B, T, F), frame_lengths (B,) -> (B, T, F).
    """
    db = 10.0 * torch.log10(power.clamp(min=amin))
    if top_db is not None:
        real = frame_mask(frame_lengths, db.shape[1])[..., None]
        peak = db.masked_fill(~real, float("-inf")).amax(dim=(1, 2), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


def normalize_utterances(features: Tensor, frame_lengths: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-utterance mean and variance normalisation of every feature over the real frames (CMVN);
    padded frames become 0. Removes each recording's gain and channel (a constant in dB).

    Math: y_{t,f} = (x_{t,f} - μ_f) / √(σ²_f + eps), μ and σ² over t < length.
    Shapes: features (B, T, F), frame_lengths (B,) -> (B, T, F).
    """
    real = frame_mask(frame_lengths, features.shape[1])[..., None].to(features.dtype)
    count = frame_lengths.clamp(min=1).to(features.dtype)[:, None, None]
    mean = (features * real).sum(1, keepdim=True) / count
    var = ((features - mean).square() * real).sum(1, keepdim=True) / count
    return (features - mean) * torch.rsqrt(var + eps) * real


class LogMelSpectrogram(ImplSwitch, nn.Module):
    """Log-mel spectrogram (dB) or, with ``n_mfcc`` > 0, MFCCs of batches of padded waveforms.

    Math: P = |STFT(x)|² (Hann window of win_length inside n_fft, hop); mel = P Fᵀ (``mel_filterbank``);
          D = ``power_to_db``(mel); MFCC = D · DCT[:, :n_mfcc] (``dct_matrix``).
    Reference: Davis & Mermelstein 1980, "Comparison of parametric representations for monosyllabic word
        recognition in continuously spoken sentences", IEEE Trans. ASSP 28(4) (MFCC).
    Shapes: waveform (B, S), lengths (B,) samples -> features (B, T, n_mels or n_mfcc), frame lengths (B,).
    Differs from paper: Davis & Mermelstein sum log filter energies over triangles spaced on a linear/log
        axis with a cosine transform of 20 filters; this is librosa's modern recipe (see the functions).
    """

    def __init__(self, sample_rate: int = 8000, n_fft: int = 256, win_length: int = 200, hop_length: int = 80,
                 n_mels: int = 40, n_mfcc: int = 0, f_min: float = 0.0, f_max: float | None = None,
                 top_db: float | None = 80.0, impl: str = "auto"):
        super().__init__()
        if not 0 < win_length <= n_fft or hop_length < 1 or n_mels < 1 or not 0 <= n_mfcc <= n_mels:
            raise UserError(f"speech features need 0 < win_length <= n_fft, hop_length >= 1, n_mels >= 1 and "
                            f"0 <= n_mfcc <= n_mels; got win_length={win_length}, n_fft={n_fft}, "
                            f"hop_length={hop_length}, n_mels={n_mels}, n_mfcc={n_mfcc}")
        self.n_fft, self.win_length, self.hop_length, self.top_db = n_fft, win_length, hop_length, top_db
        self.impl = impl
        self.register_buffer("window", centred_window(hann_window(win_length), n_fft), persistent=False)
        self.register_buffer("mel", mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max), persistent=False)
        self.register_buffer("dct", dct_matrix(n_mfcc, n_mels) if n_mfcc else None, persistent=False)

    @property
    def num_features(self) -> int:
        return len(self.mel) if self.dct is None else self.dct.shape[1]

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if waveform.dim() != 2:
            raise UserError(f"speech features take waveforms (B, S), got {tuple(waveform.shape)}")
        if lengths is None:
            lengths = torch.full((len(waveform),), waveform.shape[1], dtype=torch.long, device=waveform.device)
        power_fn = stft_power_fused if self.resolved_impl() == "fused" else stft_power_reference
        power = power_fn(waveform, self.n_fft, self.hop_length, self.window.to(waveform.dtype))
        frames = num_frames(lengths, self.hop_length)
        db = power_to_db(power @ self.mel.T.to(power.dtype), frames, top_db=self.top_db)
        if self.dct is not None:
            db = db @ self.dct.to(db.dtype)
        return db, frames
