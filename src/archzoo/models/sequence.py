"""Sequence-to-output models for the long-range tasks: RNN, LSTM, GRU, a Transformer encoder and a
dilated causal 1-D CNN, over one contract.

Every model maps float inputs x (B, T, input_size) to outputs (B, T, output_size), reading the
sequence left to right: output t depends on x_0..x_t only (causal), so each model can answer at
any step and the task decides which steps it reads (the last one for the adding problem and
sequential MNIST, the last K for delayed recall; tasks/sequence.py). Sizes are free, so the
claims lab can give the five architectures similar parameter counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers import GRU, LSTM, RNN, Conv2d, LayerNorm, Linear, SinusoidalPositionalEncoding
from archzoo.layers.recurrent import init_orthogonal_recurrent_
from archzoo.layers.transformer import TransformerEncoderLayer
from archzoo.models.base import check_widths
from archzoo.models.registry import register_model

RECURRENT_INITS = ("uniform", "orthogonal")


class SequenceModel(nn.Module):
    """Base: checks the input, offers ``example_inputs``; subclasses define ``features`` (B, T, I) -> (B, T, W)
    and a ``head`` Linear(W, output_size)."""

    head: Linear

    def __init__(self, name: str, input_size: int, output_size: int):
        super().__init__()
        check_widths(name, "input_size and output_size", (input_size, output_size))
        self.name, self.input_size, self.output_size = name, input_size, output_size

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[2] != self.input_size or x.shape[1] < 1:
            raise UserError(f"{self.name} takes inputs of shape (B, T, {self.input_size}) with T >= 1, "
                            f"got {tuple(x.shape)}")
        return self.head(self.features(x))

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randn(batch_size, 16, self.input_size),)


class RecurrentSequenceModel(SequenceModel):
    """A stacked RNN / LSTM / GRU and a linear readout at every step.

    Math: h_t = cell(x_t, h_{t-1}) through ``num_layers`` layers; y_t = W h_t + b.
    Reference: Elman 1990 (RNN); Hochreiter & Schmidhuber 1997 (LSTM); Cho et al. 2014, arXiv:1406.1078 (GRU).
    Shapes: x (B, T, I) -> h (B, T, H) -> y (B, T, O).
    """

    def __init__(self, cell: str, input_size: int, output_size: int, hidden_size: int, num_layers: int,
                 recurrent_init: str, nonlinearity: str = "tanh"):
        super().__init__(f"seq_{cell}", input_size, output_size)
        check_widths(self.name, "hidden_size and num_layers", (hidden_size, num_layers))
        if recurrent_init not in RECURRENT_INITS:
            raise UserError(f"{self.name}: recurrent_init must be one of {', '.join(RECURRENT_INITS)}, "
                            f"got {recurrent_init!r}")
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = {"rnn": RNN, "lstm": LSTM, "gru": GRU}[cell](input_size, hidden_size, num_layers, **extra)
        if recurrent_init == "orthogonal":
            init_orthogonal_recurrent_(self.rnn)
        self.head = Linear(hidden_size, output_size)

    def features(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]


class TransformerSequenceModel(SequenceModel):
    """A causal pre-LN Transformer encoder over linearly embedded inputs with sinusoidal positions.

    Math: h_0 = W_in x + PE;  h_l = Block_l(h_{l-1}) with causal self-attention (step t attends to
        steps <= t);  y_t = W_out LN(h_L)_t.
    Reference: Vaswani et al. 2017, arXiv:1706.03762 (encoder layer, sinusoidal positions); pre-LN:
        Xiong et al. 2020, arXiv:2002.04745.
    Shapes: x (B, T, I) -> (B, T, D) -> y (B, T, O).
    Differs from paper: causal attention (as a decoder's), so every model of this family reads left
        to right; no dropout.
    """

    def __init__(self, input_size: int, output_size: int, d_model: int, num_layers: int, num_heads: int,
                 dim_feedforward: int):
        super().__init__("seq_transformer", input_size, output_size)
        check_widths(self.name, "d_model, num_layers, num_heads and dim_feedforward",
                     (d_model, num_layers, num_heads, dim_feedforward))
        self.embed = Linear(input_size, d_model)
        self.position = SinusoidalPositionalEncoding(d_model)
        self.layers = nn.ModuleList(TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout=0.0,
                                                            activation="gelu", norm_first=True)
                                    for _ in range(num_layers))
        self.norm = LayerNorm(d_model)
        self.head = Linear(d_model, output_size)

    def features(self, x: Tensor) -> Tensor:
        h = self.position(self.embed(x))
        for layer in self.layers:
            h = layer(h, is_causal=True)
        return self.norm(h)


class TemporalConvNet(SequenceModel):
    """A dilated causal 1-D CNN (TCN): residual blocks of two dilated causal convolutions whose
    dilation doubles from block to block, so the receptive field grows exponentially with depth.

    Math: conv_d(h)_t = Σ_{i<k} W_i h_{t - d·i} (zeros before t = 0);
          block_l(h) = ReLU(h + conv_d(ReLU(conv_d(h)))) with d = 2^l;  h_0 = W_in x;  y_t = W_out h_L,t.
          Receptive field: 1 + 2 (k - 1) (2^L - 1) steps.
    Reference: Bai, Kolter & Koltun 2018, "An Empirical Evaluation of Generic Convolutional and Recurrent
        Networks for Sequence Modeling", arXiv:1803.01271, Sec. 3; dilated causal convolutions: van den
        Oord et al. 2016 (WaveNet), arXiv:1609.03499.
    Shapes: x (B, T, I) -> (B, C, T, 1) as an image of width 1 -> (B, T, C) -> y (B, T, O).
    Differs from paper: no weight normalisation or dropout.
    """

    def __init__(self, input_size: int, output_size: int, channels: int, num_layers: int, kernel_size: int):
        super().__init__("seq_tcn", input_size, output_size)
        check_widths(self.name, "channels, num_layers and kernel_size", (channels, num_layers, kernel_size))
        self.kernel_size = kernel_size
        self.embed = Linear(input_size, channels)
        self.dilations = [2**layer for layer in range(num_layers)]
        self.convs = nn.ModuleList(Conv2d(channels, channels, (kernel_size, 1), dilation=(d, 1))
                                   for d in self.dilations for _ in range(2))
        self.head = Linear(channels, output_size)

    @property
    def receptive_field(self) -> int:
        return 1 + 2 * (self.kernel_size - 1) * sum(self.dilations)

    def features(self, x: Tensor) -> Tensor:
        h = self.embed(x).transpose(1, 2).unsqueeze(3)  # (B, C, T, 1)
        for i, d in enumerate(self.dilations):
            pad = (0, 0, d * (self.kernel_size - 1), 0)  # left padding only: step t sees t - d(k-1) .. t
            inner = torch.relu(self.convs[2 * i](F.pad(h, pad)))
            h = torch.relu(h + self.convs[2 * i + 1](F.pad(inner, pad)))
        return h.squeeze(3).transpose(1, 2)


@register_model("seq_rnn")
def seq_rnn(input_size: int = 2, output_size: int = 1, hidden_size: int = 128, num_layers: int = 1,
            recurrent_init: str = "uniform", nonlinearity: str = "tanh") -> RecurrentSequenceModel:
    """Elman RNN over the sequence; ``recurrent_init = "orthogonal"`` makes W_hh orthogonal (Saxe et al. 2014)."""
    return RecurrentSequenceModel("rnn", input_size, output_size, hidden_size, num_layers, recurrent_init, nonlinearity)


@register_model("seq_lstm")
def seq_lstm(input_size: int = 2, output_size: int = 1, hidden_size: int = 64, num_layers: int = 1,
             recurrent_init: str = "uniform") -> RecurrentSequenceModel:
    """LSTM over the sequence (Hochreiter & Schmidhuber 1997, forget gate of Gers et al. 2000)."""
    return RecurrentSequenceModel("lstm", input_size, output_size, hidden_size, num_layers, recurrent_init)


@register_model("seq_gru")
def seq_gru(input_size: int = 2, output_size: int = 1, hidden_size: int = 72, num_layers: int = 1,
            recurrent_init: str = "uniform") -> RecurrentSequenceModel:
    """GRU over the sequence (Cho et al. 2014, arXiv:1406.1078)."""
    return RecurrentSequenceModel("gru", input_size, output_size, hidden_size, num_layers, recurrent_init)


@register_model("seq_transformer")
def seq_transformer(input_size: int = 2, output_size: int = 1, d_model: int = 32, num_layers: int = 2,
                    num_heads: int = 4, dim_feedforward: int = 64) -> TransformerSequenceModel:
    """Causal pre-LN Transformer encoder with sinusoidal positions (any length)."""
    return TransformerSequenceModel(input_size, output_size, d_model, num_layers, num_heads, dim_feedforward)


@register_model("seq_tcn")
def seq_tcn(input_size: int = 2, output_size: int = 1, channels: int = 24, num_layers: int = 9,
            kernel_size: int = 2) -> TemporalConvNet:
    """Dilated causal 1-D CNN (TCN, Bai et al. 2018); 9 blocks of kernel 2 see 1,023 steps back."""
    return TemporalConvNet(input_size, output_size, channels, num_layers, kernel_size)
