"""Forecasters: a look-back window of a multivariate series in, the next ``horizon`` steps out.

Every model maps x (B, L, C) to a forecast (B, H, C) on the scale it was given (the forecasting task
standardises with training statistics). Baselines: ``naive_last`` (repeat the last value),
``seasonal_naive`` (repeat the last season) and ``linear`` (NLinear / DLinear). Neural forecasters:
``rnn_forecaster``, ``lstm_forecaster``, ``gru_forecaster`` (segment encoder, then a multi-step head or
autoregressive decoding) and ``transformer_forecaster`` (patches, as PatchTST).

What makes neural forecasters competitive on ETTh1 (Zeng et al. 2023, arXiv:2205.13504; Nie et al.
2023, arXiv:2211.14730): *channel independence* (each variable is forecast from its own history by one
shared network; the C variables are folded into the batch) and *per-instance normalisation* (Kim et al.
2022, RevIN, ICLR: each window is standardised by its own mean and std and the forecast is mapped back),
which removes the level shift between the training months and the test months.

Shapes: B batch, L look-back (``seq_len``), H horizon, C variables (``num_channels``), N = B * C series.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.dropout import Dropout
from archzoo.layers.linear import Linear
from archzoo.layers.norm import LayerNorm
from archzoo.layers.positional import LearnedPositionalEmbedding
from archzoo.layers.recurrent import GRU, LSTM, RNN
from archzoo.layers.transformer import TransformerEncoderLayer
from archzoo.models.base import BATCH, ExportGraph
from archzoo.models.registry import register_model

NORMS = ("revin", "last", "none")
DECODERS = ("direct", "autoregressive")
CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


class Forecaster(nn.Module):
    """Base of every forecaster: the (B, L, C) -> (B, H, C) contract and ``example_inputs``."""

    def __init__(self, seq_len: int, horizon: int, num_channels: int):
        super().__init__()
        name = type(self).__name__
        for key, value in (("seq_len", seq_len), ("horizon", horizon), ("num_channels", num_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{name}: {key} must be an integer >= 1, got {value!r}")
        self.seq_len, self.horizon, self.num_channels = seq_len, horizon, num_channels

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        """A random batch of valid inputs, so generic tests and ``archzoo info`` cover every model."""
        return (torch.randn(batch_size, self.seq_len, self.num_channels),)

    def export_graphs(self) -> list[ExportGraph]:
        """Windows x (B, L, C), standardised with the run's scaler -> forecast (B, H, C), same scale."""
        return [ExportGraph(self, self.example_inputs(2), ["x"], ["forecast"], {"x": {0: BATCH}})]

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 3 or tuple(x.shape[1:]) != (self.seq_len, self.num_channels):
            raise UserError(f"{type(self).__name__} expects windows of shape (B, {self.seq_len}, {self.num_channels}) "
                            f"(batch, look-back, variables), got {tuple(x.shape)}")


class NaiveLast(Forecaster):
    """Repeat the last observed value: y_{L+h} = x_L for h = 1..H. No parameters."""

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return x[:, -1:].expand(-1, self.horizon, -1).contiguous()


class SeasonalNaive(Forecaster):
    """Repeat the last season: y_{L+h} = x_{L - m + ((h - 1) mod m)} for period m. No parameters.

    Reference: Hyndman & Athanasopoulos, "Forecasting: Principles and Practice", 3rd ed., Sec. 5.2.
    """

    def __init__(self, seq_len: int, horizon: int, num_channels: int, period: int):
        super().__init__(seq_len, horizon, num_channels)
        if not 1 <= period <= seq_len:
            raise UserError(f"seasonal_naive: period={period} must be in [1, seq_len={seq_len}]; "
                            "set model.args.period to the season (24 hourly, 12 monthly)")
        self.period = period
        self.register_buffer("index", seq_len - period + torch.arange(horizon) % period, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return x[:, self.index]


def instance_norm(x: Tensor, mode: str, eps: float = 1e-5) -> tuple[Tensor, Tensor, Tensor]:
    """Per-window normalisation over time, returning (normalised, shift, scale) to map a forecast back.

    Math: revin: z = (x - mean_t x) / sqrt(var_t x + eps) (population variance; Kim et al. 2022, RevIN,
        without its affine weights); last: z = x - x_L (NLinear, Zeng et al. 2023, Sec. 4); none: z = x.
    Shapes: x (N, L) -> z (N, L), shift and scale (N, 1).
    """
    if mode == "revin":
        shift = x.mean(1, keepdim=True)
        scale = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + eps)
    elif mode == "last":
        shift, scale = x[:, -1:], torch.ones_like(x[:, -1:])
    else:
        shift, scale = torch.zeros_like(x[:, -1:]), torch.ones_like(x[:, -1:])
    return (x - shift) / scale, shift, scale


class ChannelIndependent(Forecaster):
    """Forecasts each variable from its own history with one shared network over N = B * C series,
    inside per-instance normalisation; subclasses define ``forecast_series`` (N, L) -> (N, H)."""

    def __init__(self, seq_len: int, horizon: int, num_channels: int, norm: str):
        super().__init__(seq_len, horizon, num_channels)
        if norm not in NORMS:
            raise UserError(f"{type(self).__name__}: norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.norm = norm

    def forecast_series(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        b, length, c = x.shape
        series = x.transpose(1, 2).reshape(b * c, length)  # (B, L, C) -> (N, L)
        z, shift, scale = instance_norm(series, self.norm)
        y = self.forecast_series(z) * scale + shift
        return y.reshape(b, c, self.horizon).transpose(1, 2)  # (N, H) -> (B, H, C)


def moving_average(z: Tensor, kernel_size: int) -> Tensor:
    """Trend by a centred moving average, ends padded by repeating the first and last values (DLinear).

    Math: t_i = (1/k) sum_{j=-(k-1)/2}^{(k-1)/2} z_{clamp(i+j)}. Shapes: z (N, L) -> (N, L); k odd.
    """
    half = (kernel_size - 1) // 2
    padded = torch.cat([z[:, :1].expand(-1, half), z, z[:, -1:].expand(-1, half)], dim=1)
    return F.avg_pool1d(padded[:, None], kernel_size, stride=1)[:, 0]


class LinearForecaster(ChannelIndependent):
    """One linear map from the look-back to the horizon, shared by all variables (NLinear / DLinear).

    Math: NLinear: y = W (x - x_L) + b + x_L. DLinear: x = t + s with t the moving average of x;
        y = W_t t + b_t + W_s s + b_s.
    Reference: Zeng, Chen, Zhang & Xu 2023, "Are Transformers Effective for Time Series Forecasting?",
        AAAI, arXiv:2205.13504, Sec. 4.
    Shapes: (B, L, C) -> (B, H, C); parameters W (H, L), b (H,) (twice with the decomposition).
    Differs from paper: both share the map over variables (the papers' default, ``individual=False``);
        DLinear here may combine the decomposition with ``norm`` (the paper's DLinear uses none).
    """

    def __init__(self, seq_len: int, horizon: int, num_channels: int, norm: str, decomposition: bool,
                 kernel_size: int):
        super().__init__(seq_len, horizon, num_channels, norm)
        if decomposition and (kernel_size < 1 or kernel_size % 2 == 0):
            raise UserError(f"linear: kernel_size must be odd and >= 1, got {kernel_size}")
        self.kernel_size = kernel_size if decomposition else 0
        self.linear = Linear(seq_len, horizon)
        self.trend = Linear(seq_len, horizon) if decomposition else None

    def forecast_series(self, z: Tensor) -> Tensor:
        if self.trend is None:
            return self.linear(z)
        trend = moving_average(z, self.kernel_size)
        return self.linear(z - trend) + self.trend(trend)


class RecurrentForecaster(ChannelIndependent):
    """A recurrent encoder over segments of the look-back, then the horizon in one step or autoregressively.

    Math: the look-back is cut into n = L / p segments s_k of p steps; e_k = ReLU(W_e s_k + b_e);
        o_k, state = cell(e_k, state) (``num_layers`` stacked cells). Direct: y = W_h dropout(o_n) + b_h,
        all H steps at once. Autoregressive: ŝ_{n+1} = W_p o_n + b_p; each predicted segment is embedded
        and fed back, o_{n+j}, state = cell(ReLU(W_e ŝ_{n+j} + b_e), state), until H steps are produced
        (trained free-running, so no teacher forcing gap between training and use).
    Reference: segments: Lin et al. 2023, "SegRNN", arXiv:2308.11200, Sec. 3; the multi-step head vs
        recursive decoding: Taieb et al. 2012, "A review and comparison of strategies for multi-step
        ahead time series forecasting", Expert Systems with Applications 39(8); cells: see layers/recurrent.py.
    Shapes: (B, L, C) -> (B, H, C); segments (N, n, p) -> states (N, n, hidden_size).
    Differs from paper: SegRNN decodes all segments in parallel with position embeddings; here the
        direct head reads the last state, and the decoder option is the classic recursive one.
    """

    def __init__(self, cell: str, seq_len: int, horizon: int, num_channels: int, hidden_size: int, num_layers: int,
                 patch_len: int, dropout: float, decoder: str, norm: str, nonlinearity: str = "tanh"):
        super().__init__(seq_len, horizon, num_channels, norm)
        name = f"{cell}_forecaster"
        if patch_len < 1 or seq_len % patch_len:
            raise UserError(f"{name}: patch_len={patch_len} must divide seq_len={seq_len}; "
                            "choose a divisor such as 24 for 96 or 336, 12 for monthly data")
        if decoder not in DECODERS:
            raise UserError(f"{name}: decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"{name}: dropout must be in [0, 1), got {dropout}")
        self.patch_len, self.decoder = patch_len, decoder
        self.embed = Linear(patch_len, hidden_size)
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = CELLS[cell](hidden_size, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0,
                               batch_first=True, **extra)
        self.dropout = Dropout(dropout)
        self.head = Linear(hidden_size, horizon if decoder == "direct" else patch_len)

    def forecast_series(self, z: Tensor) -> Tensor:
        segments = z.reshape(z.shape[0], -1, self.patch_len)  # (N, L) -> (N, n, p)
        out, state = self.rnn(torch.relu(self.embed(segments)))
        if self.decoder == "direct":
            return self.head(self.dropout(out[:, -1]))
        pieces = [self.head(self.dropout(out[:, -1]))]
        for _ in range(math.ceil(self.horizon / self.patch_len) - 1):
            out, state = self.rnn(torch.relu(self.embed(pieces[-1]))[:, None], state)
            pieces.append(self.head(self.dropout(out[:, -1])))
        return torch.cat(pieces, 1)[:, :self.horizon]


class TransformerForecaster(ChannelIndependent):
    """A Transformer encoder over patches of the look-back and a flatten-linear head (PatchTST-style).

    Math: patches P_k (n = L / p of them, p steps each); u_k = W_e P_k + b_e + pos_k; u = encoder(u)
        (``num_layers`` pre-LN Transformer encoder layers, bidirectional attention); y = W_h flatten(LN(u)) + b_h.
    Reference: Nie, Nguyen, Sinthong & Kalagnanam 2023, "A Time Series is Worth 64 Words", ICLR,
        arXiv:2211.14730, Sec. 3.1; the encoder layer: Vaswani et al. 2017, arXiv:1706.03762.
    Shapes: (B, L, C) -> (B, H, C); patches (N, n, p) -> (N, n, d_model) -> flatten (N, n * d_model) -> (N, H).
    Differs from paper: non-overlapping patches (PatchTST: stride p/2 with end padding), LayerNorm instead
        of BatchNorm in the encoder.
    """

    def __init__(self, seq_len: int, horizon: int, num_channels: int, d_model: int, num_heads: int, num_layers: int,
                 dim_feedforward: int, patch_len: int, dropout: float, norm: str):
        super().__init__(seq_len, horizon, num_channels, norm)
        if patch_len < 1 or seq_len % patch_len:
            raise UserError(f"transformer_forecaster: patch_len={patch_len} must divide seq_len={seq_len}; "
                            "choose a divisor such as 16 for 96 or 336, 12 for monthly data")
        if num_layers < 1:
            raise UserError(f"transformer_forecaster: num_layers must be >= 1, got {num_layers}")
        self.patch_len = patch_len
        n = seq_len // patch_len
        self.embed = Linear(patch_len, d_model)
        self.pos = LearnedPositionalEmbedding(n, d_model)
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout,
                                                            activation="gelu", norm_first=True)
                                    for _ in range(num_layers))
        self.final_norm = LayerNorm(d_model)
        self.head = Linear(n * d_model, horizon)

    def forecast_series(self, z: Tensor) -> Tensor:
        u = self.dropout(self.pos(self.embed(z.reshape(z.shape[0], -1, self.patch_len))))  # (N, n, p) -> (N, n, D)
        for layer in self.layers:
            u = layer(u)
        return self.head(self.dropout(self.final_norm(u).flatten(1)))


# -- named variants ---------------------------------------------------------------------------------
# seq_len, horizon and num_channels come from the forecasting task (its model_args); the defaults are
# ETTh1's multivariate setting, look-back 96, horizon 96.


@register_model("naive_last")
def naive_last(seq_len: int = 96, horizon: int = 96, num_channels: int = 7) -> NaiveLast:
    """Last value repeated over the horizon (the random-walk forecast)."""
    return NaiveLast(seq_len, horizon, num_channels)


@register_model("seasonal_naive")
def seasonal_naive(seq_len: int = 96, horizon: int = 96, num_channels: int = 7, period: int = 24) -> SeasonalNaive:
    """The last ``period`` values repeated over the horizon."""
    return SeasonalNaive(seq_len, horizon, num_channels, period)


@register_model("linear")
def linear(seq_len: int = 96, horizon: int = 96, num_channels: int = 7, norm: str = "last",
           decomposition: bool = False, kernel_size: int = 25) -> LinearForecaster:
    """NLinear (norm="last") or DLinear (decomposition=True, norm="none"); one map shared by the variables."""
    return LinearForecaster(seq_len, horizon, num_channels, norm, decomposition, kernel_size)


def _recurrent(cell: str, seq_len: int, horizon: int, num_channels: int, hidden_size: int, num_layers: int,
               patch_len: int, dropout: float, decoder: str, norm: str) -> RecurrentForecaster:
    return RecurrentForecaster(cell, seq_len, horizon, num_channels, hidden_size, num_layers, patch_len, dropout,
                               decoder, norm)


@register_model("rnn_forecaster")
def rnn_forecaster(seq_len: int = 96, horizon: int = 96, num_channels: int = 7, hidden_size: int = 64,
                   num_layers: int = 1, patch_len: int = 24, dropout: float = 0.0, decoder: str = "direct",
                   norm: str = "revin") -> RecurrentForecaster:
    """Elman (tanh) encoder over segments."""
    return _recurrent("rnn", seq_len, horizon, num_channels, hidden_size, num_layers, patch_len, dropout, decoder, norm)


@register_model("lstm_forecaster")
def lstm_forecaster(seq_len: int = 96, horizon: int = 96, num_channels: int = 7, hidden_size: int = 64,
                    num_layers: int = 1, patch_len: int = 24, dropout: float = 0.0, decoder: str = "direct",
                    norm: str = "revin") -> RecurrentForecaster:
    """LSTM encoder over segments."""
    return _recurrent("lstm", seq_len, horizon, num_channels, hidden_size, num_layers, patch_len, dropout, decoder,
                      norm)


@register_model("gru_forecaster")
def gru_forecaster(seq_len: int = 96, horizon: int = 96, num_channels: int = 7, hidden_size: int = 64,
                   num_layers: int = 1, patch_len: int = 24, dropout: float = 0.0, decoder: str = "direct",
                   norm: str = "revin") -> RecurrentForecaster:
    """GRU encoder over segments (SegRNN's cell)."""
    return _recurrent("gru", seq_len, horizon, num_channels, hidden_size, num_layers, patch_len, dropout, decoder, norm)


@register_model("transformer_forecaster")
def transformer_forecaster(seq_len: int = 96, horizon: int = 96, num_channels: int = 7, d_model: int = 64,
                           num_heads: int = 4, num_layers: int = 2, dim_feedforward: int = 128, patch_len: int = 16,
                           dropout: float = 0.1, norm: str = "revin") -> TransformerForecaster:
    """Patch Transformer encoder with a flatten-linear head."""
    return TransformerForecaster(seq_len, horizon, num_channels, d_model, num_heads, num_layers, dim_feedforward,
                                 patch_len, dropout, norm)
