"""Measurement probes: the gradient of a loss with respect to every hidden state of a recurrent layer."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from archzoo.errors import UserError
from archzoo.layers.recurrent import CELLS, GRU, LSTM, RNN


def hidden_state_gradients(layer: RNN | LSTM | GRU, inputs: Tensor, loss_fn: Callable[[Tensor], Tensor]
                           ) -> dict[str, Tensor]:
    """Per-example norms of ∂L/∂h_t at every step t of a one-layer, one-direction recurrent layer.

    The layer runs step by step on its reference cells from a zero state, so every hidden state
    h_t is a node of the graph; ``loss_fn`` maps the outputs (B, T, H) to a scalar L, and autograd
    returns the *total* derivative of L with respect to each h_t — through the output at t and
    through every later step, as backpropagation through time sums them.

    Math: ∂L/∂h_t = ∂L/∂y_t + (∂h_{t+1}/∂h_t)ᵀ ∂L/∂h_{t+1}; with the loss on the last step only, the
        norm at distance k = T-1-t is ‖J_{T-1}ᵀ ... J_{t+1}ᵀ ∂L/∂h_{T-1}‖, a product of k Jacobians
        that shrinks (vanishes) or grows (explodes) geometrically when their norms stay below or above 1.
    Reference: Bengio, Simard & Frasconi 1994, "Learning long-term dependencies with gradient descent
        is difficult", IEEE Trans. Neural Networks 5(2); Pascanu, Mikolov & Bengio 2013,
        arXiv:1211.5063, Sec. 2, eqs. (3)-(5).
    Shapes: inputs (B, T, I) -> {"h": (B, T)} norms of ∂L/∂h_t per example (L summed over the batch,
        so examples do not mix), plus {"c": (B, T)} for the LSTM's cell state; and the outputs (B, T, H).
    """
    if layer.num_layers != 1 or layer.bidirectional:
        raise UserError("the gradient probe reads one-layer, one-direction recurrent layers; got "
                        f"num_layers={layer.num_layers}, bidirectional={layer.bidirectional}")
    x = inputs if layer.batch_first else inputs.transpose(0, 1)
    cell, weights = CELLS[layer.mode], layer.layer_weights()[0]
    zeros = x.new_zeros(x.shape[0], layer.hidden_size)
    h, c = zeros, zeros
    hidden, cells = [], []
    for t in range(x.shape[1]):
        if layer.mode == "lstm":
            h, c = cell(x[:, t], (h, c), *weights)
            cells.append(c)
        else:
            h = cell(x[:, t], h, *weights)
        hidden.append(h)
    outputs = torch.stack(hidden, dim=1)
    grads = torch.autograd.grad(loss_fn(outputs), hidden + cells, allow_unused=True)
    norm = lambda gs: torch.stack([g.norm(dim=1) if g is not None else zeros[:, 0] for g in gs], dim=1)
    result = {"h": norm(grads[:len(hidden)]), "outputs": outputs.detach()}
    if cells:
        result["c"] = norm(grads[len(hidden):])
    return result
