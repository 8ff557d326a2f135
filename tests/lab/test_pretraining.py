"""pretraining: the verdict rules, the comparison with the committed benchmarks only on their protocol,
and one tiny cell of each arm end to end (the fine-tuning run starts from the pre-trained encoder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.lab import EXPERIMENTS
from archzoo.lab.base import Cell, CellResult
from archzoo.lab.pretraining import committed_benchmark, finetuning_config, pretraining_config
from archzoo.tasks.masked_lm import MaskedLMConfig
from archzoo.tasks.sentence_classification import SentenceClassificationConfig
from helpers import SHARED_DATA

EXP = EXPERIMENTS.get("pretraining")


def records(scratch: list[float], pretrained: list[float], max_examples: int = 0) -> list[CellResult]:
    """One seed, folds 0..N-1, the given test accuracies of each arm."""
    out = []
    for fold, (a, b) in enumerate(zip(scratch, pretrained, strict=True)):
        base = {"fold": fold, "max_examples": max_examples, "max_sentences": 0, "heldout": 500,
                "pretrain_epochs": 2, "pretrain_warmup": 200}
        fine = {"train_seconds": 60.0, "vocab_size": 27000}
        pre = {"test": {"train_sentences": 60000, "unigram_loss": 6.9, "loss": 6.5, "accuracy": 0.2}, "steps": 1900,
               "train_seconds": 190.0, "val_curve": [[950, 6.8], [1900, 6.5]]}
        out.append(CellResult(Cell({"arm": "scratch", **base}, 0), {"accuracy": a, **fine}, 1.0))
        out.append(CellResult(Cell({"arm": "pretrained", **base}, 0), {"accuracy": b, **fine, "pretraining": pre}, 1.0))
    return out


@pytest.mark.parametrize(("gains", "outcome"), [
    ([0.03, 0.025, 0.021, 0.04], "supported"),
    ([0.05, 0.05, 0.05, -0.001], "depends"),  # a mean of 3.7 points, but one pair lost
    ([0.01, 0.01, 0.0, 0.0], "depends"),
    ([0.004, 0.0, 0.01, 0.0], "refuted"),  # 0.35 points: no help
    ([-0.02, -0.01, 0.0, 0.0], "refuted"),
])
def test_pretraining_helps_rule_pairs_folds(gains: list[float], outcome: str) -> None:
    scratch = [0.68, 0.70, 0.66, 0.69]
    verdict = EXP.decide(records(scratch, [a + g for a, g in zip(scratch, gains, strict=True)]))[0]
    assert verdict.outcome == outcome
    assert verdict.numbers["pairs_won"] == f"{sum(g > 0 for g in gains)}/4"
    assert "0.40 nats per masked token below a word-frequency guess" in verdict.reason  # 6.9 - 6.5


def test_the_cnn_comparison_is_not_measured_off_the_benchmark_protocol() -> None:
    verdict = EXP.decide(records([0.6, 0.6], [0.62, 0.63], max_examples=2000))[1]
    assert verdict.outcome == "not measured" and "not the benchmark protocol" in verdict.reason
    verdict = EXP.decide(records([0.7] * 3, [0.8] * 3))[1]  # the whole of MR, but three folds of ten
    assert verdict.outcome == "not measured"


@pytest.mark.skipif(committed_benchmark("textcnn") is None, reason="benchmarks/results not beside the package")
@pytest.mark.parametrize(("pretrained", "outcome"), [(0.78, "supported"), (0.75, "depends"), (0.70, "refuted")])
def test_the_cnn_comparison_reads_the_committed_folds(pretrained: float, outcome: str) -> None:
    textcnn = committed_benchmark("textcnn")
    assert textcnn is not None and textcnn["folds"] == list(range(10))
    verdict = EXP.decide(records([0.69] * 10, [pretrained] * 10))[1]
    assert verdict.outcome == outcome
    assert verdict.numbers["textcnn_accuracy"] == round(sum(textcnn["fold_accuracies"]) / 10, 4)
    table = EXP.tables(records([0.69] * 10, [pretrained] * 10))[0]
    assert table.rows[2][0].startswith("TextCNN") and table.rows[2][1] == f"{textcnn['value'] * 100:.2f}"


def test_both_stages_read_the_same_fold_split() -> None:
    """The pre-training corpus is built from the MR split of the fine-tuning run, field for field."""
    cell = EXP.cells(True, [0])[1]
    assert cell.config["arm"] == "pretrained"
    from archzoo.training.config import load_preset, run_config_from_dict

    pre = run_config_from_dict(pretraining_config(cell.config, load_preset("mr-bert")["model"], 0))
    fine = run_config_from_dict(finetuning_config(cell.config, ("<pad>", "<unk>", "good"), 0))
    assert isinstance(pre.data, MaskedLMConfig) and isinstance(fine.data, SentenceClassificationConfig)
    split = ("num_folds", "fold", "fold_seed", "val_fraction", "val_seed", "max_examples")
    assert pre.data.sentence_split() == SentenceClassificationConfig(**{k: getattr(fine.data, k) for k in split})
    assert fine.data.vocab == ("<pad>", "<unk>", "good") and fine.model.name == pre.model.name == "bert_classifier"
    assert {k: v for k, v in pre.model.args.items() if k != "mlm_head"} == fine.model.args


@pytest.mark.skipif(not all((SHARED_DATA / d).is_dir() for d in ("rt-polarity", "multi30k", "tinyshakespeare")),
                    reason="../shared/data: rt-polarity, multi30k or tinyshakespeare not staged")
def test_a_tiny_cell_of_each_arm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The pre-trained arm's fine-tuning starts from the pre-trained encoder; both arms share the vocabulary."""
    from archzoo.lab import runner

    started: list[dict[str, torch.Tensor]] = []
    real = runner.run_training

    def spy(data, run_dir, data_dir=None, on_step=None, prepare=None):  # records the weights the fine-tuning starts from
        def record(trainer) -> None:
            if prepare is not None:
                prepare(trainer)
            started.append({k: v.clone() for k, v in trainer.model.encoder.state_dict().items()})
        return real(data, run_dir, data_dir, on_step, record if data["task"] == "sentence_classification" else prepare)

    monkeypatch.setattr("archzoo.lab.pretraining.run_training", spy)
    config = {"fold": 3, "max_examples": 300, "max_sentences": 150, "heldout": 20, "pretrain_epochs": 1,
              "pretrain_warmup": 0}
    pre = EXP.run_cell(Cell({"arm": "pretrained", **config}, 0), tmp_path / "a", None)
    scratch = EXP.run_cell(Cell({"arm": "scratch", **config}, 0), tmp_path / "b", None)
    assert pre["vocab_size"] == scratch["vocab_size"] and 0 <= pre["accuracy"] <= 1
    assert pre["pretraining"]["test"]["train_sentences"] == 3 * 150 - 2 * 20  # 150 of each corpus, less held out
    from archzoo.training.checkpoint import load_model

    encoder = load_model(tmp_path / "a" / "pretrain")[0].encoder.state_dict()
    assert all(torch.equal(started[0][k], encoder[k]) for k in encoder)  # fine-tuning began from these weights
    assert not torch.equal(started[1]["token_embedding.weight"], encoder["token_embedding.weight"])
