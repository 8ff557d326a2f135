"""The translation task on a slice of real Multi30K: splits and tokenizers saved with the run, the
loss, scheduled sampling, decoding in input order, sacreBLEU equal to sacreBLEU's own command line,
BLEU by source length, and bad input."""

from __future__ import annotations

import copy
import math
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from archzoo.errors import UserError
from archzoo.models import create_model
from archzoo.tasks.translation import LENGTH_BUCKETS, Translation, TranslationConfig, bleu_by_length, sacrebleu_scores
from archzoo.vocab import BOS_ID, EOS_ID, PAD_ID
from helpers import SHARED_DATA

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "multi30k").is_dir(), reason="../shared/data/multi30k not staged")


@pytest.fixture(scope="module")
def task() -> Translation:
    return Translation(TranslationConfig(max_train_pairs=400, max_eval_pairs=50, vocab_size=300), SHARED_DATA)


def tiny_transformer(task: Translation):
    torch.manual_seed(0)
    return create_model("transformer_seq2seq", **task.model_args(), d_model=32, num_heads=4, dim_feedforward=64,
                        num_encoder_layers=1, num_decoder_layers=1)


def test_splits_hold_eos_ended_sources_and_bos_eos_targets(task: Translation) -> None:
    src, tgt = task.split("train")
    assert src.shape[0] == tgt.shape[0] == 400
    lengths = (src != PAD_ID).sum(1)
    assert (src[torch.arange(400), lengths - 1] == EOS_ID).all()
    assert (tgt[:, 0] == BOS_ID).all() and ((tgt == EOS_ID).sum(1) == 1).all()
    assert task.split("val")[0].shape[0] == 50 and task.has_split("val") and not task.has_split("test2016")
    assert task.model_args() == {"src_vocab_size": 300, "tgt_vocab_size": 300, "pad_id": PAD_ID, "bos_id": BOS_ID,
                                 "eos_id": EOS_ID}  # the ids the tokenizers put at 0..3, given to the model


def test_the_resolved_config_rebuilds_the_same_tokenizers_without_the_data(task: Translation) -> None:
    cfg = task.resolved_config()
    again = Translation(cfg, data_dir="/nonexistent")  # user input needs no data files
    ids, truncated = again.encode_sources(["Ein Mann fährt Fahrrad."])
    assert truncated == [] and ids[0, -1] == EOS_ID
    assert torch.equal(ids[0, :-1], torch.tensor(task.src_tok.encode("Ein Mann fährt Fahrrad.")))


def test_word_tokenizer_runs_lower_cased(task: Translation) -> None:
    word = Translation(TranslationConfig(max_train_pairs=400, max_eval_pairs=20, tokenizer="word", lowercase=True,
                                         min_freq=2), SHARED_DATA)
    src, _ = word.split("train")
    assert word.src_tok.kind == "word" and src.max() < len(word.src_tok)
    assert word.tgt_tok.decode(word.tgt_tok.encode("A man .")) == "a man."


def test_loss_is_label_smoothed_cross_entropy_over_real_tokens(task: Translation) -> None:
    model = tiny_transformer(task).eval()
    src, tgt = task.split("train")
    batch = (src[:8], tgt[:8])
    logits = model(src[:8], tgt[:8, :-1]).float()
    gold = tgt[:8, 1:]
    real = gold != PAD_ID
    log_p = logits.log_softmax(-1)
    nll = -log_p.gather(2, gold[..., None])[..., 0]
    smooth = -log_p.mean(-1)
    expected = ((0.9 * nll + 0.1 * smooth)[real]).mean()
    torch.testing.assert_close(task.loss(model, batch), expected, atol=1e-5, rtol=1e-5)


def test_loss_falls_on_real_pairs(task: Translation) -> None:
    model = tiny_transformer(task)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = task.epoch_order(0, seed=0, batch_size=64)
    losses = []
    for step in range(30):
        batch = task.train_batch(order[(step % 6) * 64:(step % 6 + 1) * 64], slice(0, 64), seed=step)
        loss = task.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    late = sum(losses[-5:]) / 5
    assert late < 0.9 * sum(losses[:5]) / 5 and late < math.log(300) - 0.4  # below a uniform guess over the vocabulary


def test_scheduled_sampling_masks_follow_the_ratio_and_the_seed(task: Translation) -> None:
    half = Translation(replace(task.resolved_config(), teacher_forcing=0.5), SHARED_DATA)
    indices = torch.arange(64)
    src, tgt, mask = half.train_batch(indices, slice(0, 64), seed=3)
    assert mask.shape == (64, tgt.shape[1] - 1) and 0.35 < mask.float().mean() < 0.65
    assert torch.equal(mask, half.train_batch(indices, slice(0, 64), seed=3)[2])
    assert torch.equal(mask[32:], half.train_batch(indices, slice(32, 64), seed=3)[2])  # a shard is its slice
    assert len(task.train_batch(indices, slice(0, 64), seed=3)) == 2  # ratio 1: plain teacher forcing


def test_decoding_returns_results_in_input_order(task: Translation) -> None:
    model = tiny_transformer(task).eval()
    src = task.split("val")[0][:12]
    whole = task.decode_ids(model, src, beam_size=2)
    one_by_one = [task.decode_ids(model, src[i:i + 1], beam_size=2).rows()[0] for i in range(12)]
    assert whole.rows() == one_by_one


def test_bleu_equals_sacrebleus_command_line(tmp_path: Path) -> None:
    hyps = ["A man rides a bike down the street.", "Two dogs play in the snow .", "A woman sings."]
    refs = ["A man is riding a bike down the street.", "Two dogs are playing in the snow.", "A woman is singing."]
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n")
    sacrebleu = shutil.which("sacrebleu", path=str(Path(sys.executable).parent)) or "sacrebleu"
    out = subprocess.run([sacrebleu, str(tmp_path / "ref.txt"), "-i", str(tmp_path / "hyp.txt"), "-b", "-w", "4"],
                         capture_output=True, text=True, check=True).stdout
    scores = sacrebleu_scores(hyps, refs)
    assert round(scores["bleu"], 4) == float(out.strip())
    assert scores["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")


def test_bleu_by_length_covers_every_sentence_once() -> None:
    sources = ["a " * n for n in (3, 9, 10, 14, 15, 22, 30)]
    buckets = bleu_by_length(sources, ["x"] * 7, ["x"] * 7)
    assert [n for _, _, n in buckets] == [2, 2, 1, 1, 1] and len(buckets) == len(LENGTH_BUCKETS)


def test_empty_and_overlong_sentences(task: Translation) -> None:
    with pytest.raises(UserError, match="sentence 2 is empty; give a de sentence such as 'Ein Mann fährt Fahrrad.'"):
        task.encode_sources(["Ein Hund.", "   "])
    ids, truncated = task.encode_sources(["Ein Hund.", "Hund " * 200])
    assert truncated == [1] and ids.shape[1] == task.cfg.max_tokens and ids[1, -1] == EOS_ID


def test_the_length_penalty_is_chosen_on_validation_and_used_on_test(task: Translation, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation BLEU is faked per alpha so the choice is decided; the best one (the first of equals)
    decodes the test set."""
    searched = copy.copy(task)  # shares the loaded splits and tokenizers
    searched.cfg = replace(task.cfg, length_penalties=(0.0, 0.6, 1.4, 2.0), test_sets=("test2016",))
    val_bleu = {0.0: 10.0, 0.6: 30.0, 1.4: 30.0, 2.0: 20.0}
    used: list[tuple[int, float]] = []
    real_decode = Translation.decode_ids

    def decode_ids(self, model, src, beam_size, need_weights=False, length_penalty=None):
        used.append((len(src), length_penalty))
        return real_decode(self, model, src, beam_size, need_weights, length_penalty)

    def scores(hypotheses: list[str], references: list[str]) -> dict:
        return {**sacrebleu_scores(hypotheses, references), "bleu": val_bleu.get(used[-1][1], 0.0)}

    monkeypatch.setattr(Translation, "decode_ids", decode_ids)
    monkeypatch.setattr("archzoo.tasks.translation.sacrebleu_scores", scores)
    report = searched.report(tiny_transformer(task), tmp_path, batch_size=64)
    assert report["length_penalty"] == 0.6
    assert report["length_penalty_search"] == {"split": "val", "val_beam_bleu": {str(a): b for a, b in val_bleu.items()}}
    assert used[:4] == [(50, alpha) for alpha in val_bleu]  # beam search over the 50 validation pairs
    assert used[4:] == [(50, 0.6), (50, 0.6)]  # then greedy and beam on test2016 with the chosen alpha


@pytest.mark.parametrize(("override", "message"), [
    ({"tokenizer": "chars"}, "data.tokenizer must be one of bpe, word"),
    ({"length_penalties": (1.0, -0.5)}, "data.length_penalty and data.length_penalties must be >= 0"),
    ({"teacher_forcing": 1.5}, "data.teacher_forcing in"),
    ({"beam_size": 0}, "data.beam_size"),
])
def test_bad_config_is_one_line(override: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        TranslationConfig(**override)


def test_a_pair_the_dataset_lacks_is_one_line() -> None:
    with pytest.raises(UserError, match="has no language 'es'"):
        Translation(TranslationConfig(source="es"), SHARED_DATA).split("train")
