"""Building blocks: each family pairs pure reference functions with a fused path under one parameter set.

``impl`` picks the path per call (see ``archzoo.layers.impl``); parameters are named like ``torch.nn``.
"""

from archzoo.layers.conv import Conv2d, conv2d_fused, conv2d_reference
from archzoo.layers.dropout import Dropout, dropout_reference
from archzoo.layers.impl import IMPLS, ImplSwitch, check_impl, current_impl, resolve_impl, use_impl
from archzoo.layers.linear import Linear, linear_reference
from archzoo.layers.norm import BatchNorm1d, BatchNorm2d, batch_norm_reference
from archzoo.layers.pooling import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    MaxPool2d,
    adaptive_avg_pool2d_reference,
    avg_pool2d_reference,
    max_pool2d_reference,
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
from archzoo.layers.twin import torch_nn_twin

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "Dropout", "Linear", "MaxPool2d",
    "adaptive_avg_pool2d_reference", "avg_pool2d_reference", "batch_norm_reference", "conv2d_fused",
    "conv2d_reference", "dropout_reference", "linear_reference", "max_pool2d_reference", "torch_nn_twin",
    "GRU", "IMPLS", "LSTM", "RNN", "ImplSwitch", "check_impl", "current_impl", "gru_cell", "lstm_cell",
    "recurrent_fused", "recurrent_reference", "resolve_impl", "rnn_relu_cell", "rnn_tanh_cell", "use_impl",
]
