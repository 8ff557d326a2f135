"""The language-model task (tasks/language_model.py): splits, batches, metrics, evaluation with a
carried state, and the saved vocabulary."""

from __future__ import annotations

import math

import torch
from torch import nn

from archzoo.data.text import END
from archzoo.models import create_model
from archzoo.tasks.language_model import IGNORE, LanguageModel, LanguageModelConfig


class Uniform(nn.Module):
    """Every character equally likely: the loss is log V whatever the data."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, x: torch.Tensor, state: object = None) -> tuple[torch.Tensor, None]:
        return torch.zeros(*x.shape, self.vocab_size), None


def test_tinyshakespeare_uses_nanogpts_split_and_saves_its_vocabulary() -> None:
    task = LanguageModel(LanguageModelConfig(context=16))
    assert len(task._splits["train"]) == 1_003_854 and len(task._splits["val"]) == 111_540
    assert task.model_args() == {"vocab_size": 65}
    resolved = task.resolved_config()
    assert len(resolved.vocab) == 65 and LanguageModel(resolved).vocab.chars == resolved.vocab
    assert task.num_train_examples() == 1_003_854 - 16


def test_stream_batches_are_windows_shifted_by_one() -> None:
    task = LanguageModel(LanguageModelConfig(context=8))
    x, y = task.train_batch(torch.tensor([0, 100, 5000, 7]), slice(1, 3), seed=0)
    train = task._splits["train"]
    assert torch.equal(x, torch.stack([train[100:108], train[5000:5008]]))
    assert torch.equal(y, torch.stack([train[101:109], train[5001:5009]]))


def test_names_follow_makemores_split_with_an_end_token() -> None:
    task = LanguageModel(LanguageModelConfig(dataset="makemore-names", val_size=1000))
    x_test, y_test = task._splits["test"]
    assert len(x_test) == 1000 and len(task._splits["val"][0]) == 1000 and len(task._splits["train"][0]) == 30_033
    end = task.vocab.index[END]
    assert end == 0 and len(task.vocab) == 27
    # row = "\n" + name -> name + "\n", padding ignored by the loss
    first = task.vocab.decode(x_test[0][y_test[0] != IGNORE])
    target = task.vocab.decode(y_test[0][y_test[0] != IGNORE])
    assert first[0] == END and target[-1] == END and first[1:] == target[:-1]
    assert task.num_train_examples() == 30_033


def test_uniform_model_scores_log_v() -> None:
    for cfg in (LanguageModelConfig(context=64), LanguageModelConfig(dataset="makemore-names")):
        task = LanguageModel(cfg)
        metrics = task.evaluate(Uniform(len(task.vocab)), "val", 500)
        assert math.isclose(metrics["loss"], math.log(len(task.vocab)), rel_tol=1e-6)
        assert math.isclose(metrics["bpc"], math.log2(len(task.vocab)), rel_tol=1e-6)
        assert math.isclose(metrics["ppl"], len(task.vocab), rel_tol=1e-5)


def test_stream_evaluation_carries_the_state_across_windows() -> None:
    """Evaluating in windows of 16 with the state carried equals evaluating each stream in one pass."""
    task = LanguageModel(LanguageModelConfig(context=16, eval_streams=4))
    torch.manual_seed(0)
    model = create_model("gru_lm", vocab_size=65, embedding_dim=8, hidden_size=16, num_layers=1).eval()
    val = task._splits["val"][:4 * 300 + 1]
    task._splits["val"] = val
    windowed = task.evaluate(model, "val", 100)["loss"]
    x, y = val[:-1].view(4, 300), val[1:].view(4, 300)
    with torch.no_grad():
        logits, _ = model(x)
    one_pass = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()).item()
    assert math.isclose(windowed, one_pass, rel_tol=1e-5)


class Spy(nn.Module):
    """Records the state each call starts from and returns a state made from the input."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.seen: list[object] = []

    def forward(self, x: torch.Tensor, state: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen.append(state)
        return torch.zeros(*x.shape, 65) + self.w, x[:, -1:].float()[None]


def test_carry_state_reads_lanes_front_to_back_and_carries_the_state() -> None:
    task = LanguageModel(LanguageModelConfig(context=8, carry_state=True))
    order = task.epoch_order(0, seed=0, batch_size=4).view(-1, 4)  # (step, lane)
    assert torch.equal(order[1:], order[:-1] + 8)  # each step continues the last one, lane by lane
    assert len(order) == task.num_train_examples() // 4 and int(order.max()) + 9 <= len(task._splits["train"])
    assert not torch.equal(order, task.epoch_order(1, seed=0, batch_size=4).view(-1, 4))  # new offset per epoch
    model = Spy()
    for step in range(3):
        task.loss(model, task.train_batch(order.flatten()[step * 4:(step + 1) * 4], slice(0, 4), seed=0))
    assert model.seen[0] is None and model.seen[1] is not None and model.seen[2] is not None
    task.loss(model, task.train_batch(order.flatten()[:4], slice(0, 4), seed=0))  # not a continuation
    assert model.seen[3] is None
    saved = task.state_dict()
    fresh = LanguageModel(LanguageModelConfig(context=8, carry_state=True))
    fresh.load_state_dict(saved)
    fresh.loss(model, fresh.train_batch(order.flatten()[4:8], slice(0, 4), seed=0))
    assert torch.equal(model.seen[4], model.seen[1])  # the state travels through a checkpoint


def test_carry_state_run_resumes_exactly(tmp_path) -> None:  # noqa: ANN001
    from archzoo.training import checkpoint
    from archzoo.training.config import load_run_config, resolve_config
    from archzoo.training.trainer import Trainer

    cfg = resolve_config("shakespeare-lstm", [
        "model.args.hidden_size=16", "model.args.embedding_dim=8", "model.args.num_layers=1", "data.context=16",
        "data.carry_state=true", "train.batch_size=8", "train.max_steps=10", "train.eval_every_steps=5",
        "train.precision='fp32'", "train.time_budget=0", "data.eval_streams=2"])

    def run(run_dir, stop_at=None):  # noqa: ANN001, ANN202
        def hook(trainer: Trainer) -> None:
            if trainer.step == stop_at:
                trainer.stop_reason = "interrupted"
        return Trainer(cfg, run_dir, progress=False, verbose=False, on_step=hook).fit()

    run(tmp_path / "full")
    assert run(tmp_path / "part", stop_at=3).status == "interrupted"
    Trainer(load_run_config(tmp_path / "part"), tmp_path / "part", progress=False, verbose=False, resume=True).fit()
    a = checkpoint.read_weights(tmp_path / "full" / "model.safetensors")[0]
    b = checkpoint.read_weights(tmp_path / "part" / "model.safetensors")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


class Piecewise:
    """A text stream that keeps each write apart (what the playground's page receives, piece by piece)."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def write(self, text: str) -> int:
        self.pieces.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_a_sample_streams_one_character_at_a_time_and_counts_its_tokens() -> None:
    task = LanguageModel(LanguageModelConfig(dataset="tinyshakespeare", context=16))
    model = create_model("lstm_lm", vocab_size=len(task.vocab), hidden_size=16, embedding_dim=8, num_layers=1)
    stream = Piecewise()
    result = task.sample(model, 1, prompt="ROMEO:", tokens=25, temperature=0.9, seed=3, stream=stream)
    assert stream.pieces[0] == "ROMEO:" and stream.pieces[-1] == "\n" and len(stream.pieces) == 27
    assert all(len(p) == 1 for p in stream.pieces[1:])
    assert "".join(stream.pieces[:-1]) == result.samples[0]
    assert result.tokens == 25 and result.seconds > 0
    assert task.sample(model, 1, prompt="ROMEO:", tokens=25, temperature=0.9, seed=3).samples == result.samples


def test_names_count_the_tokens_of_every_row() -> None:
    task = LanguageModel(LanguageModelConfig(dataset="makemore-names", context=16))
    model = create_model("lstm_lm", vocab_size=len(task.vocab), hidden_size=16, embedding_dim=8, num_layers=1)
    result = task.sample(model, 4, tokens=12, seed=0)
    assert len(result.samples) == 4 and 4 <= result.tokens <= 4 * 12 and result.seconds > 0
