"""Hopfield networks (layers/hopfield.py, models/hopfield.py): energy descent, fixed points, 2-cycles of
synchronous updates, Storkey's rule, the modern update equal to archzoo's attention, and beta's effect."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archzoo.errors import UserError
from archzoo.layers.attention import scaled_dot_product_attention_reference
from archzoo.layers.hopfield import (
    asynchronous_sweep,
    hebbian_weights,
    hopfield_energy,
    modern_hopfield_update_fused,
    modern_hopfield_update_reference,
    storkey_weights,
    synchronous_update,
)
from archzoo.models import create_model


def signs(*shape: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator).double() * 2 - 1


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(2, 24), with_bias=st.booleans())
def test_energy_never_increases_under_asynchronous_updates(seed: int, size: int, with_bias: bool) -> None:
    """Any symmetric W with a zero diagonal (not only learned ones), any start: every single-unit update
    lowers E or leaves it, so E is non-increasing along the whole trajectory."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(size, size, generator=g, dtype=torch.float64)
    weights = (raw + raw.T).fill_diagonal_(0.0)
    bias = torch.randn(size, generator=g, dtype=torch.float64) if with_bias else None
    state = signs(3, size, generator=g)
    energy = hopfield_energy(weights, state, bias)
    for _ in range(4):
        order = torch.randperm(size, generator=g)
        for i in order.tolist():  # unit by unit, checking after every single update
            state = asynchronous_sweep(weights, state, torch.tensor([i]), bias)
            new = hopfield_energy(weights, state, bias)
            assert (new <= energy + 1e-9).all()
            energy = new


@pytest.mark.parametrize("rule", ["hebbian", "storkey"])
@pytest.mark.parametrize("update", ["async", "sync"])
def test_a_few_stored_patterns_are_fixed_points(rule: str, update: str) -> None:
    g = torch.Generator().manual_seed(0)
    patterns = signs(4, 120, generator=g).float()
    model = create_model("hopfield", size=120, num_patterns=4, rule=rule, update=update)
    model.store(patterns)
    assert torch.equal(model(patterns), patterns)
    assert len(model.trajectory(patterns)) == 1  # not a single unit moved
    cue = patterns.clone()
    cue[:, :15] *= -1  # 12.5% flipped: recalled
    assert torch.equal(model(cue), patterns)


def test_synchronous_updates_can_fall_into_a_two_cycle_that_asynchronous_ones_escape() -> None:
    """Two units that inhibit each other (w = -1), both on: updated together they both switch off, then
    both on again, forever, with E = +1 at every step; one at a time, the first flip lands in a minimum."""
    weights = torch.tensor([[0.0, -1.0], [-1.0, 0.0]])
    state = torch.tensor([[1.0, 1.0]])
    path = [state]
    for _ in range(4):
        path.append(synchronous_update(weights, path[-1]))
    assert [p.tolist() for p in path] == [[[1.0, 1.0]], [[-1.0, -1.0]], [[1.0, 1.0]], [[-1.0, -1.0]], [[1.0, 1.0]]]
    assert hopfield_energy(weights, path[1]).item() == hopfield_energy(weights, path[0]).item() == 1.0
    settled = asynchronous_sweep(weights, state, torch.tensor([0, 1]))
    assert settled.tolist() == [[-1.0, 1.0]] and hopfield_energy(weights, settled).item() == -1.0
    # the model's synchronous recall from a state in a 2-cycle stops at max_steps, alternating
    model = create_model("hopfield", size=2, num_patterns=1, update="sync", max_steps=6)
    model.weight.copy_(weights)
    trajectory = model.trajectory(state)
    assert len(trajectory) == 7 and all(torch.equal(trajectory[i], trajectory[i + 2]) for i in range(5))


def test_a_random_network_shows_two_cycles_under_synchronous_updates() -> None:
    """Not only a hand-made pair: Hebbian networks past capacity, updated synchronously from random
    states, end some trajectories in 2-cycles (s_{t+2} = s_t != s_{t+1})."""
    g = torch.Generator().manual_seed(1)
    weights = hebbian_weights(signs(30, 60, generator=g))
    state = signs(200, 60, generator=g)
    for _ in range(50):
        state = synchronous_update(weights, state)
    nxt = synchronous_update(weights, state)
    cycling = (synchronous_update(weights, nxt) == state).all(1) & (nxt != state).any(1)
    assert cycling.any()


def test_the_symmetric_three_mixture_is_a_spurious_fixed_point() -> None:
    """Amit, Gutfreund & Sompolinsky 1985: with a few random patterns stored by Hebb's rule, the state
    sign(x1 + x2 + x3) is stable although it was never stored, and it is none of the patterns (it agrees
    with each on about 3/4 of the units)."""
    g = torch.Generator().manual_seed(0)
    patterns = signs(5, 600, generator=g).float()
    model = create_model("hopfield", size=600, num_patterns=5, rule="hebbian")
    model.store(patterns)
    mixture = torch.sign(patterns[:3].sum(0, keepdim=True))
    assert torch.equal(model(mixture), mixture)
    overlaps = (mixture @ patterns[:3].T / 600).squeeze(0)
    assert ((overlaps > 0.4) & (overlaps < 0.6)).all()  # m = 1/2 with each: agreement (1 + m) / 2 = 3/4


def test_hebbian_weights_are_the_outer_product_sum_without_diagonal() -> None:
    g = torch.Generator().manual_seed(0)
    p = signs(3, 7, generator=g)
    w = hebbian_weights(p)
    expected = sum(torch.outer(x, x) for x in p) / 7
    expected.fill_diagonal_(0)
    torch.testing.assert_close(w, expected)
    assert torch.equal(w, w.T)


def test_storkey_weights_follow_the_rule_written_element_by_element() -> None:
    g = torch.Generator().manual_seed(0)
    p = signs(4, 6, generator=g)
    n = 6
    w = torch.zeros(n, n, dtype=torch.float64)
    for xi in p:
        h = [[sum(w[i, k] * xi[k] for k in range(n) if k not in (i, j)) for j in range(n)] for i in range(n)]
        new = w.clone()
        for i in range(n):
            for j in range(n):
                if i != j:
                    new[i, j] = w[i, j] + (xi[i] * xi[j] - xi[i] * h[j][i] - h[i][j] * xi[j]) / n
        w = new
    torch.testing.assert_close(storkey_weights(p), w)


def test_storkey_keeps_more_patterns_than_hebbian_at_high_load() -> None:
    g = torch.Generator().manual_seed(0)
    patterns = signs(40, 200, generator=g).float()  # P / N = 0.2, past the Hebbian rule's 0.138
    kept = {}
    for rule in ("hebbian", "storkey"):
        model = create_model("hopfield", size=200, num_patterns=40, rule=rule)
        model.store(patterns)
        kept[rule] = ((model(patterns) != patterns).float().mean(1) < 0.01).float().mean().item()
    assert kept["storkey"] > kept["hebbian"] + 0.3, kept


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 4), count=st.integers(1, 9), size=st.integers(1, 17),
       beta=st.floats(0.01, 5.0))
def test_one_modern_update_is_attention_with_query_state_and_keys_values_patterns(
        seed: int, batch: int, count: int, size: int, beta: float) -> None:
    """ξ_new = X softmax(β Xᵀ ξ) is archzoo's scaled dot-product attention with Q = ξ, K = V = X and the
    scale β in place of 1/√d_k: the formula, the fused path and the attention reference agree."""
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, size, generator=g, dtype=torch.float64)
    patterns = torch.randn(count, size, generator=g, dtype=torch.float64)
    formula = modern_hopfield_update_reference(states, patterns, beta)
    attention, _ = scaled_dot_product_attention_reference(states[:, None], patterns[None], patterns[None], scale=beta)
    torch.testing.assert_close(attention[:, 0], formula)
    torch.testing.assert_close(modern_hopfield_update_fused(states, patterns, beta), formula)


def test_beta_moves_the_modern_network_from_averaging_to_single_pattern_retrieval() -> None:
    g = torch.Generator().manual_seed(0)
    patterns = signs(10, 100, generator=g).float()
    cue = patterns[3:4].clone()
    cue[:, :30] *= -1
    averaged = modern_hopfield_update_reference(cue, patterns, beta=1e-4)
    torch.testing.assert_close(averaged, patterns.mean(0, keepdim=True), atol=0.01, rtol=0)  # global average
    retrieved = modern_hopfield_update_reference(cue, patterns, beta=1.0)
    torch.testing.assert_close(retrieved, patterns[3:4], atol=1e-6, rtol=0)  # the one nearest pattern
    model = create_model("modern_hopfield", size=100, num_patterns=10, beta=1.0)
    model.store(patterns)
    assert torch.equal(torch.sign(model(cue)), patterns[3:4])


def test_models_refuse_wrong_shapes_in_one_line() -> None:
    model = create_model("hopfield", size=10, num_patterns=2)
    for call in (lambda: model(torch.ones(2, 11)), lambda: model.store(torch.ones(3, 10)),
                 lambda: create_model("modern_hopfield", size=10, num_patterns=2).store(torch.ones(1, 10)),
                 lambda: create_model("hopfield", rule="oja")):
        with pytest.raises(UserError) as excinfo:
            call()
        assert "\n" not in str(excinfo.value)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), size=st.integers(2, 40), count=st.integers(1, 12),
       beta=st.floats(0.01, 8.0))
def test_the_modern_update_never_raises_its_energy(seed: int, size: int, count: int, beta: float) -> None:
    """Ramsauer et al.'s Theorem 1: each update ξ ← X softmax(β Xᵀ ξ) lowers E or leaves it (any patterns,
    any real start), and E is bounded below by 0 (their Lemma A1 with the constant terms)."""
    from archzoo.layers.hopfield import modern_hopfield_energy, modern_hopfield_update_reference

    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(count, size, generator=g, dtype=torch.float64)
    state = 3 * torch.randn(4, size, generator=g, dtype=torch.float64)
    energy = modern_hopfield_energy(state, patterns, beta)
    for _ in range(5):
        state = modern_hopfield_update_reference(state, patterns, beta)
        new = modern_hopfield_energy(state, patterns, beta)
        assert (new <= energy + 1e-9).all() and (new >= -1e-9).all()
        energy = new
