"""Hopfield networks: the classic binary associative memory (Hebbian and Storkey learning, asynchronous and
synchronous updates, energy) and the modern continuous one, whose update is attention.

The classic network holds ±1 units s and symmetric weights W with a zero diagonal; a stored pattern is a
state the dynamics keep. The modern update ξ ← X softmax(β Xᵀ ξ) is written twice: from its formula
(``modern_hopfield_update_reference``) and as archzoo's scaled dot-product attention with the state as the
query and the stored patterns as keys and values (``modern_hopfield_update_fused``); the tests prove the
two equal. Patterns are rows: X (P, N); states are rows too, s (B, N).

Shapes: B states, P stored patterns, N units.
"""

from __future__ import annotations

import torch
from torch import Tensor

from archzoo.layers.attention import scaled_dot_product_attention_fused


def hebbian_weights(patterns: Tensor) -> Tensor:
    """Hebb's rule: the sum of the patterns' outer products, without self-connections.

    Math: W = (1/N) Σ_μ ξ^μ ξ^μᵀ, w_ii = 0.
    Reference: Hopfield 1982, "Neural networks and physical systems with emergent collective computational
        abilities", PNAS 79(8):2554-2558, eq. (2) (with V = (s + 1)/2; the ±1 form as in Amit, Gutfreund &
        Sompolinsky 1985, Phys. Rev. Lett. 55:1530).
    Shapes: patterns (P, N) of ±1 -> W (N, N).
    """
    n = patterns.shape[1]
    weights = patterns.T @ patterns / n
    return weights.fill_diagonal_(0.0)


def storkey_weights(patterns: Tensor) -> Tensor:
    """Storkey's incremental learning rule: Hebbian, minus each unit pair's existing local field.

    Math: for each pattern ξ in turn, with h_ij = Σ_{k ≠ i, j} w_ik ξ_k (the field at i without j),
        w_ij ← w_ij + (1/N) (ξ_i ξ_j - ξ_i h_ji - h_ij ξ_j); w_ii = 0.
    Reference: Storkey 1997, "Increasing the capacity of a Hopfield network without sacrificing
        functionality", ICANN, LNCS 1327:451-456 (the rule of Storkey & Valabregue 1999, Neural Networks 12).
    Shapes: patterns (P, N) of ±1 -> W (N, N).
    """
    n = patterns.shape[1]
    weights = torch.zeros(n, n, dtype=patterns.dtype, device=patterns.device)
    for xi in patterns:
        field = weights @ xi  # h_i = Σ_k w_ik ξ_k (w_ii = 0, so k = i adds nothing)
        h = field[:, None] - weights * xi[None, :]  # h_ij = h_i - w_ij ξ_j
        weights = weights + (torch.outer(xi, xi) - xi[:, None] * h.T - h * xi[None, :]) / n
        weights.fill_diagonal_(0.0)
    return weights


def hopfield_energy(weights: Tensor, states: Tensor, bias: Tensor | None = None) -> Tensor:
    """The network's energy (a Lyapunov function of asynchronous dynamics with symmetric W, w_ii >= 0).

    Math: E(s) = -½ sᵀ W s - bᵀ s.
    Reference: Hopfield 1982, eq. (7).
    Shapes: weights (N, N), states (B, N), bias (N,) -> (B,).
    """
    energy = -0.5 * ((states @ weights) * states).sum(1)
    return energy if bias is None else energy - states @ bias


def _threshold(field: Tensor, current: Tensor) -> Tensor:
    """sign(field), a unit whose field is exactly 0 keeping its state (so E never rises)."""
    return torch.where(field > 0, 1.0, torch.where(field < 0, -1.0, current)).to(current.dtype)


def asynchronous_sweep(weights: Tensor, states: Tensor, order: Tensor, bias: Tensor | None = None) -> Tensor:
    """One sweep of asynchronous updates: every unit in ``order``, one at a time, sees the others' current states.

    Math: for i in order: s_i ← sign(Σ_j w_ij s_j + b_i) (a zero field keeps s_i). With W symmetric and
        w_ii = 0, each flip changes E by -2 |h_i| <= 0: the energy never rises.
    Reference: Hopfield 1982 (asynchronous, random-order updates).
    Shapes: weights (N, N), states (B, N), order (N,) a permutation -> (B, N); every state of the batch
        updates its units in the same order.
    """
    s = states.clone()
    for i in order.tolist():
        field = (s @ weights[:, i:i + 1])[:, 0]  # a (B, N) x (N, 1) matmul, which FLOP counters see
        if bias is not None:
            field = field + bias[i]
        s[:, i] = _threshold(field, s[:, i])
    return s


def synchronous_update(weights: Tensor, states: Tensor, bias: Tensor | None = None) -> Tensor:
    """Every unit at once from the previous state (Little 1974's dynamics): s ← sign(W s + b).

    Unlike asynchronous updates it can fall into 2-cycles, where E need not decrease.
    Reference: Little 1974, "The existence of persistent states in the brain", Math. Biosci. 19:101-120.
    Shapes: weights (N, N), states (B, N), bias (N,) -> (B, N).
    """
    field = states @ weights.T
    return _threshold(field if bias is None else field + bias, states)


def modern_hopfield_update_reference(states: Tensor, patterns: Tensor, beta: float) -> Tensor:
    """One update of the modern (continuous) Hopfield network, from its formula.

    Math: ξ_new = X softmax(β Xᵀ ξ), X = [x_1 .. x_P] the stored patterns as columns.
    Reference: Ramsauer et al. 2020, "Hopfield Networks is All You Need", arXiv:2008.02217, eq. (3).
    Shapes: states (B, N) (each a ξ), patterns (P, N) (rows are x_μ) -> (B, N).
    """
    return torch.softmax(beta * states @ patterns.T, dim=-1) @ patterns


def modern_hopfield_energy(states: Tensor, patterns: Tensor, beta: float) -> Tensor:
    """The energy of each state of the modern Hopfield network, which its update never raises.

    Math: E(ξ) = -lse(β, Xᵀξ) + ½ ξᵀξ + β⁻¹ log P + ½ M², with lse(β, z) = β⁻¹ log Σ_μ exp(β z_μ) and
        M = max_μ ‖x_μ‖; the update ξ ← X softmax(β Xᵀ ξ) is a concave-convex procedure step on E, so
        E(ξ_{t+1}) <= E(ξ_t) (Theorem 1).
    Reference: Ramsauer et al. 2020, "Hopfield Networks is All You Need", arXiv:2008.02217, eq. (2).
    Shapes: states (B, N), patterns (P, N) -> (B,).
    """
    count = patterns.shape[0]
    lse = torch.logsumexp(beta * states @ patterns.T, dim=-1) / beta
    radius = patterns.norm(dim=1).max()
    return -lse + 0.5 * (states * states).sum(-1) + torch.log(torch.tensor(float(count))) / beta + 0.5 * radius**2


def modern_hopfield_update_fused(states: Tensor, patterns: Tensor, beta: float) -> Tensor:
    """``modern_hopfield_update_reference`` as attention: query ξ, keys = values = the stored patterns, and
    the softmax scale β in place of 1/√d_k (Ramsauer et al. 2020, Sec. 3, "the new update rule is the
    attention mechanism of transformers"). Shapes as the reference."""
    out = scaled_dot_product_attention_fused(states[:, None, :], patterns[None], patterns[None], scale=beta)
    return out[:, 0]
