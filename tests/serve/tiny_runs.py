"""Tiny runs for the playground's tests, screenshots and load test: one per tab, each trained for a few
steps on real data (the built-in MNIST subset and Tiny Shakespeare; the staged Multi30K, MR and airline
data, and the spoken-digits recordings, when ``ARCHZOO_DATA`` or ../shared/data has them). Seconds each on
one CPU thread.

``python tests/serve/tiny_runs.py RUNS_DIR [TAB ...]`` trains them into RUNS_DIR (for a manual look).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# run folder name -> (preset, overrides, the staged dataset it needs or None)
RUNS: dict[str, tuple[str, list[str], str | None]] = {
    "digits-cnn": ("mnist-simple_cnn", ["data.dataset='mnist-small'", "data.val_size=500", "train.batch_size=64",
                                        "train.precision='fp32'", "train.max_steps=60", "train.epochs=1",
                                        "train.lr=3e-3"], None),
    "digits-mlp": ("mnist-mlp", ["data.dataset='mnist-small'", "data.val_size=500", "train.batch_size=64",
                                 "train.precision='fp32'", "train.max_steps=40", "train.epochs=1",
                                 "train.compile=false"], None),
    "text-lstm": ("shakespeare-lstm", ["model.args.hidden_size=32", "model.args.embedding_dim=16",
                                       "model.args.num_layers=1", "data.context=32", "train.max_steps=5",
                                       "train.batch_size=16", "train.eval_every_steps=0", "train.eval_batch_size=16",
                                       "train.precision='fp32'", "train.warmup_steps=1"],
                  None),
    "text-gpt": ("shakespeare-gpt-fast", ["model.args.d_model=32", "model.args.num_layers=1", "model.args.num_heads=2",
                                          "model.args.context=32", "data.context=32", "train.max_steps=5",
                                          "train.batch_size=16", "train.eval_batch_size=16", "train.warmup_steps=1",
                                          ], None),
    "translate-transformer": ("multi30k-transformer",
                              ["data.max_train_pairs=300", "data.max_eval_pairs=24", "data.vocab_size=200",
                               "data.test_sets=['test2016']", "data.beam_size=3", "train.batch_size=32",
                               "train.eval_batch_size=64", "train.precision='fp32'", "train.max_steps=8",
                               "model.args.d_model=32", "model.args.num_heads=4", "model.args.dim_feedforward=64",
                               "model.args.num_encoder_layers=1", "model.args.num_decoder_layers=2"], "multi30k"),
    "translate-attention": ("multi30k-attention",
                            ["data.max_train_pairs=300", "data.max_eval_pairs=24", "data.vocab_size=200",
                             "data.test_sets=['test2016']", "data.beam_size=3", "data.length_penalties=[]",
                             "train.batch_size=32", "train.eval_batch_size=64", "train.precision='fp32'",
                             "train.max_steps=8", "model.args.embedding_dim=16", "model.args.encoder_hidden_size=16",
                             "model.args.decoder_hidden_size=16", "model.args.attention_size=16",
                             "model.args.maxout_size=16"], "multi30k"),
    "images-cgan": ("mnist-cgan", ["data.dataset='mnist-small'", "data.val_size=9400", "model.args.g_hidden=[32]",
                                   "model.args.d_hidden=[32]", "model.args.latent_dim=16", "train.eval_batch_size=500",
                                   "train.max_steps=9"], None),
    "sentiment-textcnn": ("mr-textcnn", ["data.max_examples=600", "model.args.embedding_dim=16", "model.args.num_maps=8",
                                         "train.batch_size=50", "train.eval_batch_size=500", "train.max_steps=10",
                                         "train.compile=false"],
                          "rt-polarity"),
    "forecast-linear": ("airline-linear", ["train.max_steps=20", "train.epochs=20"], "airline-passengers"),
    "speech-cnn": ("spoken-digits-cnn", ["model.args.channels=[8, 16]", "model.args.time_strides=[2, 2]",
                                         "train.batch_size=32", "train.max_steps=20", "train.epochs=1",
                                         "train.eval_batch_size=300", "train.precision='fp32'"], "spoken-digits"),
    "speech-ctc": ("connected-digits-bilstm", ["model.args.hidden_size=16", "model.args.num_layers=1",
                                               "data.val_utterances=8", "data.test_utterances=8",
                                               "data.train_utterances=32", "data.beam_size=2", "train.batch_size=16",
                                               "train.max_steps=2", "train.precision='fp32'"], "spoken-digits"),
    "hopfield-classic": ("hopfield-mnist", ["data.trials=1"], None),
    "hopfield-modern": ("hopfield-mnist-modern", ["data.num_patterns=20", "data.trials=1"], None),
}
LAB = Path(__file__).resolve().parents[2] / "docs" / "lab"  # the committed lab report
SPEECH_WAV = "7_jackson_2.wav"  # a test recording (index 0-4) of the spoken-digits data


DIGIT_LABEL = 7  # the first test digit of the built-in MNIST subset


def digit_png() -> bytes:
    """The first test digit of the built-in MNIST subset (a 7) as a PNG file's bytes."""
    from PIL import Image

    from archzoo.data.images import load_image_split

    split = load_image_split("mnist-small", "test")
    assert int(split.labels[0]) == DIGIT_LABEL
    out = io.BytesIO()
    Image.fromarray(split.images[0, 0].numpy()).save(out, format="PNG")
    return out.getvalue()


def speech_wav() -> Path:
    """A real test recording of the staged spoken-digits data (a 7)."""
    return data_dir() / "spoken-digits" / "recordings" / SPEECH_WAV


def data_dir() -> Path | None:
    found = os.environ.get("ARCHZOO_DATA")
    if found:
        return Path(found)
    return SHARED_DATA if SHARED_DATA.is_dir() else None


def available(name: str) -> bool:
    """Whether the data run ``name`` needs is here."""
    needs = RUNS[name][2]
    return needs is None or (data_dir() is not None and (data_dir() / needs).is_dir())


def train(root: Path, name: str) -> Path:
    """Train the tiny run ``name`` into ``root/name`` with the CLI (quietly); its folder."""
    from archzoo.cli.main import main

    preset, overrides, _ = RUNS[name]
    out, folder = io.StringIO(), root / name
    argv = ["train", preset, "--out", str(folder), "--no-progress", "--device", "cpu",
            *[arg for o in overrides for arg in ("--set", o)]]
    if data_dir() is not None:
        argv += ["--data-dir", str(data_dir())]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(argv)
    if rc != 0:
        raise RuntimeError(f"training {name} failed:\n{out.getvalue()}")
    return folder


def train_all(root: Path, names: list[str] | None = None) -> list[str]:
    """Every tiny run (or ``names``) whose data is here; the names trained."""
    done = []
    for name in names or list(RUNS):
        if available(name):
            train(root, name)
            done.append(name)
    return done


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    target = Path(sys.argv[1])
    print("trained:", ", ".join(train_all(target, sys.argv[2:] or None)))
