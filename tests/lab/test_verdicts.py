"""Real experiments' verdict rules on made-up cell records: each clause of a rule gives its outcome, so a
verdict can only come from the data."""

from __future__ import annotations

import math

import pytest

from archzoo.lab import EXPERIMENTS
from archzoo.lab.base import Cell, CellResult
from archzoo.lab.long_range import score


def records(rows: list[tuple[dict, int, dict]]) -> list[CellResult]:
    return [CellResult(Cell(config, seed), result, 1.0) for config, seed, result in rows]


def clipping_records(unclipped_diverges: dict[str, int], clipped_diverges: dict[str, int]) -> list[CellResult]:
    """Five seeds at one learning rate; the first k seeds of each (model, clipping) diverge."""
    rows = []
    for model in ("rnn", "lstm"):
        for clip, counts in ((1.0, clipped_diverges), (0.0, unclipped_diverges)):
            for seed in range(5):
                bad = seed < counts[model]
                rows.append(({"model": model, "lr": 10.0, "clip": clip, "steps": 10}, seed,
                             {"nonfinite": bad, "val_loss": math.inf if bad else 2.0, "steps": 10,
                              "train_curve": [(10, 2.0)]}))
    return records(rows)


@pytest.mark.parametrize(("unclipped", "clipped", "outcome"), [
    ({"rnn": 5, "lstm": 4}, {"rnn": 0, "lstm": 1}, "supported"),
    ({"rnn": 5, "lstm": 0}, {"rnn": 0, "lstm": 0}, "depends"),  # the LSTM never diverges: no 30-point drop
    ({"rnn": 2, "lstm": 1}, {"rnn": 2, "lstm": 1}, "refuted"),
    ({"rnn": 5, "lstm": 5}, {"rnn": 0, "lstm": 5}, "depends"),
])
def test_gradient_clipping_rule(unclipped: dict, clipped: dict, outcome: str) -> None:
    exp = EXPERIMENTS.get("gradient-clipping")
    (verdict,) = exp.decide(clipping_records(unclipped, clipped))
    assert verdict.outcome == outcome
    assert verdict.numbers["rnn_divergence_unclipped"] == unclipped["rnn"] / 5


def test_gradient_clipping_counts_a_loss_worse_than_uniform_as_divergence() -> None:
    from archzoo.lab.clipping import diverged

    assert diverged({"nonfinite": False, "val_loss": math.log(65) + 0.01})
    assert not diverged({"nonfinite": False, "val_loss": 3.9})


def test_long_range_scores_put_baseline_at_zero_and_perfect_at_one() -> None:
    assert score("adding", {"mse": 1 / 6}) == pytest.approx(0.0) and score("adding", {"mse": 0.0}) == 1.0
    assert score("adding", {"mse": 0.5}) == 0.0  # worse than the baseline is still 0
    assert score("recall", {"accuracy": 1 / 8}) == pytest.approx(0.0) and score("recall", {"accuracy": 1.0}) == 1.0


def test_parameters_rule_refutes_growing_rnn_parameters_only_when_counts_are_constant() -> None:
    exp = EXPERIMENTS.get("parameters-vs-length")
    rows = []
    for t in (16, 64):
        params = {"rnn": 100, "lstm": 400, "gru": 300, "transformer_learned": 1000 + 128 * t,
                  "transformer_sinusoidal": 1000}
        flops = {"rnn": 10 * t, "lstm": 40 * t, "gru": 30 * t, "transformer_layer": t * t, "self_attention": t * t}
        rows.append(({"length": t, "width": 128}, 0, {"params": params, "forward_flops": flops,
                                                      "recurrent_formula": {"rnn": 100, "lstm": 400, "gru": 300}}))
    rnn, positions, complexity = exp.decide(records(rows))
    assert (rnn.outcome, positions.outcome, complexity.outcome) == ("refuted", "supported", "supported")
    rows[1][2]["params"]["rnn"] = 101  # a count that grew with length
    assert exp.decide(records(rows))[0].outcome == "depends"


def long_range_records(scores: dict[str, float], seeds: int = 3, lengths: tuple[int, ...] = (10, 30, 300, 1000),
                       at_longest: dict[str, float] | None = None) -> list[CellResult]:
    """Every (task, T, model, seed) cell with the score ``scores[model]`` (0 = baseline, 1 = perfect), or
    ``at_longest[model]`` at the longest length, written back as the task's raw test figure."""
    rows = []
    for seed in range(seeds):
        for task in ("adding", "recall"):
            for t in lengths:
                for model, s in scores.items():
                    s = at_longest.get(model, s) if at_longest and t == lengths[-1] else s
                    test = {"mse": (1 - s) / 6} if task == "adding" else {"accuracy": 1 / 8 + s * 7 / 8}
                    rows.append(({"task": task, "length": t, "model": model}, seed, {"test": test}))
    return records(rows)


MODELS_LR = ("RNN", "LSTM", "GRU", "Transformer", "CNN (TCN)")


@pytest.mark.parametrize(("scores", "at_longest", "outcomes"), [
    # gated RNNs far ahead everywhere and solving T=1000: gates win, no struggle, short paths lose
    ({"RNN": 0.1, "LSTM": 1.0, "GRU": 1.0, "Transformer": 0.5, "CNN (TCN)": 0.5}, None,
     ("supported", "refuted", "refuted")),
    # all equal and nobody solves the longest length
    (dict.fromkeys(MODELS_LR, 0.3), None, ("refuted", "depends", "depends")),
    # the short-path models solve everything, the gated RNNs fail at T=1000 only
    ({"RNN": 0.0, "LSTM": 0.9, "GRU": 0.9, "Transformer": 1.0, "CNN (TCN)": 1.0}, {"LSTM": 0.1, "GRU": 0.1},
     ("supported", "supported", "supported")),
])
def test_long_range_rules(scores: dict, at_longest: dict | None, outcomes: tuple) -> None:
    gates, struggle, paths = EXPERIMENTS.get("long-range").decide(long_range_records(scores, at_longest=at_longest))
    assert (gates.outcome, struggle.outcome, paths.outcome) == outcomes
    assert struggle.numbers["solved_at_T1000"]["LSTM adding"] == ("3/3" if scores["LSTM"] == 1.0 and not at_longest
                                                                 else "0/3")


def parallelism_records(transformer_ms: list[float], recurrent_ms: list[float], gpt_ms: list[float],
                        lstm_ms: list[float], lengths: tuple[int, ...] = (32, 64, 256, 1024)) -> list[CellResult]:
    """Timing cells: the recurrent models and the TCN share ``recurrent_ms``; generation latency per context."""
    rows = []
    for i, t in enumerate(lengths):
        train = {k: {"median": recurrent_ms[i] / 1000} for k in ("RNN", "LSTM", "GRU", "CNN (TCN)")}
        train["Transformer"] = {"median": transformer_ms[i] / 1000}
        tokens = {"GPT (KV cache)": {"median": gpt_ms[i] / 1000}, "LSTM (recurrent state)": {"median": lstm_ms[i] / 1000}}
        rows.append(({"length": t}, 0, {"train_seconds": train, "token_seconds": tokens}))
    return records(rows)


def test_parallelism_rules_and_the_crossover_length() -> None:
    from archzoo.lab.speed import crossover

    exp = EXPERIMENTS.get("parallelism")
    # attention faster while short, quadratic later: crosses the recurrent time between 256 and 1024
    fast_then_slow = parallelism_records([1, 2, 8, 128], [10, 20, 40, 80], [1, 1.5, 3, 9], [1, 1, 1, 1])
    parallel, below_d, kv = exp.decide(fast_then_slow)
    assert (parallel.outcome, below_d.outcome, kv.outcome) == ("depends", "supported", "supported")
    assert below_d.numbers["crossover_with_lstm"] == crossover([32, 64, 256, 1024], [1, 2, 8, 128], [10, 20, 40, 80])
    assert 256 < below_d.numbers["crossover_with_lstm"] < 1024
    # attention slower everywhere, generation latency flat for both
    slow = parallelism_records([20, 40, 80, 160], [10, 20, 40, 80], [1, 1, 1, 1], [1, 1, 1, 1])
    assert [v.outcome for v in exp.decide(slow)] == ["refuted", "refuted", "refuted"]
    assert crossover([32, 64], [20, 40], [10, 20]) == 32 and crossover([32, 64], [1, 2], [10, 20]) is None


def gru_vs_lstm_records(step_ms: dict[str, float], final: dict[str, float]) -> list[CellResult]:
    """A timing cell and three seeds per model whose validation loss falls linearly to ``final`` at step 100."""
    from archzoo.lab.charlm import GVL_MODELS

    rows = [({"kind": "timing"}, 0, {"step_seconds": {m: {"median": step_ms[m] / 1000} for m in GVL_MODELS},
                                     "params": {m: 1000 for m in GVL_MODELS}})]
    for seed in range(3):
        for m in GVL_MODELS:
            curve = [(s, 4.0 - (4.0 - final[m]) * s / 100) for s in (0, 50, 100)]
            rows.append(({"kind": "train", "model": m}, seed, {"final_val_loss": final[m], "curve": curve}))
    return records(rows)


@pytest.mark.parametrize(("step_ms", "final", "outcomes"), [
    ((10, 8, 9), (2.00, 2.05, 2.01), ("supported", "supported")),  # cheaper step, same loss
    ((10, 12, 13), (2.00, 2.05, 2.20), ("refuted", "refuted")),  # slower step, much worse loss
    ((10, 9.5, 10), (2.00, 2.02, 2.06), ("depends", "depends")),
])
def test_gru_vs_lstm_rules(step_ms: tuple, final: tuple, outcomes: tuple) -> None:
    from archzoo.lab.charlm import GVL_MODELS

    comparable, cheaper = EXPERIMENTS.get("gru-vs-lstm").decide(
        gru_vs_lstm_records(dict(zip(GVL_MODELS, step_ms, strict=True)), dict(zip(GVL_MODELS, final, strict=True))))
    assert (comparable.outcome, cheaper.outcome) == outcomes
    assert cheaper.numbers["gru_over_lstm_step_time"] == round(step_ms[1] / step_ms[0], 3)


@pytest.mark.parametrize(("bi_gain", "lm_by_depth", "outcomes"), [
    (0.02, {1: 1.60, 2: 1.50, 3: 1.52}, ("supported", "supported")),  # +2 points, deeper LM 0.1 nats better
    (-0.01, {1: 1.50, 2: 1.55, 3: 1.56}, ("refuted", "depends")),  # deeper MR gains (bi 3 layers) but LM loses
    (0.0, {1: 1.50, 2: 1.60, 3: 1.70}, ("depends", "refuted")),
])
def test_bidirectional_and_depth_rules(bi_gain: float, lm_by_depth: dict, outcomes: tuple) -> None:
    rows = []
    for seed in range(3):
        for layers in (1, 2, 3):
            uni = 0.75 + (0.01 * (layers - 1) if outcomes[1] != "refuted" else -0.01 * (layers - 1))
            for bi in (False, True):
                rows.append(({"task": "mr", "layers": layers, "bidirectional": bi}, seed,
                             {"test_accuracy": uni + (bi_gain if bi else 0.0)}))
            rows.append(({"task": "lm", "layers": layers}, seed, {"val_loss": lm_by_depth[layers]}))
    bi, depth = EXPERIMENTS.get("bidirectional-and-depth").decide(records(rows))
    assert (bi.outcome, depth.outcome) == outcomes


def exposure_records(tf_acc: list[float], free_acc: list[float], bleu: tuple[float, float],
                     step_seconds: tuple[float, float]) -> list[CellResult]:
    from archzoo.lab.exposure import TRAININGS

    tf_label, ss_label = list(TRAININGS)
    rows = []
    for seed in range(3):
        for label, b, s in ((tf_label, bleu[0], step_seconds[0]), (ss_label, bleu[1], step_seconds[1])):
            rows.append(({"training": label}, seed, {"bleu": b + 0.1 * seed, "seconds_per_step": s,
                                                     "positions": {"teacher_forced": tf_acc, "free_running": free_acc}}))
    return records(rows)


@pytest.mark.parametrize(("late_gap", "bleu", "step_seconds", "outcomes"), [
    (0.3, (20.0, 21.0), (0.10, 0.15), ("supported", "supported", "supported")),
    (0.0, (21.0, 20.0), (0.10, 0.10), ("refuted", "refuted", "refuted")),
    (0.05, (20.0, 20.2), (0.10, 0.11), ("depends", "depends", "depends")),
])
def test_exposure_bias_rules(late_gap: float, bleu: tuple, step_seconds: tuple, outcomes: tuple) -> None:
    from archzoo.lab.exposure import POSITIONS

    tf_acc = [0.6] * POSITIONS
    free_acc = [0.6 if t < 10 else 0.6 - late_gap for t in range(POSITIONS)]
    accumulate, sampling, fast = EXPERIMENTS.get("exposure-bias").decide(
        exposure_records(tf_acc, free_acc, bleu, step_seconds))
    assert (accumulate.outcome, sampling.outcome, fast.outcome) == outcomes
    assert sampling.numbers["ss_minus_tf_per_seed"] == [round(bleu[1] - bleu[0], 2)] * 3


def gradient_records(decay: dict[str, float]) -> list[CellResult]:
    """‖∂L/∂h_t‖ falling geometrically by ``decay[model]`` per step back from the loss, 150 steps."""
    rows = []
    for seed in range(3):
        for dataset in ("tinyshakespeare", "adding"):
            for model, rate in decay.items():
                h = [rate ** (149 - t) for t in range(150)]
                rows.append(({"dataset": dataset, "model": model}, seed, {"init": {"h": h}, "trained": {"h": h}}))
    return records(rows)


@pytest.mark.parametrize(("decay", "outcomes"), [
    ({"RNN (tanh)": 0.9, "RNN (tanh, orthogonal W_hh)": 0.95, "LSTM": 0.99, "GRU": 0.995}, ("supported", "supported")),
    ({"RNN (tanh)": 0.999, "RNN (tanh, orthogonal W_hh)": 0.999, "LSTM": 0.999, "GRU": 0.999}, ("refuted", "refuted")),
])
def test_vanishing_gradient_rules_read_the_ratio_100_steps_back(decay: dict, outcomes: tuple) -> None:
    vanish, gates = EXPERIMENTS.get("vanishing-gradients").decide(gradient_records(decay))
    assert (vanish.outcome, gates.outcome) == outcomes
    assert vanish.numbers["rnn_ratio_k100 adding init"] == pytest.approx(decay["RNN (tanh)"] ** 100, rel=1e-2)


def test_time_to_quality_rule_compares_losses_on_the_time_axis() -> None:
    from archzoo.lab.charlm import TTQ_MODELS

    def run(step_ms: dict[str, float], final: dict[str, float]) -> str:
        rows = [({"kind": "timing"}, 0, {"step_seconds": {m: {"median": step_ms[m] / 1000} for m in TTQ_MODELS}})]
        for seed in range(3):
            for m in TTQ_MODELS:
                rows.append(({"kind": "train", "model": m}, seed,
                             {"curve": [(s, 4.0 - (4.0 - final[m]) * s / 100) for s in (0, 50, 100)]}))
        return EXPERIMENTS.get("transformer-vs-rnn-time-to-quality").decide(records(rows))[0].outcome

    lstm, gru, gpt = TTQ_MODELS
    assert run({lstm: 10, gru: 10, gpt: 10}, {lstm: 2.0, gru: 2.0, gpt: 1.8}) == "supported"
    # the GPT reaches a lower loss per step but its steps are 3x slower: behind at equal time
    assert run({lstm: 10, gru: 10, gpt: 30}, {lstm: 2.0, gru: 2.0, gpt: 1.8}) == "refuted"
