"""Machine translation (Multi30K): teacher-forced training with label smoothing, greedy and beam-search
decoding, sacreBLEU and chrF on detokenised output, perplexity, and BLEU by source length.

The task owns the tokenizers (trained on the training split when a run starts and saved in its
config), the padded id tensors of every split and all decoding; models only compute logits
(models/seq2seq.py). Scores are sacreBLEU's defaults (13a tokenisation, case-sensitive) on the
tokenizer's detokenised output against the untouched reference lines, with the signature printed.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.data.sentences import trim
from archzoo.data.sources import DATASETS
from archzoo.data.translation import (
    TOKENIZER_KINDS,
    Tokenizer,
    build_tokenizer,
    encode_pairs,
    load_parallel,
    pad_ids,
    tokenizer_from_string,
)
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.tasks.base import Task, TensorPairSplits, check_count, length_buckets, model_device, register_task
from archzoo.tasks.decoding import Decoded, decode
from archzoo.vocab import BOS_ID, EOS_ID, PAD_ID

# What an empty input is told to look like, per language
EXAMPLES = {"de": "Ein Mann fährt Fahrrad.", "en": "A man rides a bike.", "fr": "Un homme fait du vélo.",
            "cs": "Muž jede na kole."}
# Source-length buckets (words, by whitespace) for the BLEU-by-length plot: [low, high) each
LENGTH_BUCKETS = ((1, 10), (10, 15), (15, 20), (20, 25), (25, 1000))


@dataclass(frozen=True)
class TranslationConfig:
    dataset: str = "multi30k"
    source: str = "de"
    target: str = "en"
    tokenizer: str = "bpe"  # bpe (sentencepiece, one model per language) | word
    vocab_size: int = 8000  # bpe: pieces per language
    min_freq: int = 2  # word: rarer training words map to <unk>
    lowercase: bool = False
    max_tokens: int = 100  # longer sentences are truncated (training pairs silently, user input with a warning)
    max_train_pairs: int = 0  # 0: every training pair; else the first N (quick runs, tests)
    max_eval_pairs: int = 0  # 0: every validation and test pair; else the first N of each (quick runs, tests)
    label_smoothing: float = 0.1  # Szegedy et al. 2016; Vaswani et al. 2017 use 0.1
    teacher_forcing: float = 1.0  # probability that the decoder reads the true previous token
    beam_size: int = 5  # decoding of the test report and of `archzoo translate`; validation decodes greedily
    length_penalty: float = 1.0  # GNMT's alpha
    # alphas to choose from by validation beam BLEU before the test report (Wu et al. 2016 tuned alpha
    # on their development set); empty: use length_penalty
    length_penalties: tuple[float, ...] = ()
    max_len_a: float = 1.5  # outputs stop at max_len_a * source tokens + max_len_b
    max_len_b: int = 10
    decode_batch_size: int = 200
    test_sets: tuple[str, ...] = ("test2016", "test2017", "test2018")
    source_tokenizer: str = ""  # resolved from the training split when a run starts and saved with it
    target_tokenizer: str = ""

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZER_KINDS:
            raise UserError(f"data.tokenizer must be one of {', '.join(TOKENIZER_KINDS)}, got {self.tokenizer!r}")
        if self.vocab_size < 16 or self.min_freq < 1 or self.max_tokens < 2 or min(self.max_train_pairs,
                                                                                     self.max_eval_pairs) < 0:
            raise UserError("data.vocab_size must be >= 16, data.min_freq >= 1, data.max_tokens >= 2 and "
                            "data.max_train_pairs and data.max_eval_pairs >= 0")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.teacher_forcing <= 1:
            raise UserError("data.label_smoothing must be in [0, 1) and data.teacher_forcing in [0, 1]")
        if any(alpha < 0 for alpha in (self.length_penalty, *self.length_penalties)):
            raise UserError("data.length_penalty and data.length_penalties must be >= 0 (GNMT's alpha; 0 is no penalty)")
        if self.beam_size < 1 or self.max_len_a < 0 or self.max_len_b < 1 or self.decode_batch_size < 1:
            raise UserError("data.beam_size, data.max_len_b and data.decode_batch_size must be >= 1, "
                            "data.max_len_a >= 0")


def max_output_len(cfg: TranslationConfig, src: Tensor) -> Tensor:
    """Each source's output limit (B,): max_len_a x its tokens + max_len_b (fairseq's rule)."""
    return ((src != PAD_ID).sum(1) * cfg.max_len_a).long() + cfg.max_len_b


def sacrebleu_scores(hypotheses: list[str], references: list[str]) -> dict[str, Any]:
    """Corpus sacreBLEU and chrF of detokenised hypotheses against one reference each, with signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(), CHRF()
    b, c = bleu.corpus_score(hypotheses, [references]), chrf.corpus_score(hypotheses, [references])
    return {"bleu": b.score, "chrf": c.score, "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature()), "bleu_detail": str(b)}


def bleu_by_length(sources: list[str], hypotheses: list[str], references: list[str]) -> list[tuple[str, float, int]]:
    """(bucket label, corpus sacreBLEU, sentence count) per source-length bucket (LENGTH_BUCKETS)."""
    from sacrebleu.metrics import BLEU

    out = []
    for low, high in LENGTH_BUCKETS:
        idx = [i for i, s in enumerate(sources) if low <= len(s.split()) < high]
        label = f"{low}-{high - 1}" if high < 1000 else f"{low}+"
        score = BLEU().corpus_score([hypotheses[i] for i in idx], [[references[i] for i in idx]]).score if idx else 0.0
        out.append((label, score, len(idx)))
    return out


def token_label(tokenizer: Tokenizer, token_id: int) -> str:
    """An axis label for one id: its text, "</s>" for EOS, "▁" for a piece that is only a space."""
    return "</s>" if token_id == EOS_ID else tokenizer.decode([token_id]) or "▁"


@dataclass
class Translations:
    """Translations of user sentences (``Run.translate``), notes for the user (cut sentences) and, when
    asked for, one sentence's attention weights: (T, S) for additive attention, (T, L, H, S) for a
    Transformer's cross-attention (decoder layer L, head H), over the output and source tokens."""

    sources: list[str]
    texts: list[str]
    notes: list[str]
    model: str
    attention: Tensor | None = None
    source_tokens: list[str] = field(default_factory=list)
    output_tokens: list[str] = field(default_factory=list)

    def save(self, path: Path) -> Path:
        atomic_write_text(path, "\n".join(self.texts) + "\n")
        return Path(path)

    def plot_attention(self, path: Path, layer: int = -1, head: int = -1) -> Path:
        """The heatmap of output steps x source tokens; for the Transformer one decoder layer's
        cross-attention, one head or (head -1) the mean of the heads."""
        from archzoo.viz.plots import plot_attention

        if self.attention is None:
            raise UserError("no attention was kept; translate one sentence with attention=True")
        weights, title = self.attention, self.model
        if weights.dim() == 4:
            layers, heads = weights.shape[1], weights.shape[2]
            if not -layers <= layer < layers or not -1 <= head < heads:
                raise UserError(f"--layer must be in [{-layers}, {layers - 1}] and --head in [0, {heads - 1}] "
                                "(or -1 for the mean of the heads)")
            weights = weights[:, layer]
            weights = weights.mean(1) if head == -1 else weights[:, head]
            title += f", decoder layer {layer % layers}, " + ("mean of heads" if head == -1 else f"head {head}")
        return plot_attention(weights, self.source_tokens, self.output_tokens, Path(path), title)


@register_task("translation")
class Translation(TensorPairSplits, Task):
    Config = TranslationConfig
    primary_metric = "bleu"
    higher_is_better = True
    verbs = ("translate",)

    def __init__(self, cfg: TranslationConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        DATASETS.get(cfg.dataset)  # an unknown dataset raises its one line here
        self.src_tok: Tokenizer | None = tokenizer_from_string(cfg.source_tokenizer) if cfg.source_tokenizer else None
        self.tgt_tok: Tokenizer | None = tokenizer_from_string(cfg.target_tokenizer) if cfg.target_tokenizer else None
        self.device = torch.device("cpu")
        self._splits: dict[str, tuple[Tensor, Tensor]] = {}
        self._text: dict[str, tuple[list[str], list[str]]] = {}

    @property
    def pair(self) -> str:
        return f"{self.cfg.source}-{self.cfg.target}"

    # -- data ----------------------------------------------------------------------------------
    def text(self, split: str) -> tuple[list[str], list[str]]:
        """(source, reference) sentences of a split, untouched (references are what BLEU compares to)."""
        if split not in self._text:
            sources, targets = load_parallel(self.cfg.dataset, self.cfg.source, self.cfg.target, split, self.data_dir)
            limit = self.cfg.max_train_pairs if split == "train" else self.cfg.max_eval_pairs
            if limit:
                sources, targets = sources[:limit], targets[:limit]
            self._text[split] = (sources, targets)
        return self._text[split]

    def _tokenizers(self) -> tuple[Tokenizer, Tokenizer]:
        if self.src_tok is None or self.tgt_tok is None:
            sources, targets = self.text("train")
            cfg = self.cfg
            self.src_tok = build_tokenizer(cfg.tokenizer, sources, cfg.vocab_size, cfg.min_freq, cfg.lowercase)
            self.tgt_tok = build_tokenizer(cfg.tokenizer, targets, cfg.vocab_size, cfg.min_freq, cfg.lowercase)
        return self.src_tok, self.tgt_tok

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """Padded ids of a split: sources (N, S) ending in EOS, targets (N, T) BOS ... EOS."""
        if name not in self._splits:
            src_tok, tgt_tok = self._tokenizers()
            sources, targets = self.text(name)
            src, tgt = encode_pairs(src_tok, tgt_tok, sources, targets, self.cfg.max_tokens)
            self._splits[name] = (pad_ids(src).to(self.device), pad_ids(tgt).to(self.device))
        return self._splits[name]

    def verify_data(self) -> None:
        """Read (and so checksum) the two languages' files of every split the run uses, tests included."""
        for split in ("train", "val", *self.cfg.test_sets):
            self.text(split)

    def has_split(self, name: str) -> bool:
        return name in ("train", "val")

    # -- the trainer contract --------------------------------------------------------------------
    def resolved_config(self) -> TranslationConfig:
        src_tok, tgt_tok = self._tokenizers()
        return replace(self.cfg, source_tokenizer=src_tok.to_string(), target_tokenizer=tgt_tok.to_string())

    def model_args(self) -> dict[str, Any]:
        src_tok, tgt_tok = self._tokenizers()
        # every tokenizer holds PAD, UNK, BOS and EOS at the vocabulary's special ids
        return {"src_vocab_size": len(src_tok), "tgt_vocab_size": len(tgt_tok), "pad_id": PAD_ID, "bos_id": BOS_ID,
                "eos_id": EOS_ID}

    def epoch_order(self, epoch: int, seed: int, batch_size: int) -> torch.Tensor:
        """Batches of similar source lengths (less padding), in an order that depends only on (seed, epoch)."""
        lengths = (self.split("train")[0] != PAD_ID).sum(1).cpu()
        return length_buckets(lengths, batch_size, seed, epoch)

    def train_batch(self, indices: Tensor, shard: slice, seed: int) -> tuple[Tensor, ...]:
        src, tgt = self.split("train")
        mine = indices.to(self.device)[shard]
        src_b, tgt_b = trim(src[mine]), trim(tgt[mine])
        if self.cfg.teacher_forcing >= 1.0:
            return src_b, tgt_b
        # scheduled sampling: drawn over the whole global batch, each shard its slice
        draw = torch.rand(len(indices), tgt.shape[1], generator=torch.Generator().manual_seed(seed))
        sample_mask = (draw[shard, :tgt_b.shape[1] - 1] >= self.cfg.teacher_forcing).to(self.device)
        return src_b, tgt_b, sample_mask

    def loss(self, model: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        """Cross-entropy of the next target token, label-smoothed, over real (non-padding) tokens.

        Math: L = -Σ_t [(1 - ε) log p(y_t | y_<t, x) + ε/V Σ_v log p(v | y_<t, x)] / #tokens
        Reference: Szegedy et al. 2016, arXiv:1512.00567, Sec. 7; Vaswani et al. 2017, Sec. 5.4.
        """
        src, tgt = batch[:2]
        logits = model(src, tgt[:, :-1], batch[2] if len(batch) > 2 else None)
        return F.cross_entropy(logits.float().flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD_ID,
                               label_smoothing=self.cfg.label_smoothing)

    @torch.no_grad()
    def teacher_forced_loss(self, model: nn.Module, split: str, batch_size: int) -> float:
        """Mean per-token cross-entropy (no smoothing) with the true previous tokens; exp of it is the perplexity."""
        model.eval()
        src, tgt = self.split(split)
        total, count = 0.0, 0
        for i in range(0, len(src), batch_size):
            s, t = trim(src[i:i + batch_size]), trim(tgt[i:i + batch_size])
            logits = model(s, t[:, :-1]).float()
            total += F.cross_entropy(logits.flatten(0, 1), t[:, 1:].flatten(), ignore_index=PAD_ID,
                                     reduction="sum").item()
            count += int((t[:, 1:] != PAD_ID).sum())
        return total / max(count, 1)

    # -- decoding ----------------------------------------------------------------------------------
    @torch.no_grad()
    def decode_ids(self, model: nn.Module, src: Tensor, beam_size: int, need_weights: bool = False,
                   length_penalty: float | None = None) -> Decoded:
        """Decode padded source ids (N, S) in batches of similar length; results in the input order.
        ``length_penalty`` defaults to data.length_penalty."""
        model.eval()
        alpha = self.cfg.length_penalty if length_penalty is None else length_penalty
        lengths = (src != PAD_ID).sum(1)
        order = lengths.argsort(descending=True, stable=True)
        parts: list[Decoded] = []
        bs = self.cfg.decode_batch_size
        for i in range(0, len(src), bs):
            chunk = trim(src[order[i:i + bs]])
            parts.append(decode(model, chunk, beam_size, max_output_len(self.cfg, chunk), alpha, need_weights))
        width = max(p.tokens.shape[1] for p in parts)
        tokens = torch.cat([F.pad(p.tokens, (0, width - p.tokens.shape[1]), value=PAD_ID) for p in parts])
        scores = torch.cat([p.scores for p in parts])
        unorder = order.argsort()
        attention = None
        if need_weights and parts[0].attention is not None:
            if len(parts) > 1:
                raise UserError("attention maps are drawn for one batch of sentences at a time")
            attention = parts[0].attention[unorder]
        return Decoded(tokens[unorder], scores[unorder], parts[0].pad_id, parts[0].eos_id, attention)

    def detokenize(self, decoded: Decoded) -> list[str]:
        assert self.tgt_tok is not None
        return [self.tgt_tok.decode(row) for row in decoded.rows()]

    def encode_sources(self, sentences: list[str]) -> tuple[Tensor, list[int]]:
        """Padded source ids (B, S) of user sentences and the indices of those truncated to
        ``max_tokens``; an empty sentence raises one line naming it."""
        src_tok, _ = self._tokenizers()
        rows, truncated = [], []
        for i, sentence in enumerate(sentences):
            ids = src_tok.encode(sentence)
            if not sentence.strip() or not ids:
                raise UserError(f"sentence {i + 1} is empty; give a {self.cfg.source} sentence such as "
                                f"{EXAMPLES.get(self.cfg.source, EXAMPLES['en'])!r}")
            if len(ids) + 1 > self.cfg.max_tokens:
                ids, truncated = ids[:self.cfg.max_tokens - 1], [*truncated, i]
            rows.append([*ids, EOS_ID])
        return pad_ids(rows).to(self.device), truncated

    @torch.no_grad()
    def translate(self, model: nn.Module, sentences: str | list[str], beam: int | None = None,
                  length_penalty: float | None = None, attention: bool = False, source: str | None = None,
                  target: str | None = None) -> Translations:
        """Translate user sentences (one string or a list) by beam search of width ``beam`` (default
        data.beam_size; 1 decodes greedily) with GNMT's ``length_penalty`` (default data.length_penalty).
        Sentences longer than data.max_tokens are cut, with a note. ``attention`` keeps the attention
        weights of a single sentence for ``Translations.plot_attention``. ``source`` and ``target``, when
        given, must be the run's languages."""
        for flag, wanted, trained in (("--from", source, self.cfg.source), ("--to", target, self.cfg.target)):
            if wanted and wanted != trained:
                raise UserError(f"{flag} {wanted}: this run translates {self.pair.replace('-', ' -> ')}; train a run for "
                                "that pair (--set data.source=... --set data.target=...) or use one")
        items = [sentences] if isinstance(sentences, str) else sentences
        if not isinstance(items, list | tuple) or not items or not all(isinstance(t, str) for t in items):
            raise UserError(f"translate takes a {self.cfg.source} sentence or a list of them (strings), got "
                            f"{type(sentences).__name__}" + (" (empty)" if isinstance(items, list | tuple) and not items else ""))
        beam = self.cfg.beam_size if beam is None else check_count("--beam", beam, 1, 1000, "use a smaller beam")
        alpha = self.cfg.length_penalty if length_penalty is None else length_penalty
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha) or alpha < 0:
            raise UserError(f"the length penalty must be a finite number >= 0 (0 is no penalty), got {alpha}")
        if attention and len(items) != 1:
            raise UserError(f"attention is drawn for one sentence; got {len(items)}")
        if attention and model.attention_kind == "none":
            raise UserError(f"{type(model).__name__} has no attention to draw: it condenses the source into one "
                            "vector; use a seq2seq_attention or transformer_seq2seq run")
        self.to(model_device(model))
        src, truncated = self.encode_sources(list(items))
        notes = [f"warning: sentence {i + 1} has more than {self.cfg.max_tokens - 1} tokens; translated its first "
                 f"{self.cfg.max_tokens - 1} (data.max_tokens)" for i in truncated]
        decoded = self.decode_ids(model, src, beam, need_weights=attention, length_penalty=float(alpha))
        result = Translations(list(items), self.detokenize(decoded), notes, type(model).__name__)
        if attention:
            assert decoded.attention is not None, "models with attention return its weights"
            source_ids = [i for i in src[0].tolist() if i != PAD_ID]
            output_ids = decoded.tokens[0].tolist()
            output_ids = output_ids[:output_ids.index(EOS_ID) + 1] if EOS_ID in output_ids else output_ids
            assert self.src_tok is not None and self.tgt_tok is not None
            result.attention = decoded.attention[0, :len(output_ids), ..., :len(source_ids)].float().cpu()
            result.source_tokens = [token_label(self.src_tok, i) for i in source_ids]
            result.output_tokens = [token_label(self.tgt_tok, i) for i in output_ids]
        return result

    def verb_defaults(self, report: dict[str, Any]) -> dict[str, Any]:
        """``translate`` uses the length penalty that the test report chose on validation (data.length_penalties)."""
        alpha = report.get("length_penalty")
        return {"translate": {"length_penalty": float(alpha)}} if isinstance(alpha, int | float) else {}

    # -- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        """Validation: greedy sacreBLEU (the primary metric), chrF, teacher-forced loss and perplexity."""
        loss = self.teacher_forced_loss(model, split, batch_size)
        hypotheses = self.detokenize(self.decode_ids(model, self.split(split)[0], 1))
        scores = sacrebleu_scores(hypotheses, self.text(split)[1])
        return {"bleu": scores["bleu"], "chrf": scores["chrf"], "loss": loss, "perplexity": math.exp(min(loss, 50.0))}

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        lines = [f"{self.cfg.dataset} {self.pair}: sacreBLEU, beam {result['beam_size']} and greedy",
                 f"  signature {result['bleu_signature']}"]
        for name, r in result["test_sets"].items():
            lines.append(f"  {name:>9}: BLEU {r['beam']['bleu']:.2f} (greedy {r['greedy']['bleu']:.2f}), chrF "
                         f"{r['beam']['chrf']:.2f}, perplexity {r['perplexity']:.2f}; {r['greedy']['sentences_per_s']:.1f} "
                         f"sentences/s greedy, {r['beam']['sentences_per_s']:.1f} beam")
        return lines

    @torch.no_grad()
    def choose_length_penalty(self, model: nn.Module) -> tuple[float, dict[str, Any]]:
        """The alpha of data.length_penalties with the best validation beam BLEU (the first of equals),
        and the search's record; data.length_penalty with no search when the list is empty."""
        if not self.cfg.length_penalties or self.cfg.beam_size == 1:
            return self.cfg.length_penalty, {}
        if not self.has_split("val"):
            raise UserError(f"data.length_penalties are chosen on a validation split, which {self.cfg.dataset} "
                            "lacks; set one data.length_penalty instead")
        src, references = self.split("val")[0], self.text("val")[1]
        bleu = {alpha: sacrebleu_scores(self.detokenize(self.decode_ids(model, src, self.cfg.beam_size,
                                                                        length_penalty=alpha)), references)["bleu"]
                for alpha in self.cfg.length_penalties}
        best = max(bleu, key=lambda alpha: bleu[alpha])
        return best, {"length_penalty_search": {"split": "val", "val_beam_bleu": {str(a): b for a, b in bleu.items()}}}

    @torch.no_grad()
    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        """Every test set: greedy and beam sacreBLEU with chrF and speed, teacher-forced perplexity,
        the hypotheses as text files, and the BLEU-by-source-length plot of the first test set."""
        from archzoo.viz.plots import plot_bleu_by_length

        alpha, search = self.choose_length_penalty(model)
        result: dict[str, Any] = {"model": type(model).__name__, "pair": self.pair, "beam_size": self.cfg.beam_size,
                                  "length_penalty": alpha, **search, "test_sets": {}}
        for name in self.cfg.test_sets:
            sources, references = self.text(name)
            loss = self.teacher_forced_loss(model, name, batch_size)
            entry: dict[str, Any] = {"sentences": len(sources), "loss": loss, "perplexity": math.exp(min(loss, 50.0))}
            for label, beam in (("greedy", 1), ("beam", self.cfg.beam_size)):
                start = time.perf_counter()
                hypotheses = self.detokenize(self.decode_ids(model, self.split(name)[0], beam, length_penalty=alpha))
                seconds = time.perf_counter() - start
                scores = sacrebleu_scores(hypotheses, references)
                result["bleu_signature"] = scores.pop("bleu_signature")
                result["chrf_signature"] = scores.pop("chrf_signature")
                entry[label] = {**scores, "seconds": seconds, "sentences_per_s": len(sources) / seconds}
                atomic_write_text(out_dir / f"{name}.{label}.{self.cfg.target}", "\n".join(hypotheses) + "\n")
                if label == "beam":
                    entry["bleu_by_length"] = bleu_by_length(sources, hypotheses, references)
            result["test_sets"][name] = entry
        first = self.cfg.test_sets[0] if self.cfg.test_sets else None
        if first:
            headline = result["test_sets"][first]  # the figures `archzoo train` prints
            result |= {"split": first, "bleu": headline["beam"]["bleu"], "greedy_bleu": headline["greedy"]["bleu"],
                       "chrf": headline["beam"]["chrf"], "perplexity": headline["perplexity"]}
            buckets = result["test_sets"][first]["bleu_by_length"]
            plot_bleu_by_length({result["model"]: [(f"{label}\n(n={n})", b) for label, b, n in buckets]},
                                out_dir / "bleu_by_length.png", f"{self.pair} {first}, beam {self.cfg.beam_size}")
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        return result
