"""Character-level language modelling: next-character cross-entropy, nats/char, bits/char, perplexity.

Models take ids (B, T) and an optional state and return ``(logits (B, T, V), state)``; recurrent
models return their hidden state, so evaluation and generation carry it along (constant work per
character), and a stateless model returns ``None``.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.data.sources import DATASETS
from archzoo.data.text import END, CharVocab, load_text, read_corpus
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.tasks.base import Task, check_count, check_seed, model_device, register_task, step_seed
from archzoo.tasks.sampling import check_sampling, generate

IGNORE = -1  # target id of padding (names shorter than the longest)


@dataclass(frozen=True)
class LanguageModelConfig:
    dataset: str = "tinyshakespeare"  # a registered text dataset, or the path of a UTF-8 text file
    context: int = 128  # training window length: truncated back-propagation through time
    val_size: int = 1000  # line datasets: lines carved from train for validation (streams use the dataset's split)
    val_seed: int = 0
    eval_streams: int = 32  # streams: validation text cut into this many parallel streams, state carried
    carry_state: bool = False  # streams: train on consecutive windows of parallel lanes, state carried over
    vocab: str = ""  # resolved from the corpus when a run starts and saved with it

    def __post_init__(self) -> None:
        if self.context < 1 or self.eval_streams < 1 or self.val_size < 1:
            raise UserError("data.context, data.eval_streams and data.val_size must be >= 1")


def nll_metrics(total_nll: float, count: int) -> dict[str, float]:
    loss = total_nll / max(count, 1)
    return {"loss": loss, "bpc": loss / math.log(2), "ppl": math.exp(min(loss, 50.0))}


@register_task("language_model")
class LanguageModel(Task):
    Config = LanguageModelConfig
    primary_metric = "loss"
    higher_is_better = False
    verbs = ("generate", "sample")

    def __init__(self, cfg: LanguageModelConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        if cfg.dataset not in DATASETS and Path(cfg.dataset).expanduser().is_file():
            # a user's own text file: modelled as a stream, the last 10% held out for validation
            text = read_corpus(Path(cfg.dataset).expanduser())
            meta: dict[str, Any] = {"format": "stream", "val_fraction": 0.1}
        else:
            try:
                meta = DATASETS.get(cfg.dataset).meta
            except UserError as e:
                raise UserError(f"{e}; or give the path of a UTF-8 text file") from None
            text = load_text(cfg.dataset, data_dir)
        self.layout = str(meta["format"])
        self.vocab = CharVocab(cfg.vocab) if cfg.vocab else CharVocab.from_text(text + END)
        self.device = torch.device("cpu")
        self._splits: dict[str, Any] = {}
        # carry_state: per shard of the batch, the window starts that continue it and the state there
        self._lanes: dict[str, dict[str, Any]] = {}
        self._shard_key = ""
        if self.layout == "stream":
            ids = self.vocab.encode(text)
            cut = int(len(ids) * (1 - float(meta["val_fraction"])))
            self._splits = {"train": ids[:cut], "val": ids[cut:]}
            if cut <= cfg.context + 1:
                raise UserError(f"data.context={cfg.context} is longer than the training text ({cut} characters)")
        else:
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            order = torch.randperm(len(lines), generator=torch.Generator().manual_seed(int(meta["test_seed"])))
            n_test = min(int(meta["test_size"]), len(lines) // 10)
            test = [lines[i] for i in order[:n_test]]
            rest = [lines[i] for i in order[n_test:]]
            if cfg.val_size >= len(rest):
                raise UserError(f"data.val_size={cfg.val_size} leaves no training lines ({len(rest)})")
            val_order = torch.randperm(len(rest), generator=torch.Generator().manual_seed(cfg.val_seed))
            val = [rest[i] for i in val_order[:cfg.val_size]]
            train = [rest[i] for i in val_order[cfg.val_size:]]
            self.train_lines = set(train)
            width = max(len(s) for s in lines) + 1
            self._splits = {name: self._encode_lines(part, width) for name, part in
                            (("train", train), ("val", val), ("test", test))}

    def _encode_lines(self, lines: list[str], width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each line as input "\\n" + line and target line + "\\n", padded to ``width``."""
        x = torch.zeros(len(lines), width, dtype=torch.long)
        y = torch.full((len(lines), width), IGNORE, dtype=torch.long)
        for row, line in enumerate(lines):
            ids = self.vocab.encode(END + line + END)
            x[row, :len(ids) - 1] = ids[:-1]
            y[row, :len(ids) - 1] = ids[1:]
        return x, y

    # -- the trainer contract ----------------------------------------------------------------
    def resolved_config(self) -> LanguageModelConfig:
        return replace(self.cfg, vocab=self.vocab.chars)

    def model_args(self) -> dict[str, Any]:
        return {"vocab_size": len(self.vocab)}

    def has_split(self, name: str) -> bool:
        return name in self._splits

    def num_train_examples(self) -> int:
        if self.layout == "stream":
            if self.cfg.carry_state:  # an epoch is one pass over the text in non-overlapping windows
                return (len(self._splits["train"]) - 1) // self.cfg.context - 1
            return len(self._splits["train"]) - self.cfg.context  # an epoch visits every window start
        return len(self._splits["train"][0])

    def epoch_order(self, epoch: int, seed: int, batch_size: int) -> torch.Tensor:
        """Window starts in training order. With ``carry_state`` the text is cut into ``batch_size``
        lanes read front to back, so row b of step k+1 continues row b of step k (truncated BPTT
        with the state carried, as char-rnn trains); a random offset in [0, context) per epoch
        shifts the window boundaries between epochs."""
        if not (self.layout == "stream" and self.cfg.carry_state):
            return super().epoch_order(epoch, seed, batch_size)
        context = self.cfg.context
        offset = int(torch.randint(0, context, (1,), generator=torch.Generator().manual_seed(
            step_seed(seed, -1 - epoch))))
        per_lane = self.num_train_examples() // batch_size
        lanes = torch.arange(batch_size)[None, :] * per_lane + torch.arange(per_lane)[:, None]  # (step, lane)
        return offset + lanes.flatten() * context

    def to(self, device: torch.device) -> None:
        self.device = device
        self._splits = {k: (tuple(t.to(device) for t in v) if isinstance(v, tuple) else v.to(device))
                        for k, v in self._splits.items()}

    def train_batch(self, indices: torch.Tensor, shard: slice, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        starts = indices[shard].to(self.device)
        self._shard_key, self._shard_starts = f"{shard.start}:{shard.stop}", starts
        if self.layout == "stream":
            data = self._splits["train"]
            positions = starts[:, None] + torch.arange(self.cfg.context + 1, device=self.device)
            window = data[positions]
            return window[:, :-1], window[:, 1:]
        x, y = self._splits["train"]
        return x[starts], y[starts]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        state = None
        if self.cfg.carry_state and self.layout == "stream":
            lane = self._lanes.get(self._shard_key)
            if lane is not None and torch.equal(lane["next"], self._shard_starts):
                state = lane["state"]  # this batch continues the last one: start from its final state
        logits, state = model(x, state)
        if self.cfg.carry_state and self.layout == "stream" and state is not None:
            detached = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
            self._lanes[self._shard_key] = {"next": self._shard_starts + self.cfg.context, "state": detached}
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE)

    def state_dict(self) -> dict[str, Any]:
        """The carried lane states, so a resumed run continues them exactly."""
        return {key: {"next": lane["next"].cpu(),
                      "state": [s.cpu() for s in lane["state"]] if isinstance(lane["state"], tuple)
                      else [lane["state"].cpu()]}
                for key, lane in self._lanes.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._lanes = {key: {"next": lane["next"].to(self.device),
                             "state": (tuple(s.to(self.device) for s in lane["state"]) if len(lane["state"]) > 1
                                       else lane["state"][0].to(self.device))}
                       for key, lane in state.items()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        """Mean NLL per character of a split. Streams are cut into ``eval_streams`` contiguous parts
        read in windows of ``context`` with the model's state carried across windows."""
        if split not in self._splits:
            raise UserError(f"no {split!r} split for {self.cfg.dataset}; choose one of {sorted(self._splits)}")
        model.eval()
        total, count = 0.0, 0
        if self.layout == "stream":
            data = self._splits[split]
            streams = min(self.cfg.eval_streams, (len(data) - 1) // 2)
            per = (len(data) - 1) // streams
            x = data[:streams * per].view(streams, per)
            y = data[1:streams * per + 1].view(streams, per)
            state = None
            for t in range(0, per, self.cfg.context):
                logits, state = model(x[:, t:t + self.cfg.context], state)
                total += F.cross_entropy(logits.flatten(0, 1).float(), y[:, t:t + self.cfg.context].flatten(),
                                         reduction="sum").item()
                count += y[:, t:t + self.cfg.context].numel()
        else:
            xs, ys = self._splits[split]
            for i in range(0, len(xs), batch_size):
                logits, _ = model(xs[i:i + batch_size])
                target = ys[i:i + batch_size]
                total += F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=IGNORE,
                                         reduction="sum").item()
                count += int((target != IGNORE).sum())
        return nll_metrics(total, count)

    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        split = "test" if "test" in self._splits else "val"
        result: dict[str, Any] = {"split": split, **self.evaluate(model, split, batch_size)}
        result["note"] = ("tinyshakespeare has no test split: the validation split is reported, as nanoGPT does"
                          if split == "val" else "makemore's 1,000 held-out test names")
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        return result

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        return [f"{self.cfg.dataset} {result['split']}: {result['loss']:.4f} nats/char, "
                f"{result['bpc']:.4f} bits/char, perplexity {result['ppl']:.3f}"]

    # -- generation --------------------------------------------------------------------------
    def generate(self, model: nn.Module, prompt: str = "", tokens: int = 500, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int = 0, unknown: str = "error",
                 stream: TextIO | None = None) -> str:
        """One continuation of ``prompt``: the prompt followed by ``tokens`` sampled characters (a line
        dataset such as names: one line, ending at the end token). See ``sample``."""
        return self.sample(model, 1, prompt, tokens, temperature, top_k, top_p, seed, unknown, stream).samples[0]

    def sample(self, model: nn.Module, n: int = 1, prompt: str = "", tokens: int = 500, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None, seed: int = 0, unknown: str = "error",
               stream: TextIO | None = None) -> TextSamples:
        """``n`` samples, each written to ``stream`` (if given) as it is generated. Streams continue
        ``prompt`` for ``tokens`` characters; line datasets (names) produce whole lines up to the end token
        and count how many are new (not in the training set). A prompt longer than a model's context
        (GPT) is cut to its last ``context`` characters, which is all the model can read, with a note.
        Prompt characters outside the vocabulary raise, or are dropped with ``unknown="skip"``."""
        check_sampling(temperature, top_k, top_p)
        check_count("--tokens", tokens, 1, MAX_SAMPLE_CHARACTERS, "generate less at a time")
        check_count("-n", n, 1, MAX_SAMPLE_CHARACTERS // tokens,
                    f"n x tokens may be at most {MAX_SAMPLE_CHARACTERS:,} characters; generate fewer or shorter samples")
        seed = check_seed(seed)
        if not isinstance(prompt, str):
            raise UserError(f"the prompt must be a string, got {type(prompt).__name__}")
        device = model_device(model)
        generator = torch.Generator().manual_seed(seed)
        end = self.vocab.index.get(END)
        out = stream if stream is not None else io.StringIO()
        notes: list[str] = []
        start = time.perf_counter()
        if self.layout == "lines":
            prompt_ids = self.vocab.encode(END + prompt, unknown)
            prompt = self.vocab.decode(prompt_ids[1:])  # what the model reads (unknowns skipped)
            prompt_ids = self.fit_context(model, prompt_ids, notes).to(device).repeat(n, 1)
            rows = [[] for _ in range(n)]
            for token in generate(model, prompt_ids, tokens, temperature, top_k, top_p, generator, stop_token=end):
                for row, t in zip(rows, token.tolist(), strict=True):
                    row.append(t)
            names = [prompt + self.vocab.decode(r).split(END)[0] for r in rows]
            for name in names:
                out.write(name + "\n")
            out.flush()
            new = sum(name not in self.train_lines for name in names)
            notes.append(f"{new} of {len(names)} are new (not in the training set)")
            return TextSamples(names, stream is not None, notes, new, sum(map(len, rows)), time.perf_counter() - start)
        if not prompt:
            prompt = END if end is not None else self.vocab.chars[0]
        prompt_ids = self.vocab.encode(prompt, unknown)
        if prompt_ids.shape[0] == 0:
            raise UserError("the prompt has no character of the model's vocabulary left; give another prompt")
        prompt = self.vocab.decode(prompt_ids)
        prompt_ids = self.fit_context(model, prompt_ids, notes).to(device)[None]
        texts, generated = [], 0
        for k in range(n):
            if n > 1:
                out.write(f"--- sample {k + 1} ---\n")
            out.write(prompt)
            pieces = []
            for token in generate(model, prompt_ids, tokens, temperature, top_k, top_p, generator):
                piece = self.vocab.chars[int(token[0])]
                pieces.append(piece)
                out.write(piece)
                out.flush()
            out.write("\n")
            texts.append(prompt + "".join(pieces))
            generated += len(pieces)
        return TextSamples(texts, stream is not None, notes, tokens=generated, seconds=time.perf_counter() - start)

    @staticmethod
    def fit_context(model: nn.Module, ids: torch.Tensor, notes: list[str]) -> torch.Tensor:
        """The last ``model.context`` of the prompt ids (a model with a bounded context, such as GPT,
        reads no more), noting the cut; others take the whole prompt."""
        context = getattr(model, "context", None)
        if context is None or len(ids) <= context:
            return ids
        notes.append(f"the prompt has {len(ids)} characters, more than the model's context of {context}; "
                     f"generation continues from its last {context}")
        return ids[-context:]


MAX_SAMPLE_CHARACTERS = 10_000_000  # n x tokens of one call: 40 MB of ids, hours of generation on a CPU


@dataclass
class TextSamples:
    """Text samples of a language model (``Run.sample``): the texts, whether they were already written
    to a stream as they were generated, notes for the user, for names how many are new, and how many
    tokens were generated in how many seconds (prompt reading included)."""

    samples: list[str]
    streamed: bool
    notes: list[str] = field(default_factory=list)
    new: int | None = None
    tokens: int = 0
    seconds: float = 0.0
    default_file = None  # printed, not saved, unless a file is asked for

    def text(self) -> str:
        """All samples as they are printed: one per line for names, with a header each for several texts."""
        if self.new is not None or len(self.samples) == 1:
            return "".join(s + "\n" for s in self.samples)
        return "".join(f"--- sample {k + 1} ---\n{s}\n" for k, s in enumerate(self.samples))

    def save(self, path: Path) -> Path:
        atomic_write_text(path, self.text())
        return Path(path)
