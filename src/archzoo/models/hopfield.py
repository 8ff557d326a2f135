"""Hopfield networks as models: the classic binary associative memory and the modern continuous one.

Neither is trained by gradient descent: ``store(patterns)`` writes the memory (the weight matrix of the
classic network, the patterns themselves for the modern one; both keep the patterns, to show and score
recall) into buffers, which the checkpoint saves like any weights. ``forward(states)`` runs
the dynamics from each state to a fixed point (or ``max_steps``) and returns where it ended;
``trajectory`` returns every intermediate state too. States and patterns are ±1 rows (B, N) / (P, N).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.hopfield import (
    asynchronous_sweep,
    hebbian_weights,
    hopfield_energy,
    modern_hopfield_energy,
    modern_hopfield_update_fused,
    modern_hopfield_update_reference,
    storkey_weights,
    synchronous_update,
)
from archzoo.layers.impl import ImplSwitch
from archzoo.models.registry import register_model

RULES = {"hebbian": hebbian_weights, "storkey": storkey_weights}
UPDATES = ("async", "sync")


def check_states(name: str, states: Tensor, size: int) -> None:
    if states.dim() != 2 or states.shape[1] != size:
        raise UserError(f"{name} takes states of shape (B, {size}), got {tuple(states.shape)}")


def check_patterns(name: str, patterns: Tensor, size: int, count: int) -> None:
    if patterns.shape != (count, size):
        raise UserError(f"{name} was built to store {count} patterns of {size} units, got {tuple(patterns.shape)}")


class HopfieldNetwork(nn.Module):
    """The classic Hopfield network: N binary units, symmetric weights with a zero diagonal, learned in one
    shot by the Hebbian or Storkey rule, recalled by asynchronous or synchronous updates.

    Math: W from ``hebbian_weights`` or ``storkey_weights``; a step is one asynchronous sweep over the units
        in a random order (``asynchronous_sweep``, energy E = -½ sᵀWs never rises) or one synchronous update
        (``synchronous_update``, which can cycle with period 2). Recall stops at a fixed point.
    Reference: Hopfield 1982, PNAS 79(8):2554-2558; Storkey 1997, ICANN.
    Shapes: states (B, N) of ±1 -> (B, N) of ±1.
    Differs from paper: no bias (threshold) by default, as in the capacity analyses (Amit et al. 1985).
    """

    def __init__(self, size: int, num_patterns: int, rule: str, update: str, max_steps: int, seed: int):
        super().__init__()
        if size < 2 or num_patterns < 1 or max_steps < 1:
            raise UserError(f"hopfield needs size >= 2, num_patterns >= 1 and max_steps >= 1, got size={size}, "
                            f"num_patterns={num_patterns}, max_steps={max_steps}")
        if rule not in RULES or update not in UPDATES:
            raise UserError(f"hopfield: rule must be one of {', '.join(RULES)} and update one of {', '.join(UPDATES)}, "
                            f"got rule={rule!r}, update={update!r}")
        self.size, self.num_patterns = size, num_patterns
        self.rule, self.update, self.max_steps, self.seed = rule, update, max_steps, seed
        self.register_buffer("weight", torch.zeros(size, size))
        self.register_buffer("bias", torch.zeros(size))
        self.register_buffer("patterns", torch.zeros(num_patterns, size))  # what was stored, to show and score recall

    @torch.no_grad()
    def store(self, patterns: Tensor) -> None:
        """Write ``patterns`` (P, N) of ±1 into the weights with the network's rule (replacing what was there)."""
        check_patterns("hopfield", patterns, self.size, self.num_patterns)
        self.patterns.copy_(patterns)
        self.weight.copy_(RULES[self.rule](patterns.to(self.weight)))

    def energy(self, states: Tensor) -> Tensor:
        """E(s) of each state (B,)."""
        return hopfield_energy(self.weight, states, self.bias)

    def step(self, states: Tensor, generator: torch.Generator) -> Tensor:
        """One asynchronous sweep (units in a random order from ``generator``) or one synchronous update."""
        if self.update == "sync":
            return synchronous_update(self.weight, states, self.bias)
        return asynchronous_sweep(self.weight, states, torch.randperm(self.size, generator=generator), self.bias)

    @torch.no_grad()
    def trajectory(self, states: Tensor, seed: int | None = None) -> list[Tensor]:
        """[s_0, s_1, ...]: the states after each step until none changes (a fixed point of them all) or
        ``max_steps``; the sweep orders come from ``seed`` (default: the model's)."""
        check_states("hopfield", states, self.size)
        generator = torch.Generator().manual_seed(self.seed if seed is None else seed)
        path = [states]
        for _ in range(self.max_steps):
            nxt = self.step(path[-1], generator)
            if torch.equal(nxt, path[-1]):
                break
            path.append(nxt)
        return path

    def forward(self, states: Tensor) -> Tensor:
        return self.trajectory(states)[-1]

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randint(0, 2, (batch_size, self.size)).float() * 2 - 1,)


class ModernHopfield(ImplSwitch, nn.Module):
    """The modern continuous Hopfield network: its update is attention over the stored patterns.

    Math: ξ ← X softmax(β Xᵀ ξ), repeated to a fixed point (usually one step: Ramsauer et al. show
        retrieval after one update for well-separated patterns). Large β retrieves the single pattern most
        similar to ξ; small β averages many (a metastable state, at β → 0 the mean of all patterns).
    Reference: Ramsauer et al. 2020, "Hopfield Networks is All You Need", arXiv:2008.02217, eq. (3) and
        Theorems 3-4.
    Shapes: states (B, N) -> (B, N) (continuous; the sign gives a binary state).
    """

    def __init__(self, size: int, num_patterns: int, beta: float, max_steps: int, impl: str = "auto"):
        super().__init__()
        if size < 1 or num_patterns < 1 or beta <= 0 or max_steps < 1:
            raise UserError(f"modern_hopfield needs size, num_patterns, max_steps >= 1 and beta > 0, got size={size}, "
                            f"num_patterns={num_patterns}, beta={beta}, max_steps={max_steps}")
        self.size, self.num_patterns, self.beta, self.max_steps = size, num_patterns, beta, max_steps
        self.impl = impl
        self.register_buffer("patterns", torch.zeros(num_patterns, size))

    @torch.no_grad()
    def store(self, patterns: Tensor) -> None:
        """Keep ``patterns`` (P, N) as the memory; P must be the model's ``num_patterns``."""
        check_patterns("modern_hopfield", patterns, self.size, self.num_patterns)
        self.patterns.copy_(patterns)

    def energy(self, states: Tensor) -> Tensor:
        """E(ξ) of each state (B,) (``modern_hopfield_energy``)."""
        return modern_hopfield_energy(states, self.patterns.to(states.dtype), self.beta)

    def step(self, states: Tensor) -> Tensor:
        update = modern_hopfield_update_fused if self.resolved_impl() == "fused" else modern_hopfield_update_reference
        return update(states, self.patterns.to(states.dtype), self.beta)

    @torch.no_grad()
    def trajectory(self, states: Tensor, seed: int | None = None) -> list[Tensor]:
        """[ξ_0, ξ_1, ...] until an update moves no component by more than 1e-6, or ``max_steps``."""
        check_states("modern_hopfield", states, self.size)
        path = [states]
        for _ in range(self.max_steps):
            nxt = self.step(path[-1])
            path.append(nxt)
            if (nxt - path[-2]).abs().max() <= 1e-6:
                break
        return path

    def forward(self, states: Tensor) -> Tensor:
        check_states("modern_hopfield", states, self.size)
        x = states
        for _ in range(self.max_steps):
            x, previous = self.step(x), x
            if (x - previous).abs().max() <= 1e-6:
                break
        return x

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randint(0, 2, (batch_size, self.size)).float() * 2 - 1,)


@register_model("hopfield")
def hopfield(size: int = 784, num_patterns: int = 10, rule: str = "hebbian", update: str = "async", max_steps: int = 20,
             seed: int = 0) -> HopfieldNetwork:
    """Classic Hopfield network of ``size`` ±1 units (784: a 28x28 binary image); Hebbian or Storkey weights."""
    return HopfieldNetwork(size, num_patterns, rule, update, max_steps, seed)


@register_model("modern_hopfield")
def modern_hopfield(size: int = 784, num_patterns: int = 10, beta: float = 0.1, max_steps: int = 5) -> ModernHopfield:
    """Modern continuous Hopfield network (Ramsauer et al. 2020) storing ``num_patterns`` patterns of ``size``."""
    return ModernHopfield(size, num_patterns, beta, max_steps)
