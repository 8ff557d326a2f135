"""Building blocks: each family pairs pure reference functions with a fused path under one parameter set.

``impl`` picks the path per call (see ``archzoo.layers.impl``); parameters are named like ``torch.nn``.
"""

from archzoo.layers.activation import gelu_reference, relu_reference
from archzoo.layers.attention import (
    AdditiveAttention,
    MultiheadAttention,
    additive_attention_reference,
    scaled_dot_product_attention_fused,
    scaled_dot_product_attention_reference,
)
from archzoo.layers.conv import (
    Conv2d,
    ConvTranspose2d,
    conv2d_fused,
    conv2d_reference,
    conv_transpose2d_fused,
    conv_transpose2d_reference,
)
from archzoo.layers.dropout import Dropout, dropout_reference
from archzoo.layers.impl import IMPLS, ImplSwitch, check_impl, current_impl, resolve_impl, set_impl, use_impl
from archzoo.layers.linear import Linear, linear_reference
from archzoo.layers.masks import attention_mask, causal_mask, padding_mask, to_torch_mask
from archzoo.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm, batch_norm_reference, layer_norm_reference
from archzoo.layers.pooling import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    MaxPool2d,
    adaptive_avg_pool2d_reference,
    avg_pool2d_reference,
    max_pool2d_reference,
)
from archzoo.layers.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    rotary_fused,
    rotary_reference,
    sinusoidal_fused,
    sinusoidal_reference,
)
from archzoo.layers.recurrent import (
    GRU,
    LSTM,
    RNN,
    gru_cell,
    lstm_cell,
    recurrent_fused,
    recurrent_reference,
    rnn_relu_cell,
    rnn_tanh_cell,
)
from archzoo.layers.transformer import TransformerDecoderLayer, TransformerEncoderLayer
from archzoo.layers.twin import torch_nn_twin

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "ConvTranspose2d", "Dropout", "Linear",
    "MaxPool2d", "conv_transpose2d_fused", "conv_transpose2d_reference",
    "adaptive_avg_pool2d_reference", "avg_pool2d_reference", "batch_norm_reference", "conv2d_fused",
    "conv2d_reference", "dropout_reference", "linear_reference", "max_pool2d_reference", "torch_nn_twin",
    "GRU", "IMPLS", "LSTM", "RNN", "ImplSwitch", "check_impl", "current_impl", "gru_cell", "lstm_cell",
    "recurrent_fused", "recurrent_reference", "resolve_impl", "rnn_relu_cell", "rnn_tanh_cell", "use_impl",
    "AdditiveAttention", "LayerNorm", "LearnedPositionalEmbedding", "MultiheadAttention", "RotaryEmbedding",
    "SinusoidalPositionalEncoding", "TransformerDecoderLayer", "TransformerEncoderLayer", "additive_attention_reference",
    "attention_mask", "causal_mask", "gelu_reference", "layer_norm_reference", "padding_mask", "relu_reference",
    "rotary_fused", "rotary_reference", "scaled_dot_product_attention_fused", "scaled_dot_product_attention_reference",
    "set_impl", "sinusoidal_fused", "sinusoidal_reference", "to_torch_mask",
]
