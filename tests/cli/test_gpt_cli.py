"""GPT end to end through the CLI on real text: train, evaluate, sample with the KV cache, names,
the layer table, and a prompt longer than the context."""

from __future__ import annotations

from pathlib import Path

import pytest

from archzoo.cli.main import main

TINY = ["--set", "model.args.d_model=32", "--set", "model.args.num_layers=1", "--set", "model.args.num_heads=2",
        "--set", "train.eval_every_steps=10", "--set", "train.precision='fp32'", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def shakespeare_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpt") / "run"
    assert main(["train", "shakespeare-gpt", "--max-steps", "20", "--set", "data.context=32", "--set",
                 "model.args.context=32", "--set", "train.batch_size=16", "--set", "train.time_budget=0",
                 "--out", str(out), *TINY]) == 0
    return out


def test_train_then_evaluate(shakespeare_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(shakespeare_run)]) == 0
    out = capsys.readouterr().out
    assert "tinyshakespeare val:" in out and "nats/char" in out


def test_sample_runs_past_the_context_and_is_deterministic(shakespeare_run: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sample", str(shakespeare_run), "--prompt", "ROMEO:", "--tokens", "100", "--seed", "3", "--top-k", "10"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 100 + 1  # 106 characters > context 32
    assert main(args) == 0
    assert capsys.readouterr().out == first


def test_a_prompt_longer_than_the_context_keeps_its_end(shakespeare_run: Path, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    prompt = "ROMEO: " * 6 + "JULIET:"  # 49 characters, context 32
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text(prompt)
    assert main(["sample", str(shakespeare_run), "--input", str(prompt_file), "--tokens", "5", "--seed", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(prompt) and len(out) == len(prompt) + 5 + 1
    assert err == ("the prompt has 49 characters, more than the model's context of 32; generation continues from its "
                   "last 32\n")
    # the model reads only the last 32 characters: the same continuation as from them alone
    assert main(["sample", str(shakespeare_run), "--prompt", prompt[-32:], "--tokens", "5", "--seed", "1"]) == 0
    assert capsys.readouterr().out[32:] == out[len(prompt):]


def test_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "names"
    assert main(["train", "names-gpt", "--max-steps", "20", "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main(["sample", str(out), "--num-samples", "5", "--seed", "1"]) == 0
    names = capsys.readouterr().out.splitlines()
    assert len(names) == 5 and all(name == name.strip() and "\n" not in name for name in names)


def test_info_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "gpt", "--set", "model.args.num_layers=1"]) == 0
    out = capsys.readouterr().out
    assert "layers.0.self_attn " in out and "MultiheadAttention" in out and "[1, 8, 65]" in out


@pytest.mark.parametrize(("override", "message"), [
    ("model.args.num_heads=5", "d_model=128 is not divisible by num_heads=5"),
    ("data.context=128", "input of 128 tokens is longer than the model's context of 64"),
])
def test_bad_configuration_is_one_line(override: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "shakespeare-gpt-fast", "--set", override, "--dry-run", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
