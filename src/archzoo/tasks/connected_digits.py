"""Connected spoken digits with CTC: utterances of 3-7 FSDD digits from one speaker, recognised by a
(Bi)LSTM-CTC and decoded greedily or by prefix beam search.

How utterances are built (``compose``): a speaker is drawn uniformly, then a count n in [min_digits,
max_digits], then n digits uniformly from 0-9; each digit is a recording of that speaker and digit drawn
uniformly from the split's pool, and silence (zeros) of a duration drawn uniformly from [min_gap_ms,
max_gap_ms] goes before, between and after the digits. Each utterance is a function of (utterance_seed,
split, utterance number) alone. Pools: test utterances use only test recordings (index 0-4), validation
ones only index 5-9, training ones only index 10-49, so no recording crosses splits. The validation
(``val_utterances``) and test (``test_utterances``) sets are fixed; training utterances are new in every
epoch (utterance numbers epoch x train_utterances + i): an endless, reproducible supply.

Classes: 0 is the CTC blank, 1 + d is digit d. Scores: digit error rate (edit distance / reference
digits, over the whole set) and sentence accuracy (every digit right).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.data.audio import Clip, load_spoken_digits, seconds_to_samples
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.tasks.base import check_count, random_order, register_task, step_seed
from archzoo.tasks.ctc import error_rates, greedy_decode, prefix_beam_search
from archzoo.tasks.speech import SpeechConfig, SpeechTask, Transcripts, trim

BLANK = 0
SPLIT_CODES = {"train": 1, "val": 2, "test": 3}  # folded into each utterance's seed


@dataclass(frozen=True)
class ConnectedDigitsConfig(SpeechConfig):
    min_digits: int = 3
    max_digits: int = 7
    min_gap_ms: float = 50.0
    max_gap_ms: float = 300.0
    train_utterances: int = 4000  # per epoch, composed afresh every epoch
    val_utterances: int = 300
    test_utterances: int = 500
    utterance_seed: int = 0
    beam_size: int = 8  # prefix beam search in the report and `archzoo transcribe` (1: greedy only in the report)
    max_seconds: float = 20.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.min_digits <= self.max_digits:
            raise UserError(f"need 1 <= data.min_digits <= data.max_digits, got {self.min_digits}, {self.max_digits}")
        if not 0 <= self.min_gap_ms <= self.max_gap_ms:
            raise UserError(f"need 0 <= data.min_gap_ms <= data.max_gap_ms, got {self.min_gap_ms}, {self.max_gap_ms}")
        if min(self.train_utterances, self.val_utterances, self.test_utterances, self.beam_size) < 1:
            raise UserError("data.train_utterances, val_utterances, test_utterances and beam_size must be >= 1")


def pool_of(clip: Clip) -> str:
    """The split whose utterances may use ``clip``: test (index 0-4), val (5-9) or train (10-49)."""
    return "test" if clip.index <= 4 else "val" if clip.index <= 9 else "train"


@register_task("connected_digits")
class ConnectedDigits(SpeechTask):
    Config = ConnectedDigitsConfig
    primary_metric = "digit_error_rate"
    higher_is_better = False
    cfg: ConnectedDigitsConfig

    def __init__(self, cfg: ConnectedDigitsConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        self._pools: dict[str, dict[tuple[str, int], list[Tensor]]] = {}
        self._speakers: list[str] = []
        self.references: dict[str, list[list[int]]] = {}  # each fixed split's digit strings

    # -- utterances -----------------------------------------------------------------------------
    def pools(self) -> dict[str, dict[tuple[str, int], list[Tensor]]]:
        """Recordings by split, then by (speaker, digit), read once."""
        if not self._pools:
            clips = load_spoken_digits(self.cfg.dataset, self.data_dir)
            self._speakers = sorted({c.speaker for c in clips})
            for clip in clips:
                self._pools.setdefault(pool_of(clip), {}).setdefault((clip.speaker, clip.digit), []).append(clip.waveform)
        return self._pools

    def compose(self, split: str, number: int) -> tuple[Tensor, list[int]]:
        """Utterance ``number`` of ``split``: its waveform (S,) and its digits, a function of the seed alone."""
        cfg, pool = self.cfg, self.pools()[split]
        g = torch.Generator().manual_seed(step_seed(cfg.utterance_seed * 10 + SPLIT_CODES[split], number))
        speaker = self._speakers[int(torch.randint(len(self._speakers), (1,), generator=g))]
        count = int(torch.randint(cfg.min_digits, cfg.max_digits + 1, (1,), generator=g))
        digits = torch.randint(10, (count,), generator=g).tolist()
        gaps = cfg.min_gap_ms + (cfg.max_gap_ms - cfg.min_gap_ms) * torch.rand(count + 1, generator=g)
        parts = []
        for i, digit in enumerate(digits):
            takes = pool[(speaker, digit)]
            parts += [torch.zeros(seconds_to_samples(float(gaps[i]) / 1000, self.sample_rate)),
                      takes[int(torch.randint(len(takes), (1,), generator=g))]]
        parts.append(torch.zeros(seconds_to_samples(float(gaps[-1]) / 1000, self.sample_rate)))
        return torch.cat(parts), digits

    def utterances(self, split: str, numbers: list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Frames (N, T, F), lengths (N,), targets (N, max_digits) padded with the blank, target lengths (N,)."""
        waveforms, digit_lists = zip(*(self.compose(split, n) for n in numbers), strict=True)
        feats, frames = self.featurize(list(waveforms))
        targets = torch.full((len(numbers), self.cfg.max_digits), BLANK, dtype=torch.long)
        for i, digits in enumerate(digit_lists):
            targets[i, :len(digits)] = torch.tensor(digits) + 1
        lengths = torch.tensor([len(d) for d in digit_lists])
        return feats, frames, targets.to(self.device), lengths.to(self.device)

    def _load(self, name: str) -> None:
        if name == "train":
            raise UserError("connected_digits composes its training utterances batch by batch, so there is no "
                            "fixed train split to evaluate; evaluate val or test")
        count = self.cfg.val_utterances if name == "val" else self.cfg.test_utterances
        feats, frames, targets, target_lengths = self.utterances(name, list(range(count)))
        self._splits[name] = (feats, frames, targets)
        self.references[name] = [t[:n].tolist() for t, n in zip(targets.cpu() - 1, target_lengths.cpu(), strict=True)]

    # -- the trainer contract --------------------------------------------------------------------
    def model_args(self) -> dict[str, Any]:
        return {**super().model_args(), "num_classes": 1 + len(self.classes)}  # the blank and ten digits

    def num_train_examples(self) -> int:
        return self.cfg.train_utterances

    def epoch_order(self, epoch: int, seed: int, batch_size: int) -> Tensor:
        """New utterances every epoch: numbers epoch x N .. epoch x N + N - 1, in a seeded order."""
        n = self.cfg.train_utterances
        return random_order(n, seed, epoch) + epoch * n

    def train_batch(self, indices: Tensor, shard: slice, seed: int) -> tuple[Tensor, ...]:
        everyone = indices.tolist()
        feats, frames, targets, target_lengths = self.utterances("train", everyone[shard])
        # SpecAugment draws for every row of the global batch, each row's masks from its own length only;
        # this shard knows its own rows' lengths, and the other rows' (placeholders) never reach it
        lengths = torch.full((len(everyone),), int(frames.max()), device=frames.device)
        lengths[shard] = frames
        return self.augment(feats, lengths, seed, shard), frames, targets, target_lengths

    def log_probs(self, model: nn.Module, feats: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Per-frame log-probabilities (B, T', 11), float32, and output lengths (B,)."""
        logits, out_lengths = model(trim(feats, frames), frames)
        return logits.float().log_softmax(2), out_lengths

    def loss(self, model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        """CTC loss (Graves et al. 2006), each utterance's divided by its digit count, averaged."""
        feats, frames, targets, target_lengths = batch
        log_probs, out_lengths = self.log_probs(model, feats, frames)
        return F.ctc_loss(log_probs.transpose(0, 1), targets, out_lengths, target_lengths, blank=BLANK)

    @torch.no_grad()
    def decode(self, model: nn.Module, split: str, batch_size: int, beam_size: int = 1
               ) -> tuple[list[list[int]], float]:
        """Digit strings of every utterance of ``split`` (greedy, or prefix beam search with beam_size > 1)
        and the mean CTC loss per digit (the training loss's normalisation)."""
        model.eval()
        feats, frames, targets = self.split(split)
        hypotheses, losses = [], []
        for i in range(0, len(frames), batch_size):
            log_probs, out_lengths = self.log_probs(model, feats[i:i + batch_size], frames[i:i + batch_size])
            target_lengths = (targets[i:i + batch_size] != BLANK).sum(1)
            nll = F.ctc_loss(log_probs.transpose(0, 1), targets[i:i + batch_size], out_lengths, target_lengths,
                             blank=BLANK, reduction="none")
            losses.append((nll / target_lengths).sum().item())  # per digit, as the training loss
            if beam_size == 1:
                hypotheses += greedy_decode(log_probs, out_lengths, BLANK)
            else:
                hypotheses += [prefix_beam_search(lp[:n], beam_size, BLANK)[0][0]
                               for lp, n in zip(log_probs, out_lengths, strict=True)]
        return [[c - 1 for c in h] for h in hypotheses], sum(losses) / len(frames)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        hypotheses, loss = self.decode(model, split, batch_size)
        rates = error_rates(self.references[split], hypotheses)
        return {"loss": loss, "digit_error_rate": rates["error_rate"], "sentence_accuracy": rates["sentence_accuracy"]}

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        lines = [f"connected digits ({result['examples']} test utterances of {self.cfg.min_digits}-{self.cfg.max_digits} "
                 f"digits, {result['digits']} digits): digit error rate {result['digit_error_rate']:.4f}, sentence "
                 f"accuracy {result['sentence_accuracy']:.4f} (beam {result['beam_size']}); greedy: "
                 f"{result['greedy']['digit_error_rate']:.4f} / {result['greedy']['sentence_accuracy']:.4f}",
                 "sentence accuracy by digit count:"]
        lines += [f"  {n} digits  {acc:.4f}" for n, acc in result["sentence_accuracy_by_length"].items()]
        return lines + [f"errors: {', '.join(e['reference'] + '->' + e['hypothesis'] for e in result['errors'][:8])}"
                        if result["errors"] else "errors: none"]

    @torch.no_grad()
    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        """Test scores with greedy and beam-search decoding, sentence accuracy by digit count, the errors,
        and a plot of one test utterance's features and per-frame digit posteriors."""
        from archzoo.viz.plots import plot_ctc_posteriors

        self.split("test")
        refs = self.references["test"]
        greedy, loss = self.decode(model, "test", batch_size)
        beam = self.decode(model, "test", batch_size, self.cfg.beam_size)[0] if self.cfg.beam_size > 1 else greedy
        rates, greedy_rates = error_rates(refs, beam), error_rates(refs, greedy)
        by_length = {n: sum(r == h for r, h in zip(refs, beam, strict=True) if len(r) == n)
                     / max(1, sum(len(r) == n for r in refs)) for n in range(self.cfg.min_digits, self.cfg.max_digits + 1)}
        text = lambda digits: "".join(map(str, digits)) or "(nothing)"
        errors = [{"utterance": i, "reference": text(r), "hypothesis": text(h)}
                  for i, (r, h) in enumerate(zip(refs, beam, strict=True)) if r != h]
        feats, frames, _ = self.split("test")
        log_probs, out_lengths = self.log_probs(model.eval(), feats[:1], frames[:1])
        plot_ctc_posteriors(feats[0, :int(frames[0])].cpu(), log_probs[0, :int(out_lengths[0])].exp().cpu(),
                            ["blank", *self.classes], out_dir / "ctc_posteriors.png",
                            f"test utterance 0: reference {text(refs[0])}, recognised {text(beam[0])}")
        result = {
            "split": "test", "examples": len(refs), "digits": sum(map(len, refs)), "loss": loss,
            "beam_size": self.cfg.beam_size, "digit_error_rate": rates["error_rate"],
            "sentence_accuracy": rates["sentence_accuracy"],
            "greedy": {"digit_error_rate": greedy_rates["error_rate"], "sentence_accuracy": greedy_rates["sentence_accuracy"]},
            "sentence_accuracy_by_length": by_length, "errors": errors,
        }
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        return result

    def transcribe(self, model: nn.Module, files: list[str | Path], top: int = 3, beam: int | None = None,
                   posteriors: bool = False) -> Transcripts:
        """The digit string spoken in each file: the ``top`` best beams (at most ``beam``) of prefix beam
        search of width ``beam`` (default ``data.beam_size``), or with ``beam=1`` the greedy best-path
        reading alone; with ``posteriors``, the feature frames and per-frame posteriors for
        ``Transcripts.plot``. The reading does not depend on ``top``."""
        if beam is not None:
            check_count("--beam", beam, 1, 1000, "use a narrower beam")
        return self.recognise(model, files, top, posteriors, beam=beam or self.cfg.beam_size)

    def readings(self, model: nn.Module, feats: Tensor, frames: Tensor, top: int, beam: int = 8
                 ) -> tuple[list[list[tuple[str, float]]], list[Tensor]]:
        """Each recording's recognised digit strings: the ``top`` best beams of prefix beam search ``beam``
        wide, or with ``beam=1`` the greedy reading with its probability p(labels | audio) (CTC's sum over
        every alignment); and each recording's per-frame posteriors."""
        log_probs, out_lengths = self.log_probs(model, feats, frames)
        log_probs = log_probs.float()
        text = lambda labels: "".join(str(c - 1) for c in labels)  # noqa: E731
        if beam == 1:
            best = greedy_decode(log_probs, out_lengths, BLANK)
            targets = torch.tensor([c for labels in best for c in labels], dtype=torch.long, device=log_probs.device)
            nll = F.ctc_loss(log_probs.transpose(0, 1), targets, out_lengths, torch.tensor([len(b) for b in best]),
                             blank=BLANK, reduction="none")
            readings = [[(text(labels), math.exp(-float(n)))] for labels, n in zip(best, nll, strict=True)]
        else:
            readings = [[(text(labels), math.exp(score)) for labels, score in
                         prefix_beam_search(lp[:n], beam, BLANK)[:top]]
                        for lp, n in zip(log_probs, out_lengths, strict=True)]
        return readings, [lp[:n].exp().cpu() for lp, n in zip(log_probs, out_lengths, strict=True)]
