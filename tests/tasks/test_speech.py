"""Speech tasks (tasks/speech.py, tasks/connected_digits.py): the FSDD splits, leave-one-speaker-out,
SpecAugment, composed connected-digit utterances, and the loss falling on real recordings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.errors import UserError
from archzoo.tasks.connected_digits import ConnectedDigits, ConnectedDigitsConfig, pool_of
from archzoo.tasks.speech import SpeechConfig, SpokenDigits, SpokenDigitsConfig, spec_augment
from archzoo.training.config import resolve_config
from archzoo.training.trainer import Trainer
from helpers import SHARED_DATA, needs_spoken_digits


def test_spec_augment_masks_within_each_utterance_and_repeats_from_its_seed() -> None:
    cfg = SpeechConfig(freq_masks=2, freq_mask_width=5, time_masks=2, time_mask_width=6, time_mask_ratio=0.5)
    x = torch.ones(4, 30, 20)
    lengths = torch.tensor([30, 20, 10, 4])
    out = spec_augment(x, lengths, torch.Generator().manual_seed(1), slice(0, 4), cfg)
    assert torch.equal(out, spec_augment(x, lengths, torch.Generator().manual_seed(1), slice(0, 4), cfg))
    assert not torch.equal(out, spec_augment(x, lengths, torch.Generator().manual_seed(2), slice(0, 4), cfg))
    masked = out == 0
    bands = masked.all(1).sum(1)  # bands masked at every frame
    assert (bands <= 10).all() and bands.sum() > 0
    frames = (masked.all(2)).float()
    for i, n in enumerate(lengths.tolist()):
        assert frames[i, n:].sum() == 0  # time masks stay inside the utterance
        assert frames[i, :n].sum() <= 2 * min(6, int(0.5 * n))
    # a shard gets exactly its rows of the global batch's draw
    half = spec_augment(x[2:], lengths, torch.Generator().manual_seed(1), slice(2, 4), cfg)
    assert torch.equal(half, out[2:])


def test_frequency_warp_stretches_the_mel_axis_of_each_utterance() -> None:
    from archzoo.tasks.speech import warp_bands

    x = torch.arange(10.0).repeat(2, 3, 1)  # band f holds f, at every frame
    x[1, 2] = 0.0  # a padding frame
    assert torch.equal(warp_bands(x, torch.ones(2)), x)
    out = warp_bands(x, torch.tensor([0.5, 1.2]))
    assert torch.allclose(out[0, 0], torch.arange(10.0) * 0.5)  # band f reads band f / 2
    assert torch.allclose(out[1, 0], (torch.arange(10.0) * 1.2).clamp(max=9))  # read past the top: the top band
    assert torch.equal(out[1, 2], torch.zeros(10))  # padding stays zero
    cfg = SpeechConfig(freq_masks=0, time_masks=0, freq_warp=0.2)
    lengths = torch.tensor([3, 3, 3, 3])
    full = spec_augment(torch.arange(10.0).repeat(4, 3, 1), lengths, torch.Generator().manual_seed(3), slice(0, 4), cfg)
    assert not torch.equal(full[0], full[1])  # a factor per utterance
    half = spec_augment(torch.arange(10.0).repeat(2, 3, 1), lengths, torch.Generator().manual_seed(3), slice(2, 4), cfg)
    assert torch.equal(half, full[2:])
    plain = SpeechConfig(freq_masks=2, time_masks=2)
    warped = SpeechConfig(freq_masks=2, time_masks=2, freq_warp=1e-9)  # the same masks as without the warp
    ones = torch.ones(4, 12, 10)
    assert torch.equal(spec_augment(ones, lengths * 4, torch.Generator().manual_seed(4), slice(0, 4), plain) == 0,
                       spec_augment(ones, lengths * 4, torch.Generator().manual_seed(4), slice(0, 4), warped) == 0)


def test_config_mistakes_are_one_line_errors() -> None:
    for make in (lambda: SpokenDigitsConfig(features="fbank"), lambda: SpokenDigitsConfig(augment="mixup"),
                 lambda: SpokenDigitsConfig(val_size=0), lambda: SpokenDigitsConfig(freq_warp=0.6),
                 lambda: SpokenDigitsConfig(features="mfcc", freq_warp=0.1),
                 lambda: ConnectedDigitsConfig(min_digits=5, max_digits=3), lambda: SpokenDigitsConfig(hop_ms=40.0),
                 lambda: SpokenDigitsConfig(speeds=(0.9, 0.9)), lambda: SpokenDigitsConfig(speeds=(3.0,)),
                 lambda: SpokenDigitsConfig(speeds=()), lambda: SpokenDigitsConfig(top_db=0.0),
                 lambda: SpokenDigitsConfig(trim_db=-1.0)):
        with pytest.raises(UserError) as excinfo:
            make()
        assert "\n" not in str(excinfo.value)


@pytest.fixture(scope="module")
def digits() -> SpokenDigits:
    task = SpokenDigits(SpokenDigitsConfig(), SHARED_DATA)  # module scope: before the per-test ARCHZOO_DATA
    task.split("train")
    return task


@needs_spoken_digits
def test_the_standard_split_keeps_index_0_to_4_for_test(digits: SpokenDigits) -> None:
    sizes = {name: len(digits.clips[name]) for name in ("train", "val", "test")}
    assert sizes == {"train": 2430, "val": 270, "test": 300}
    assert all(c.index <= 4 for c in digits.clips["test"]) and all(c.index >= 5 for c in digits.clips["val"])
    files = [{(c.digit, c.speaker, c.index) for c in digits.clips[n]} for n in ("train", "val", "test")]
    assert not (files[0] & files[1] or files[0] & files[2] or files[1] & files[2])
    feats, frames, labels = digits.split("test")
    assert feats.shape[2] == 40 and labels.bincount().tolist() == [30] * 10
    real = torch.arange(feats.shape[1])[None, :] < frames[:, None]
    assert (feats[~real] == 0).all()  # padding is zero; real frames are normalised per utterance
    torch.testing.assert_close(feats[0, :int(frames[0])].mean(0), torch.zeros(40), atol=1e-4, rtol=0)


@needs_spoken_digits
def test_leave_one_speaker_out_tests_on_a_speaker_never_seen() -> None:
    task = SpokenDigits(SpokenDigitsConfig(holdout_speaker="theo"))
    task.split("test")
    assert len(task.clips["test"]) == 500 and {c.speaker for c in task.clips["test"]} == {"theo"}
    assert "theo" not in {c.speaker for c in task.clips["train"] + task.clips["val"]}
    with pytest.raises(UserError, match="none of the speakers"):
        SpokenDigits(SpokenDigitsConfig(holdout_speaker="alice")).split("test")


@needs_spoken_digits
def test_speed_perturbation_multiplies_only_the_training_recordings_and_trimming_shortens_them(digits: SpokenDigits) -> None:
    task = SpokenDigits(SpokenDigitsConfig(speeds=(0.9, 1.0, 1.1), trim_db=30.0), SHARED_DATA)
    sizes = {name: len(task.split(name)[1]) for name in ("train", "val", "test")}
    assert sizes == {"train": 3 * 2430, "val": 270, "test": 300}
    frames = task.split("train")[1].view(3, 2430).float().mean(1)  # slower recordings are longer
    assert frames[0] > frames[1] > frames[2]
    assert torch.equal(task.split("train")[2].view(3, 2430)[0], digits.split("train")[2])
    assert (task.split("test")[1] <= digits.split("test")[1]).all()  # trimmed
    assert task.split("test")[1].sum() < digits.split("test")[1].sum()


@needs_spoken_digits
def test_connected_utterances_are_deterministic_and_use_only_their_splits_recordings() -> None:
    task = ConnectedDigits(ConnectedDigitsConfig())
    pools = task.pools()
    assert sum(len(v) for v in pools["test"].values()) == 300 and sum(len(v) for v in pools["val"].values()) == 300
    wave, digits = task.compose("test", 7)
    again, same = task.compose("test", 7)
    assert torch.equal(wave, again) and digits == same and 3 <= len(digits) <= 7
    other = task.compose("train", 7)
    assert not (len(other[0]) == len(wave) and torch.equal(other[0], wave))
    # every non-silent stretch of a test utterance is a test recording
    test_takes = {tuple(t[:50].tolist()) for takes in pools["test"].values() for t in takes}
    train_takes = {tuple(t[:50].tolist()) for takes in pools["train"].values() for t in takes}
    assert not test_takes & train_takes
    assert pool_of(type("C", (), {"index": 4})()) == "test" and pool_of(type("C", (), {"index": 10})()) == "train"
    # training utterances differ from epoch to epoch
    first, second = task.epoch_order(0, 0, 32), task.epoch_order(1, 0, 32)
    assert set(first.tolist()).isdisjoint(second.tolist())
    feats, frames, targets, target_lengths = task.train_batch(first[:4], slice(0, 4), seed=5)
    assert feats.shape[0] == 4 and ((targets > 0).sum(1) == target_lengths).all() and (targets <= 10).all()
    with pytest.raises(UserError, match="no fixed train split"):
        task.split("train")


@needs_spoken_digits
@pytest.mark.parametrize(("preset", "overrides", "metric"), [
    ("spoken-digits-cnn", ["model.args.channels=[8, 16]", "model.args.time_strides=[2, 2]", "data.augment='none'",
                           "train.lr=0.01", "train.schedule='constant'"], "accuracy"),
    ("connected-digits-bilstm", ["model.args.hidden_size=16", "model.args.num_layers=1", "data.train_utterances=64",
                                 "data.val_utterances=16", "data.test_utterances=16", "data.beam_size=2"], "digit_error_rate"),
])
def test_the_loss_falls_on_real_recordings(preset: str, overrides: list[str], metric: str, tmp_path: Path) -> None:
    cfg = resolve_config(preset, [*overrides, "train.max_steps=16", "train.batch_size=16", "train.log_every_steps=4",
                                  "train.eval_every_steps=16", "train.epochs=100"])
    result = Trainer(cfg, tmp_path / "run", progress=False, verbose=False).fit()
    losses = [r["loss"] for r in result.history if r["split"] == "train"]
    assert losses[-1] < losses[0] and metric in result.test
    assert (tmp_path / "run" / "eval.json").is_file()
