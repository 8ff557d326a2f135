"""Recurrent character-level language models: embedding, stacked RNN / LSTM / GRU, linear readout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.errors import UserError
from archzoo.layers.impl import ImplSwitch
from archzoo.layers.recurrent import GRU, LSTM, RNN, init_orthogonal_recurrent_
from archzoo.models.base import BATCH, ExportGraph
from archzoo.models.registry import register_model

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
# one step of one layer as PyTorch's cell kernels (same gate order and parameters as the layers)
CELL_OPS = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn_tanh": torch.rnn_tanh_cell,
            "rnn_relu": torch.rnn_relu_cell}


class RecurrentLM(nn.Module):
    """Next-character model p(x_{t+1} | x_{<=t}) read off a recurrent state.

    Math: e_t = E[x_t]; h_t = cell(dropout(e_t), h_{t-1}) through ``num_layers`` layers (dropout
        between layers); logits_t = W dropout(h_t) + b.
    Reference: Karpathy 2015 (char-rnn); Graves 2013, "Generating Sequences With Recurrent Neural
        Networks", arXiv:1308.0850, Sec. 2 (character-level prediction with stacked LSTMs).
    Shapes: x (B, T) ids -> logits (B, T, V); state is the layer's (h_n) or (h_n, c_n), each
        (num_layers, B, hidden_size), and is returned so generation and evaluation carry it.
    """

    def __init__(self, cell: str, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int,
                 dropout: float, tie_weights: bool, nonlinearity: str = "tanh", recurrent_init: str = "uniform"):
        super().__init__()
        if vocab_size < 2 or embedding_dim < 1 or hidden_size < 1 or num_layers < 1:
            raise UserError(f"{cell}_lm needs vocab_size >= 2 and embedding_dim, hidden_size, num_layers >= 1")
        if not 0 <= dropout < 1:
            raise UserError(f"{cell}_lm dropout must be in [0, 1), got {dropout}")
        if recurrent_init not in ("uniform", "orthogonal"):
            raise UserError(f"{cell}_lm recurrent_init must be 'uniform' or 'orthogonal', got {recurrent_init!r}")
        if tie_weights and embedding_dim != hidden_size:
            raise UserError(f"tie_weights needs embedding_dim == hidden_size, got {embedding_dim} and {hidden_size}")
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = CELLS[cell](embedding_dim, hidden_size, num_layers, dropout=dropout, batch_first=True, **extra)
        if recurrent_init == "orthogonal":
            init_orthogonal_recurrent_(self.rnn)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)
        if tie_weights:  # Press & Wolf 2017, arXiv:1608.05859
            self.head.weight = self.embedding.weight

    def forward(self, x: torch.Tensor, state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        if x.dim() != 2:
            raise UserError(f"a language model takes ids of shape (B, T), got {tuple(x.shape)}")
        out, state = self.rnn(self.dropout(self.embedding(x)), state)
        return self.head(self.dropout(out)), state

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor]:
        return (torch.randint(0, self.vocab_size, (batch_size, 8)),)

    def incremental_decoder(self) -> RecurrentDecoder | None:
        """A token-by-token decoder on the cell kernels computing what ``forward`` with a state computes
        (to float32 rounding), or None where it does not apply (training mode, or a layer set to the
        reference path): the sampler then uses ``forward``."""
        if self.training or any(m.resolved_impl() != "fused" for m in self.modules() if isinstance(m, ImplSwitch)):
            return None
        return RecurrentDecoder(self)

    def export_graphs(self) -> list[ExportGraph]:
        """One step with the state as inputs and outputs, so generation runs outside torch (the prompt is
        read one character at a time too): ids (B, 1) and h (L, B, H) [and c (L, B, H) for an LSTM] ->
        logits (B, 1, V) and the new state. (``torch.export`` unrolls the recurrence over time, so the
        step length is fixed.)"""
        layers, hidden = self.rnn.num_layers, self.rnn.hidden_size
        names = ["h", "c"] if isinstance(self.rnn, LSTM) else ["h"]
        state = tuple(torch.zeros(layers, 2, hidden) for _ in names)
        dynamic = {"ids": {0: BATCH}, **{n: {1: BATCH} for n in names}}
        ids = torch.randint(0, self.vocab_size, (2, 1))
        return [ExportGraph(StatefulStep(self, len(names)), (ids, *state), ["ids", *names],
                            ["logits", *(n + "_out" for n in names)], dynamic)]


class RecurrentDecoder:
    """Generation state of a ``RecurrentLM`` in eval mode: one step is the embedding lookup, one fused
    cell kernel per layer (``torch.lstm_cell`` / ``gru_cell`` / ``rnn_*_cell``) and the readout.

    ``forward`` runs the whole-sequence kernel, which on CPU is oneDNN's RNN primitive: at batch 1 and
    one step it costs about 3.5x the cell kernels (it prepares the weights on every call), so a step
    here computes the same equations with different kernels: logits agree to float32 rounding
    (tests allow 1e-5), not bit for bit, and the sampled tokens agree unless two candidates tie to
    that precision (tests/tasks/test_sampling.py checks both).
    Shapes: ``prefill`` ids (B, P) -> logits (B, V); ``step`` ids (B,) -> logits (B, V).
    """

    def __init__(self, model: RecurrentLM):
        self.model, rnn = model, model.rnn
        self.cell = CELL_OPS[rnn.mode]
        self.layers = rnn.layer_weights()
        self.h: list[torch.Tensor] = []
        self.c: list[torch.Tensor] = []

    def prefill(self, ids: torch.Tensor) -> torch.Tensor:
        logits, state = self.model(ids)
        h, c = state if isinstance(state, tuple) else (state, None)
        self.h, self.c = list(h.unbind(0)), ([] if c is None else list(c.unbind(0)))
        return logits[:, -1]

    def step(self, token: torch.Tensor) -> torch.Tensor:
        x = F.embedding(token, self.model.embedding.weight)  # (B, E)
        for i, weights in enumerate(self.layers):
            if self.c:
                self.h[i], self.c[i] = self.cell(x, (self.h[i], self.c[i]), *weights)
            else:
                self.h[i] = self.cell(x, self.h[i], *weights)
            x = self.h[i]
        head = self.model.head
        return F.linear(x, head.weight, head.bias)


class StatefulStep(nn.Module):
    """``model(ids, state)`` with the state spelled out as tensors, in and out (for export)."""

    def __init__(self, model: nn.Module, state_tensors: int):
        super().__init__()
        self.model, self.state_tensors = model, state_tensors

    def forward(self, ids: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, new_state = self.model(ids, state if self.state_tensors > 1 else state[0])
        return (logits, *(new_state if self.state_tensors > 1 else (new_state,)))


@register_model("rnn_lm")
def rnn_lm(vocab_size: int = 65, embedding_dim: int = 64, hidden_size: int = 512, num_layers: int = 2,
           dropout: float = 0.1, tie_weights: bool = False, nonlinearity: str = "tanh",
           recurrent_init: str = "uniform") -> RecurrentLM:
    """Elman network, h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (Elman 1990); ``recurrent_init =
    "orthogonal"`` makes every W_hh orthogonal (Saxe et al. 2014, arXiv:1312.6120)."""
    return RecurrentLM("rnn", vocab_size, embedding_dim, hidden_size, num_layers, dropout, tie_weights, nonlinearity,
                       recurrent_init)


@register_model("lstm_lm")
def lstm_lm(vocab_size: int = 65, embedding_dim: int = 64, hidden_size: int = 512, num_layers: int = 2,
            dropout: float = 0.1, tie_weights: bool = False) -> RecurrentLM:
    """LSTM (Hochreiter & Schmidhuber 1997; forget gate of Gers et al. 2000)."""
    return RecurrentLM("lstm", vocab_size, embedding_dim, hidden_size, num_layers, dropout, tie_weights)


@register_model("gru_lm")
def gru_lm(vocab_size: int = 65, embedding_dim: int = 64, hidden_size: int = 512, num_layers: int = 2,
           dropout: float = 0.1, tie_weights: bool = False) -> RecurrentLM:
    """GRU (Cho et al. 2014, arXiv:1406.1078)."""
    return RecurrentLM("gru", vocab_size, embedding_dim, hidden_size, num_layers, dropout, tie_weights)
