"""Building blocks: each family pairs pure reference functions with a fused path under one parameter set.

``impl`` picks the path per call (see ``archzoo.layers.impl``); parameters are named like ``torch.nn``.
"""

from archzoo.layers.impl import IMPLS, ImplSwitch, check_impl, current_impl, resolve_impl, use_impl
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

__all__ = [
    "GRU", "IMPLS", "LSTM", "RNN", "ImplSwitch", "check_impl", "current_impl", "gru_cell", "lstm_cell",
    "recurrent_fused", "recurrent_reference", "resolve_impl", "rnn_relu_cell", "rnn_tanh_cell", "use_impl",
]
