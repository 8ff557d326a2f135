"""The articles' printed examples as specified: what each omission does, checked on the modules themselves,
and the-articles-code's verdict rules on made-up records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archzoo.errors import UserError
from archzoo.lab import EXPERIMENTS
from archzoo.lab.articles_code import (
    TRANSFORMER_VARIANTS,
    ArticleSelfAttention,
    ArticleSimpleCNN,
    ArticleSimpleRNN,
    ArticleSimpleTransformer,
    StandardSelfAttention,
    attention_entropy,
    reverse_task,
)
from archzoo.lab.base import Cell, CellResult, count_parameters
from archzoo.models import create_model


def test_simple_cnn_has_simple_cnns_parameters_and_shapes() -> None:
    model = ArticleSimpleCNN()
    assert count_parameters(model) == count_parameters(create_model("simple_cnn")) == 421_642
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_simple_rnn_predicts_only_after_the_last_step() -> None:
    model = ArticleSimpleRNN(65)
    ids = torch.randint(0, 65, (3, 20))
    assert model(ids).shape == (3, 65)
    assert count_parameters(model) == 65 * 50 + 50 * 50 + 2 * 50 + 50 * 65 + 65


def test_without_a_causal_mask_the_decoder_reads_the_future() -> None:
    torch.manual_seed(0)
    src = torch.randint(1, 10, (8, 2))
    tgt = torch.randint(1, 10, (5, 2))
    later = tgt.clone()
    later[-1] = (later[-1] % 9) + 1  # change only the last target token
    for causal in (False, True):
        model = ArticleSimpleTransformer(10, causal=causal).eval()
        with torch.no_grad():
            changed = not torch.allclose(model(src, tgt)[0], model(src, later)[0], atol=1e-6)
        assert changed is not causal  # position 0's output sees token 4 only without the mask


def test_without_positions_the_encoder_cannot_tell_order() -> None:
    torch.manual_seed(0)
    src = torch.randint(1, 10, (8, 1))
    tgt = torch.zeros(1, 1, dtype=torch.long)
    for positions in (False, True):
        model = ArticleSimpleTransformer(10, causal=True, positions=positions).eval()
        with torch.no_grad():
            same = torch.allclose(model(src, tgt), model(src.flip(0), tgt), atol=1e-5)
        assert same is not positions  # a reversed source gives the same first output without positions
    shared = ArticleSimpleTransformer(10)
    assert shared.target_embedding is shared.embedding
    assert ArticleSimpleTransformer(10, separate=True).target_embedding is not ArticleSimpleTransformer(10).embedding
    assert len(shared.transformer.decoder.layers) == 6 and len(shared.transformer.encoder.layers) == 2


def test_printed_self_attention_shares_projections_and_scales_by_sqrt_e() -> None:
    art, std = ArticleSelfAttention(32, 4), StandardSelfAttention(32, 4)
    assert count_parameters(art) == 3 * 8 * 8 + 32 * 32 + 32  # one 8x8 matrix per Q, K, V for all heads
    assert count_parameters(std) == 4 * 32 * 32 + 4 * 32
    # scaling by sqrt(32) instead of sqrt(8) flattens the attention: entropy closer to uniform (ln 32)
    assert attention_entropy(art, 32, 4, 0) > attention_entropy(std, 32, 4, 0)
    x = torch.randn(2, 6, 32)
    mask = torch.ones(2, 1, 6, 6).tril()
    out = art(x, mask)
    assert out.shape == x.shape and torch.all(art.last_attention.triu(1) < 1e-12)


def test_reverse_task() -> None:
    x, y = reverse_task(5, torch.Generator().manual_seed(0))
    assert torch.equal(y, x.flip(1)) and x.min() >= 1


def article_records(transformer: dict[str, float], attention: tuple[float, float]) -> list[CellResult]:
    rows = [({"example": "cnn", "variant": v, "steps": 1}, 0, {"test_accuracy": 0.98, "train_seconds": 1.0,
                                                              "parameters": 1}) for v in ("article", "archzoo")]
    rows += [({"example": "rnn", "variant": v, "steps": 1}, 0, {"last_position_loss": loss, "parameters": 1})
             for v, loss in (("article", 2.5), ("archzoo", 2.0))]
    rows += [({"example": "transformer", "variant": v, "steps": 1}, 0,
              {"teacher_forced_token_accuracy": 1.0, "greedy_token_accuracy": acc, "greedy_sequence_accuracy": acc,
               "final_loss": 0.1, "parameters": 1}) for v, acc in transformer.items()]
    rows += [({"example": "attention", "variant": v, "steps": 1}, 0,
              {"parameters": 1, "entropy": 3.0, "uniform_entropy": 3.4, "token_accuracy": acc, "sequence_accuracy": acc})
             for v, acc in zip(("article", "standard"), attention, strict=True)]
    return [CellResult(Cell(c, s), r, 1.0) for c, s, r in rows]


@pytest.mark.parametrize(("printed", "fixed", "attention", "outcomes"), [
    (0.0, 0.95, (0.5, 0.99), ("supported", "refuted", "refuted", "refuted")),
    (0.93, 0.95, (0.985, 0.99), ("supported", "refuted", "supported", "supported")),
    (0.0, 0.2, (0.1, 0.3), ("supported", "refuted", "depends", "depends")),  # nothing learned: no comparison
])
def test_articles_code_rules(printed: float, fixed: float, attention: tuple, outcomes: tuple) -> None:
    accs = dict(zip(TRANSFORMER_VARIANTS, (printed, 0.5, 0.7, fixed), strict=True))
    verdicts = EXPERIMENTS.get("the-articles-code").decide(article_records(accs, attention))
    assert tuple(v.outcome for v in verdicts) == outcomes


def length_records(long_bleu: dict[str, float], short: float = 40.0, seed: int = 0) -> list[CellResult]:
    buckets = lambda long: [["1-9", short, 406], ["10-14", 35.0, 445], ["15-19", long, 114], ["20-24", 5.0, 31],
                            ["25+", 0.0, 4]]  # noqa: E731
    return [CellResult(Cell({"preset": p, "steps": 1}, seed), {"buckets": buckets(b), "bleu": 30.0, "source": "x"}, 1.0)
            for p, b in long_bleu.items()]


@pytest.mark.parametrize(("long_bleu", "outcome"), [
    ({"multi30k-lstm": 25.0, "multi30k-gru_context": 26.0, "multi30k-attention": 33.0, "multi30k-transformer": 35.0},
     "supported"),
    ({"multi30k-lstm": 25.0, "multi30k-gru_context": 33.0, "multi30k-attention": 33.0, "multi30k-transformer": 35.0},
     "refuted"),
    ({"multi30k-lstm": 32.0, "multi30k-gru_context": 25.0, "multi30k-attention": 33.0, "multi30k-transformer": 35.0},
     "depends"),
])
def test_attention_and_length_rule_reads_the_longest_bucket_with_100_sentences(long_bleu: dict, outcome: str) -> None:
    (verdict,) = EXPERIMENTS.get("attention-and-length").decide(length_records(long_bleu))
    assert verdict.outcome == outcome and verdict.numbers["long bucket"] == "15-19"


BUCKETS = [["1-9", 30.0, 406], ["10-14", 28.0, 445], ["15-19", 25.0, 114], ["20-24", 20.0, 31], ["25+", 10.0, 4]]


def test_each_run_names_its_precision_or_says_it_was_not_recorded() -> None:
    records = length_records({p: 30.0 for p in ("multi30k-lstm", "multi30k-gru_context", "multi30k-attention",
                                                 "multi30k-transformer")})
    records[0].result["precision"] = "fp32"
    records[1].result["precision"] = "bf16"
    _, runs = EXPERIMENTS.get("attention-and-length").tables(records)
    column = runs.headers.index("precision")
    assert sorted(row[column] for row in runs.rows) == ["bf16", "fp32", "not recorded", "not recorded"]


def test_the_mean_table_gives_mean_and_std_over_seeds_and_the_rule_reads_the_means() -> None:
    presets = ("multi30k-lstm", "multi30k-gru_context", "multi30k-attention", "multi30k-transformer")
    seed0 = length_records(dict(zip(presets, (25.0, 26.0, 33.0, 35.0), strict=True)))
    seed1 = length_records(dict(zip(presets, (27.0, 26.0, 37.0, 35.0), strict=True)), short=42.0, seed=1)
    means, runs = EXPERIMENTS.get("attention-and-length").tables(seed0 + seed1)
    attention = next(row for row in means.rows if row[0].startswith("GRU + attention"))
    # 15-19: 33 and 37 -> 35.0 ± 2.8; drop: 40 - 33 = +7 and 42 - 37 = +5 -> +6.0 ± 1.4
    assert attention[3] == "35.0 ± 2.8" and attention[6] == "+6.0 ± 1.4" and len(runs.rows) == 8
    (verdict,) = EXPERIMENTS.get("attention-and-length").decide(seed0 + seed1)
    assert verdict.numbers["multi30k-attention long-bucket BLEU"] == 35.0
    assert verdict.numbers["multi30k-lstm drop"] == 15.0  # (40 - 25 + 42 - 27) / 2


def test_a_finished_run_of_the_same_preset_and_seed_is_read_and_another_seed_is_not(tmp_path) -> None:
    from archzoo.lab.attention_length import finished_run

    run = tmp_path / "multi30k-lstm"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": {"seed": 1}}))
    (run / "eval.json").write_text(json.dumps({"bleu": 27.0, "test_sets": {"test2016": {"bleu_by_length": BUCKETS}}}))
    report, source = finished_run(tmp_path, "multi30k-lstm", 1)
    assert report["bleu"] == 27.0 and source == str(run / "eval.json")
    assert report["precision"] is None  # "auto" (the default) depended on a machine the folder does not name
    (run / "config.json").write_text(json.dumps({"train": {"seed": 1, "precision": "bf16"}}))
    assert finished_run(tmp_path, "multi30k-lstm", 1)[0]["precision"] == "bf16"
    assert finished_run(tmp_path, "multi30k-lstm", 0) is None
    assert finished_run(tmp_path, "multi30k-attention", 1) is None  # nothing for that preset: the cell trains


def test_a_benchmark_record_counts_as_the_presets_own_seed_only(tmp_path) -> None:
    from archzoo.lab.attention_length import bucket_scores, finished_run

    record = {"preset": "multi30k-attention", "status": "completed", "overrides": [], "value": 34.4,
              "bleu_by_length": BUCKETS}
    (tmp_path / "multi30k-attention.json").write_text(json.dumps(record))
    report, source = finished_run(tmp_path, "multi30k-attention", 0)  # the preset trains with seed 0
    assert bucket_scores(report) == BUCKETS and report["bleu"] == 34.4 and source.endswith("multi30k-attention.json")
    assert report["precision"] is None  # a record from before benchmarks named the precision
    (tmp_path / "multi30k-attention.json").write_text(json.dumps({**record, "precision": "fp32"}))
    assert finished_run(tmp_path, "multi30k-attention", 0)[0]["precision"] == "fp32"
    assert finished_run(tmp_path, "multi30k-attention", 2) is None
    (tmp_path / "multi30k-attention.json").write_text(json.dumps({**record, "overrides": ["train.epochs=1"]}))
    with pytest.raises(UserError, match="without overrides"):
        finished_run(tmp_path, "multi30k-attention", 0)


def test_the_committed_benchmark_records_are_readable_full_mode_cells() -> None:
    from archzoo.lab.attention_length import PRESETS, bucket_scores, finished_run

    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    for preset in PRESETS:
        report, _ = finished_run(results, preset, 0)
        assert [b[0] for b in bucket_scores(report)] == [b[0] for b in BUCKETS]
