"""Speech models over frames of features: a 2-D CNN, (Bi)LSTMs, a CNN+BiLSTM (CRNN), a Transformer encoder,
and (Bi)LSTM-CTC recognisers.

Every model takes features (B, T, F) (log-mel or MFCC frames, right-padded) and their lengths (B,) in
frames. An encoder maps them to (B, T', D) and new lengths; a classifier pools its real frames into one
vector and returns logits (B, classes); a CTC recogniser returns per-frame logits (B, T', V) with the
lengths T' (the blank is one of the V classes; the task decides which). Frames at or past an
utterance's length are zeroed on the way in and after every convolution, and pooling reads only real
frames, so in eval mode padding never changes an utterance's output (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers import (
    LSTM,
    Dropout,
    LayerNorm,
    Linear,
    MaxPool2d,
    SinusoidalPositionalEncoding,
    TransformerEncoderLayer,
)
from archzoo.layers.spectral import frame_mask
from archzoo.models.base import check_dropout, check_widths
from archzoo.models.blocks import conv_bn_relu, he_init
from archzoo.models.registry import register_model

POOLING = ("mean", "max", "last")


def mask_frames(x: Tensor, lengths: Tensor) -> Tensor:
    """Zero every frame at or past its utterance's length: x (B, T, ...) -> same shape."""
    mask = frame_mask(lengths, x.shape[1])
    return x * mask.view(*mask.shape, *([1] * (x.dim() - 2))).to(x.dtype)


def mask_time(h: Tensor, lengths: Tensor) -> Tensor:
    """``mask_frames`` for feature maps (B, C, T, F), whose time axis is the third."""
    return h * frame_mask(lengths, h.shape[2])[:, None, :, None].to(h.dtype)


def stack_frames(x: Tensor, lengths: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Concatenate every ``factor`` consecutive frames into one (a stride-``factor`` frame rate, as
    Deep Speech 2's striding and LAS's pyramid): (B, T, F) -> (B, ceil(T / f), f F), lengths ceil(L / f)."""
    if factor == 1:
        return x, lengths
    pad = -x.shape[1] % factor
    x = F.pad(x, (0, 0, 0, pad))
    return x.reshape(x.shape[0], x.shape[1] // factor, factor * x.shape[2]), -torch.div(-lengths, factor,
                                                                                         rounding_mode="floor")


class ConvEncoder(nn.Module):
    """2-D convolutions over (time, frequency): blocks of 3x3 conv, batch norm, ReLU and 2x2 (or 1x2) max pooling.

    Math: per block, h = MaxPool(ReLU(BN(W * mask(h)))), the time axis pooled by ``time_strides[i]``,
        frequency by 2; the output frame t is the channels x remaining bands flattened.
    Reference: Sainath et al. 2015, "Convolutional Neural Networks for Small-footprint Keyword Spotting",
        Interspeech (CNNs on log-mel); Simonyan & Zisserman 2015, arXiv:1409.1556 (3x3 stacks).
    Shapes: x (B, T, F), lengths (B,) -> (B, T / Π strides, channels[-1] · F / 2^blocks), lengths.
    """

    def __init__(self, in_features: int, channels: tuple[int, ...], time_strides: tuple[int, ...]):
        super().__init__()
        if len(channels) != len(time_strides) or any(s not in (1, 2) for s in time_strides):
            raise UserError(f"the CNN needs one time stride (1 or 2) per block, got channels={list(channels)}, "
                            f"time_strides={list(time_strides)}")
        if in_features >> len(channels) < 1:
            raise UserError(f"{len(channels)} blocks halve the {in_features} feature bands to nothing; use fewer blocks")
        self.time_strides = tuple(time_strides)
        self.blocks = nn.ModuleList(conv_bn_relu(c_in, c_out, 3, padding=1)
                                    for c_in, c_out in zip((1, *channels[:-1]), channels, strict=True))
        self.pools = nn.ModuleList(MaxPool2d((s, 2)) for s in time_strides)
        self.out_features = channels[-1] * (in_features >> len(channels))

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h = x.unsqueeze(1)  # (B, 1, T, F)
        for block, pool, stride in zip(self.blocks, self.pools, self.time_strides, strict=True):
            h = mask_time(block(mask_time(h, lengths)), lengths)
            if stride == 2:  # ReLU outputs are >= 0, so a masked (zero) partner never wins the max
                h = F.pad(h, (0, 0, 0, h.shape[2] % 2))
                lengths = -torch.div(-lengths, 2, rounding_mode="floor")
            h = pool(h)
        return h.permute(0, 2, 1, 3).flatten(2), lengths  # (B, C, T', F') -> (B, T', C F')


def reverse_within(x: Tensor, lengths: Tensor) -> Tensor:
    """Each utterance's real frames in reverse order, padding left where it is: (B, T, D) -> (B, T, D).
    Its own inverse."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    index = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return x.gather(1, index[..., None].expand_as(x))


class RecurrentEncoder(nn.Module):
    """Stacked (bi)directional LSTM over the frames (archzoo's LSTM layer, one per layer and direction).

    Math: optional frame stacking by ``subsample``; per layer l, →h = LSTM_l(x) and
        ←h = rev(LSTM'_l(rev(x))), rev reversing each utterance's real frames; x_{l+1} = Dropout([→h ; ←h])
        (dropout between layers, as torch.nn.LSTM). The forward direction reads the real frames before any
        padding and the reversed input puts them first too, so padding never reaches a real frame's output.
    Reference: Graves, Mohamed & Hinton 2013, "Speech Recognition with Deep Recurrent Neural Networks",
        arXiv:1303.5778 (deep bidirectional LSTM for speech); Schuster & Paliwal 1997 (bidirectional RNNs);
        Amodei et al. 2016, "Deep Speech 2", arXiv:1512.02595 (bidirectional layers over strided frames).
    Shapes: x (B, T, F), lengths (B,) -> (B, T / subsample, D · H), lengths / subsample (rounded up).
    Differs from a bidirectional torch.nn.LSTM run on packed sequences: the same function, but each
        direction is its own single-layer module over padded frames. On CPU, torch's backward through
        packed sequences is 10-25x slower than over padded ones (measured here, torch 2.13), and the final
        states, which packing exists to get right, are not needed.
    """

    def __init__(self, in_features: int, hidden_size: int, num_layers: int, bidirectional: bool, dropout: float,
                 subsample: int = 1):
        super().__init__()
        self.subsample, self.hidden_size, self.bidirectional = subsample, hidden_size, bidirectional
        directions = ("forward_lstm", "backward_lstm") if bidirectional else ("forward_lstm",)
        width = hidden_size * len(directions)
        self.layers = nn.ModuleList(nn.ModuleDict({d: LSTM(in_features * subsample if i == 0 else width, hidden_size)
                                                   for d in directions}) for i in range(num_layers))
        self.dropout = Dropout(dropout)
        self.out_features = width

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x, lengths = stack_frames(x, lengths, self.subsample)
        for i, layer in enumerate(self.layers):
            if i:
                x = self.dropout(x)
            out = layer["forward_lstm"](x)[0]
            if self.bidirectional:
                backward = reverse_within(layer["backward_lstm"](reverse_within(x, lengths))[0], lengths)
                out = torch.cat([out, backward], 2)
            x = mask_frames(out, lengths)
        return x, lengths


class TransformerSpeechEncoder(nn.Module):
    """Frames projected to the model width, sinusoidal positions, pre-LN Transformer encoder layers masking
    padded frames, and a final LayerNorm.

    Math: h_0 = W stack(x) + PE; h_l = EncoderLayer(h_{l-1}) with keys restricted to real frames.
    Reference: Vaswani et al. 2017, arXiv:1706.03762; for speech, Dong, Xu & Xu 2018, "Speech-Transformer",
        ICASSP, and Gulati et al. 2020 (Conformer), arXiv:2005.08100, for pre-LN encoders on frames.
    Shapes: x (B, T, F), lengths (B,) -> (B, T / subsample, d_model), lengths.
    """

    def __init__(self, in_features: int, d_model: int, num_heads: int, num_layers: int, dim_feedforward: int,
                 dropout: float, subsample: int = 1):
        super().__init__()
        self.subsample = subsample
        self.input = Linear(in_features * subsample, d_model)
        self.positions = SinusoidalPositionalEncoding(d_model)
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout,
                                                            activation="gelu", norm_first=True)
                                    for _ in range(num_layers))
        self.norm = LayerNorm(d_model)
        self.out_features = d_model

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x, lengths = stack_frames(x, lengths, self.subsample)
        key_mask = frame_mask(lengths, x.shape[1])
        h = self.dropout(self.positions(self.input(x)))
        for layer in self.layers:
            h = layer(h, key_mask=key_mask)
        return mask_frames(self.norm(h), lengths), lengths


class SpeechModel(nn.Module):
    """Encoders run in order over (features, lengths); subclasses add the head."""

    def __init__(self, name: str, in_features: int, num_classes: int, encoders: list[nn.Module]):
        super().__init__()
        if in_features < 1 or num_classes < 2:
            raise UserError(f"{name} needs in_features >= 1 and num_classes >= 2, got {in_features}, {num_classes}")
        self.name, self.in_features, self.num_classes = name, in_features, num_classes
        self.encoders = nn.ModuleList(encoders)
        he_init(self)

    def encode(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T', D) encoder output with real frames only (the rest zero) and lengths T' (B,)."""
        if features.dim() != 3 or features.shape[2] != self.in_features:
            raise UserError(f"{self.name} takes feature frames (B, T, {self.in_features}), got {tuple(features.shape)}")
        if lengths.shape != (features.shape[0],) or lengths.is_floating_point() or \
                int(lengths.min()) < 1 or int(lengths.max()) > features.shape[1]:
            raise UserError(f"{self.name} takes one length per utterance in [1, T={features.shape[1]}], "
                            f"got {lengths.tolist() if lengths.numel() < 9 else tuple(lengths.shape)}")
        h = mask_frames(features, lengths)
        for encoder in self.encoders:
            h, lengths = encoder(h, lengths)
        return h, lengths

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        """Random frames (B, 24, F) whose lengths run from 24 down (each at least 1); padding is zero."""
        lengths = torch.tensor([max(1, 24 - 7 * b) for b in range(batch_size)])
        return mask_frames(torch.randn(batch_size, 24, self.in_features), lengths), lengths


class SpeechClassifier(SpeechModel):
    """An utterance classifier: encoders, pooling over the real frames, dropout, a linear layer.

    Math: v = mean_t h_t, max_t h_t (real frames only), or "last": [→h_{L-1} ; ←h_0] of a recurrent top;
        logits = W Dropout(v) + b.
    Shapes: features (B, T, F), lengths (B,) -> logits (B, num_classes).
    """

    def __init__(self, name: str, in_features: int, num_classes: int, encoders: list[nn.Module], pooling: str,
                 dropout: float):
        check_dropout(name, dropout)
        if pooling not in POOLING:
            raise UserError(f"{name}: pooling must be one of {', '.join(POOLING)}, got {pooling!r}")
        super().__init__(name, in_features, num_classes, encoders)
        top = encoders[-1]
        if pooling == "last" and not isinstance(top, RecurrentEncoder):
            raise UserError(f"{name}: pooling 'last' needs a recurrent top layer; use 'mean' or 'max'")
        self.pooling = pooling
        self.dropout = Dropout(dropout)
        self.output = Linear(top.out_features, num_classes)

    def forward(self, features: Tensor, lengths: Tensor) -> Tensor:
        h, lengths = self.encode(features, lengths)
        real = frame_mask(lengths, h.shape[1])[..., None]
        if self.pooling == "mean":
            pooled = h.sum(1) / lengths[:, None].to(h.dtype)
        elif self.pooling == "max":
            pooled = h.masked_fill(~real, float("-inf")).amax(1)
        else:
            last = h[torch.arange(len(h), device=h.device), lengths - 1]  # (B, D·H)
            top = self.encoders[-1]
            pooled = torch.cat([last[:, :top.hidden_size], h[:, 0, top.hidden_size:]], 1) if top.bidirectional else last
        return self.output(self.dropout(pooled))


class CTCRecognizer(SpeechModel):
    """Per-frame class scores for connectionist temporal classification: encoders, dropout, a linear layer.

    Math: y_t = W Dropout(h_t) + b over V = labels + 1 (blank); the task takes log-softmax and the CTC loss.
    Reference: Graves, Fernández, Gomez & Schmidhuber 2006, "Connectionist Temporal Classification:
        Labelling Unsegmented Sequence Data with Recurrent Neural Networks", ICML (BLSTM-CTC).
    Shapes: features (B, T, F), lengths (B,) -> (logits (B, T', V), lengths T' (B,)).
    """

    def __init__(self, name: str, in_features: int, num_classes: int, encoders: list[nn.Module], dropout: float):
        check_dropout(name, dropout)
        super().__init__(name, in_features, num_classes, encoders)
        self.dropout = Dropout(dropout)
        self.output = Linear(encoders[-1].out_features, num_classes)

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h, lengths = self.encode(features, lengths)
        return mask_frames(self.output(self.dropout(h)), lengths), lengths


def _check(name: str, sizes: tuple[int, ...], dropout: float) -> None:
    check_widths(name, "layer sizes, counts and subsample", sizes)
    check_dropout(name, dropout)


def _recurrent(name: str, in_features: int, num_classes: int, hidden_size: int, num_layers: int, bidirectional: bool,
               dropout: float, subsample: int, pooling: str) -> SpeechClassifier:
    _check(name, (hidden_size, num_layers, subsample), dropout)
    encoder = RecurrentEncoder(in_features, hidden_size, num_layers, bidirectional, dropout, subsample)
    return SpeechClassifier(name, in_features, num_classes, [encoder], pooling, dropout)


@register_model("speech_cnn")
def speech_cnn(in_features: int = 40, num_classes: int = 10, channels: tuple[int, ...] = (32, 64, 128),
               time_strides: tuple[int, ...] = (2, 2, 2), dropout: float = 0.3, pooling: str = "max") -> SpeechClassifier:
    """A small 2-D CNN on log-mel frames: 3x3 conv + BN + ReLU + 2x2 max-pool blocks, pooled over time."""
    _check("speech_cnn", channels, dropout)
    return SpeechClassifier("speech_cnn", in_features, num_classes, [ConvEncoder(in_features, channels, time_strides)],
                            pooling, dropout)


@register_model("speech_lstm")
def speech_lstm(in_features: int = 40, num_classes: int = 10, hidden_size: int = 128, num_layers: int = 2,
                dropout: float = 0.3, subsample: int = 1, pooling: str = "max") -> SpeechClassifier:
    """A unidirectional 2-layer LSTM on frames, pooled over time (the baseline for speech_bilstm)."""
    return _recurrent("speech_lstm", in_features, num_classes, hidden_size, num_layers, False, dropout, subsample, pooling)


@register_model("speech_bilstm")
def speech_bilstm(in_features: int = 40, num_classes: int = 10, hidden_size: int = 128, num_layers: int = 2,
                  dropout: float = 0.3, subsample: int = 1, pooling: str = "max") -> SpeechClassifier:
    """A bidirectional 2-layer LSTM on frames, pooled over time (Graves et al. 2013)."""
    return _recurrent("speech_bilstm", in_features, num_classes, hidden_size, num_layers, True, dropout, subsample, pooling)


@register_model("speech_crnn")
def speech_crnn(in_features: int = 40, num_classes: int = 10, channels: tuple[int, ...] = (32, 64),
                time_strides: tuple[int, ...] = (2, 1), hidden_size: int = 128, num_layers: int = 2,
                dropout: float = 0.3, pooling: str = "max") -> SpeechClassifier:
    """CNN + BiLSTM (CRNN): conv blocks over (time, frequency), then a bidirectional LSTM over their frames."""
    _check("speech_crnn", (*channels, hidden_size, num_layers), dropout)
    conv = ConvEncoder(in_features, channels, time_strides)
    rnn = RecurrentEncoder(conv.out_features, hidden_size, num_layers, True, dropout)
    return SpeechClassifier("speech_crnn", in_features, num_classes, [conv, rnn], pooling, dropout)


@register_model("speech_transformer")
def speech_transformer(in_features: int = 40, num_classes: int = 10, d_model: int = 128, num_heads: int = 4,
                       num_layers: int = 4, dim_feedforward: int = 256, dropout: float = 0.1, subsample: int = 2,
                       pooling: str = "mean") -> SpeechClassifier:
    """A pre-LN Transformer encoder over stacked frames with sinusoidal positions, mean-pooled."""
    _check("speech_transformer", (d_model, num_heads, num_layers, dim_feedforward, subsample), dropout)
    encoder = TransformerSpeechEncoder(in_features, d_model, num_heads, num_layers, dim_feedforward, dropout, subsample)
    return SpeechClassifier("speech_transformer", in_features, num_classes, [encoder], pooling, dropout)


def _ctc(name: str, in_features: int, num_classes: int, hidden_size: int, num_layers: int, bidirectional: bool,
         dropout: float, subsample: int) -> CTCRecognizer:
    _check(name, (hidden_size, num_layers, subsample), dropout)
    encoder = RecurrentEncoder(in_features, hidden_size, num_layers, bidirectional, dropout, subsample)
    return CTCRecognizer(name, in_features, num_classes, [encoder], dropout)


@register_model("ctc_bilstm")
def ctc_bilstm(in_features: int = 40, num_classes: int = 11, hidden_size: int = 128, num_layers: int = 3,
               dropout: float = 0.2, subsample: int = 3) -> CTCRecognizer:
    """BiLSTM-CTC (Graves et al. 2006): stacked bidirectional LSTM over frames stacked in threes, per-frame scores."""
    return _ctc("ctc_bilstm", in_features, num_classes, hidden_size, num_layers, True, dropout, subsample)


@register_model("ctc_lstm")
def ctc_lstm(in_features: int = 40, num_classes: int = 11, hidden_size: int = 128, num_layers: int = 3,
             dropout: float = 0.2, subsample: int = 3) -> CTCRecognizer:
    """Unidirectional LSTM-CTC: ctc_bilstm's baseline, each frame's score sees only the past."""
    return _ctc("ctc_lstm", in_features, num_classes, hidden_size, num_layers, False, dropout, subsample)
