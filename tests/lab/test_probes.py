"""The gradient-norm probe (lab/probes.py) equals backpropagation through time written out by hand:
∂L/∂h_t = ∂L/∂y_t + J_{t+1}ᵀ ∂L/∂h_{t+1}, with each step's Jacobian J from autograd on one cell."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from archzoo.errors import UserError
from archzoo.lab.probes import hidden_state_gradients
from archzoo.layers import GRU, LSTM, RNN
from archzoo.layers.recurrent import CELLS


def manual_bptt(layer, x: torch.Tensor, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖∂L/∂h_t‖ for one sequence, L = (w · h_{T-1} - target)^2, by the chain rule over explicit Jacobians
    of the state map s_t -> s_{t+1} (s = h, or (h, c) for the LSTM)."""
    cell, weights = CELLS[layer.mode], layer.layer_weights()[0]
    hidden = layer.hidden_size
    lstm = layer.mode == "lstm"
    states = [torch.zeros(2 * hidden if lstm else hidden, dtype=torch.float64)]

    def step(t: int, s: torch.Tensor) -> torch.Tensor:
        if lstm:
            h, c = cell(x[t:t + 1], (s[None, :hidden], s[None, hidden:]), *weights)
            return torch.cat([h, c], 1)[0]
        return cell(x[t:t + 1], s[None], *weights)[0]

    for t in range(len(x)):
        states.append(step(t, states[-1]).detach())
    h_last = states[-1][:hidden]
    delta = torch.zeros_like(states[-1])
    delta[:hidden] = 2 * (head @ h_last - target) * head  # ∂L/∂h_{T-1} (∂L/∂c_{T-1} = 0)
    norms = [delta[:hidden].norm()]
    for t in range(len(x) - 1, 0, -1):
        J = jacobian(lambda s, t=t: step(t, s), states[t])  # ∂s_t/∂s_{t-1} (index shifted by the zero state)
        delta = J.T @ delta
        norms.append(delta[:hidden].norm())
    return torch.stack(norms[::-1])


@pytest.mark.parametrize("layer_cls", [RNN, LSTM, GRU])
def test_probe_equals_hand_written_bptt(layer_cls) -> None:
    torch.manual_seed(0)
    layer = layer_cls(3, 4).double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    head = torch.randn(4, dtype=torch.float64)
    target = torch.randn(2, dtype=torch.float64)
    probe = hidden_state_gradients(layer, x, lambda out: ((out[:, -1] @ head - target) ** 2).sum())
    for b in range(2):
        torch.testing.assert_close(probe["h"][b], manual_bptt(layer, x[b], head, target[b]), rtol=1e-10, atol=1e-12)
    # the probe's outputs are the layer's own (fused) outputs
    torch.testing.assert_close(probe["outputs"], layer(x)[0].detach(), rtol=1e-10, atol=1e-12)
    assert ("c" in probe) == (layer_cls is LSTM)


def test_probe_refuses_stacked_or_bidirectional_layers() -> None:
    with pytest.raises(UserError, match="one-layer"):
        hidden_state_gradients(LSTM(3, 4, num_layers=2), torch.randn(1, 5, 3), lambda out: out.sum())
