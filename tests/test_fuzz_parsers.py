"""Property-based fuzzing of every parser of user-supplied bytes or text: only UserError may escape.

Parsers: IDX (data/idx.py), CIFAR-10 archives (data/cifar.py), series CSVs (data/timeseries.py), text
corpora, sentence files and gzip parallel text, checkpoint weights and training state (training/checkpoint.py),
run folders' config.json, status.json and metrics.jsonl, run
configs, overrides and presets (config.py, training/config.py), user images (data/images.py), user audio
(WAV with headers that lie, data/audio.py).
Any other exception type is a bug: the CLI would print "internal error" instead of a one-line fix.
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from archzoo.config import to_dict
from archzoo.data.idx import read_idx, read_idx_bytes
from archzoo.data.images import load_user_image
from archzoo.data.sources import BUILTIN_DIR
from archzoo.errors import UserError
from archzoo.models import create_model
from archzoo.training.checkpoint import load_state, read_weights, save_state, save_weights
from archzoo.training.config import load_preset, resolve_config, run_config_from_dict

# The autouse env fixture in conftest is function-scoped but idempotent, so sharing it across
# examples is safe; files are written to a per-test folder and overwritten by each example.
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

LABELS_GZ = (BUILTIN_DIR / "mnist-small" / "t10k-labels-idx1-ubyte.gz").read_bytes()
LABELS_RAW = gzip.decompress(LABELS_GZ)
IDX_CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]


def only_user_errors(fn: Any, *args: Any) -> Any:
    """Call ``fn``; a UserError is fine (and must be one line), anything else fails the test."""
    try:
        return fn(*args)
    except UserError as e:
        assert str(e) and "\n" not in str(e), f"UserError message is not one line: {e!r}"
        return None


@st.composite
def idx_headers(draw: st.DrawFn) -> bytes:
    """A valid magic with any dimension count and sizes (often huge), and a short payload."""
    ndim = draw(st.integers(0, 255))
    dims = draw(st.lists(st.one_of(st.integers(0, 4), st.integers(0, 2**32 - 1)), min_size=min(ndim, 70), max_size=min(ndim, 70)))
    header = bytes([0, 0, draw(st.sampled_from(IDX_CODES)), ndim]) + b"".join(struct.pack(">I", d) for d in dims)
    return header + draw(st.binary(max_size=64))


# ---------------------------------------------------------------- IDX


@FUZZ
@given(raw=st.one_of(st.binary(max_size=512), idx_headers(),
                     st.integers(0, len(LABELS_RAW)).map(lambda n: LABELS_RAW[:n])))
@example(raw=b"\x00\x00\x08\x03" + struct.pack(">III", 2**31, 2**31, 4))
@example(raw=b"\x00\x00\x08\x64" + b"\x00\x00\x00\x01" * 100 + b"\x07")
def test_read_idx_bytes_only_raises_user_error(raw: bytes) -> None:
    out = only_user_errors(read_idx_bytes, raw)
    if out is not None:  # a successful parse accounts for every byte
        assert out.nbytes == len(raw) - 4 - 4 * raw[3]


@FUZZ
@given(raw=st.one_of(
    st.binary(max_size=512),
    st.binary(max_size=512).map(lambda b: b"\x1f\x8b" + b),  # gzip magic, then garbage
    st.integers(0, len(LABELS_GZ)).map(lambda n: LABELS_GZ[:n]),  # truncated real .gz
    st.integers(0, len(LABELS_RAW)).map(lambda n: LABELS_RAW[:n]),  # truncated real raw file
    idx_headers().map(gzip.compress),
    st.tuples(st.integers(10, len(LABELS_GZ) - 1), st.integers(1, 255)).map(  # one corrupted byte
        lambda t: LABELS_GZ[:t[0]] + bytes([LABELS_GZ[t[0]] ^ t[1]]) + LABELS_GZ[t[0] + 1:]),
))
def test_read_idx_file_only_raises_user_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzz-idx.gz"
    path.write_bytes(raw)
    only_user_errors(read_idx, path)


# ---------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    config = to_dict(resolve_config("quickstart", []))
    save_weights(create_model("mlp", hidden_sizes=(8,)), path, config, step=0)
    tensors, meta = read_weights(path)  # the intact file reads back
    assert meta["step"] == 0 and meta["config"] == config and tensors
    return path.read_bytes()


def safetensors_file(header: Any, payload: bytes = b"", claimed: int | None = None) -> bytes:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(text) if claimed is None else claimed) + text + payload


json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8))
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                                  max_size=4), max_leaves=12)


@st.composite
def weights_files(draw: st.DrawFn, real: bytes) -> bytes:
    kind = draw(st.sampled_from(["random", "truncated", "huge-length", "bad-header", "bad-metadata", "flipped"]))
    if kind == "random":
        return draw(st.binary(max_size=512))
    if kind == "truncated":
        return real[:draw(st.integers(0, len(real) - 1))]
    if kind == "huge-length":
        claimed = draw(st.one_of(st.just(2**64 - 1), st.just(2**63), st.integers(len(real), 2**64 - 1)))
        return struct.pack("<Q", claimed) + real[8:]
    if kind == "bad-header":  # well-formed JSON describing impossible tensors
        tensor = {"dtype": draw(st.sampled_from(["F32", "F16", "I64", "BOOL", "XYZ", ""])),
                  "shape": draw(st.lists(st.integers(-1, 2**40), max_size=4)),
                  "data_offsets": draw(st.lists(st.integers(-1, 2**40), max_size=3))}
        header = draw(st.one_of(st.just({"w": tensor}), json_values))
        return safetensors_file(header, draw(st.binary(max_size=64)))
    if kind == "bad-metadata":  # a valid file whose archzoo metadata is wrong
        metadata = draw(st.dictionaries(st.sampled_from(["format", "config", "step", "other"]),
                                        st.one_of(st.just("archzoo-checkpoint-1"), st.text(max_size=12),
                                                  json_values.map(json.dumps)), max_size=4))
        return safetensors_file({"__metadata__": metadata, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                b"\0\0\0\0")
    index = draw(st.integers(0, len(real) - 1))
    return real[:index] + bytes([real[index] ^ draw(st.integers(1, 255))]) + real[index + 1:]


@FUZZ
@given(data=st.data())
def test_read_weights_only_raises_user_error(tmp_path: Path, checkpoint: bytes, data: st.DataObject) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(data.draw(weights_files(checkpoint)))
    result = only_user_errors(read_weights, path)
    if result is not None:
        tensors, meta = result
        assert isinstance(meta["step"], int) and "config" in meta


def test_read_weights_header_claiming_huge_length(tmp_path: Path, checkpoint: bytes) -> None:
    for claimed in (2**64 - 1, 2**63, 10**12, len(checkpoint)):
        (tmp_path / "h.safetensors").write_bytes(struct.pack("<Q", claimed) + checkpoint[8:])
        with pytest.raises(UserError, match="not a valid safetensors file"):
            read_weights(tmp_path / "h.safetensors")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch warns about random bytes before failing
@FUZZ
@given(raw=st.one_of(st.binary(max_size=1024), st.binary(max_size=64).map(lambda b: b"PK\x03\x04" + b)))
def test_load_state_only_raises_user_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "state.pt"
    path.write_bytes(raw)
    only_user_errors(load_state, path)


def test_load_state_truncated_real_state(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "state.pt"
    save_state({"step": 3, "optimizer": {"state": {}, "param_groups": []}, "rng": torch.ones(4)}, path)
    whole = path.read_bytes()
    assert load_state(path)["step"] == 3
    for cut in range(0, len(whole), max(1, len(whole) // 40)):
        path.write_bytes(whole[:cut])
        with pytest.raises(UserError):
            load_state(path)


# ---------------------------------------------------------------- configs

KEYS = ["task", "model", "data", "train", "description", "name", "args", "lr", "batch_size", "epochs", "betas",
        "dataset", "val_size", "hidden_sizes", "dropout", "optimizer", "schedule", "precision"]
# TOML caps integers at 64 bits; bigger ones are covered by the explicit tests below
config_leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=10),
                          st.sampled_from(["mlp", "simple_cnn", "classification", "mnist-small", "adamw", "fp32"]))
config_dicts = st.recursive(
    config_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5),
    max_leaves=20,
)
DOTTED = ["train.lr", "train.batch_size", "train.betas", "train.epochs", "train.accum_steps", "model.name",
          "model.hidden_sizes", "model.args.dropout", "data.dataset", "data.val_size", "task", "model", "train", "data.x.y"]
override_values = st.one_of(st.text(max_size=12), st.sampled_from(["3e-4", "-1", "0", "nan", "inf", "true", "[0.9, 0.99]",
                                                                   "[1, 2", "'mlp'", "{a = 1}", "1979-05-27", "0x10"]))
overrides = st.one_of(st.text(max_size=24), st.tuples(st.sampled_from(DOTTED), override_values).map("=".join))


@FUZZ
@given(data=st.dictionaries(st.sampled_from(KEYS), config_dicts, max_size=5) | config_dicts)
@example(data={"model": {"name": "mlp", "args": {"hidden_sizes": [8, "x"]}}})
@example(data={"train": {"betas": [0.9]}, "task": "classification"})
def test_run_config_from_dict_only_raises_user_error(data: Any) -> None:
    only_user_errors(run_config_from_dict, data)


@FUZZ
@given(preset=st.sampled_from([None, "quickstart", "mnist-mlp"]), texts=st.lists(overrides, max_size=4))
def test_resolve_config_only_raises_user_error(preset: str | None, texts: list[str]) -> None:
    only_user_errors(resolve_config, preset, texts)


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200),
                      st.lists(st.sampled_from(["[train]", "lr = 1", "x = [", "a.b = 2", "= 3", "[[a]]", "\"s", "\n"]),
                               max_size=8).map("\n".join)))
def test_load_preset_only_raises_user_error(tmp_path: Path, text: str | bytes) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    preset = only_user_errors(load_preset, str(path))
    if preset is not None:
        assert isinstance(preset, dict)
        only_user_errors(run_config_from_dict, preset)


# Regressions found by this fuzzing: huge numbers and deep nesting in config values.


def test_override_with_an_integer_too_large_for_a_float() -> None:
    with pytest.raises(UserError):
        resolve_config(None, ["train.lr=1" + "0" * 400])


def test_config_json_with_an_integer_too_large_for_a_float() -> None:
    with pytest.raises(UserError):
        run_config_from_dict({"train": {"lr": 10**400}})


def test_deeply_nested_override_value() -> None:
    with pytest.raises(UserError):
        resolve_config(None, ["train.lr=" + "[" * 5000])


def test_deeply_nested_preset_file(tmp_path: Path) -> None:
    (tmp_path / "deep.toml").write_text("v = " + "[" * 5000)
    with pytest.raises(UserError):
        load_preset(str(tmp_path / "deep.toml"))


# ---------------------------------------------------------------- user images


@pytest.fixture(scope="module")
def png(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    import numpy as np
    from PIL import Image

    path = tmp_path_factory.mktemp("png") / "digit.png"
    Image.fromarray((np.arange(28 * 28).reshape(28, 28) % 256).astype(np.uint8)).save(path)
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_load_user_image_only_raises_user_error(tmp_path: Path, png: bytes, data: st.DataObject) -> None:
    raw = data.draw(st.one_of(
        st.binary(max_size=256),
        st.integers(0, len(png)).map(lambda n: png[:n]),
        st.tuples(st.integers(8, len(png) - 1), st.integers(1, 255)).map(
            lambda t: png[:t[0]] + bytes([png[t[0]] ^ t[1]]) + png[t[0] + 1:]),
    ))
    path = tmp_path / "x.png"
    path.write_bytes(raw)
    out = only_user_errors(load_user_image, path, 1, 28)
    if out is not None:
        assert out.shape == (1, 28, 28) and 0 <= out.min() and out.max() <= 1


# ---------------------------------------------------------------- the other file readers


def cifar_archive(members: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


RECORD = 1 + 3 * 32 * 32  # CIFAR-10 binary: one label byte, then the 3,072 pixels


@FUZZ
@given(data=st.data())
def test_read_cifar_archive_only_raises_user_error(tmp_path: Path, data: st.DataObject) -> None:
    from archzoo.data.cifar import read_cifar_archive

    member = data.draw(st.sampled_from(["cifar-10-batches-bin/test_batch.bin", "cifar-10-batches-bin/data_batch_1.bin",
                                        "other.bin"]))
    payload = data.draw(st.one_of(st.binary(max_size=2 * RECORD + 7),
                                  st.integers(0, 3).map(lambda n: bytes([11]) * RECORD * n)))  # label 11: out of range
    raw = data.draw(st.one_of(st.just(cifar_archive({member: payload})), st.binary(max_size=512)))
    cut = data.draw(st.integers(0, len(raw)))
    path = tmp_path / "cifar-10-binary.tar.gz"
    path.write_bytes(raw[:cut] if data.draw(st.booleans()) else raw)
    for split in ("train", "test"):
        only_user_errors(read_cifar_archive, path, split)


series_rows = st.lists(st.one_of(
    st.tuples(st.sampled_from(["2020-01-01", "2020-01-02", "2020-01-04", "1960-02", "x", "", "2020-13-40 25:00:00"]),
              st.one_of(st.floats(allow_nan=True), st.text(max_size=5)))
    .map(lambda r: f"{r[0]},{r[1]}"),
    st.text(max_size=30)), max_size=12)


@FUZZ
@given(rows=series_rows, header=st.sampled_from(["date,v", "v", "date,v,w", ""]), fill=st.sampled_from(
    ["none", "interpolate", "previous"]), raw=st.none() | st.binary(max_size=200))
def test_read_series_csv_only_raises_user_error(tmp_path: Path, rows: list[str], header: str, fill: str,
                                                raw: bytes | None) -> None:
    from archzoo.data.timeseries import read_series_csv

    path = tmp_path / "series.csv"
    path.write_bytes(raw if raw is not None else "\n".join([header, *rows]).encode("utf-8", "surrogatepass"))
    only_user_errors(read_series_csv, path, (), fill)
    only_user_errors(read_series_csv, path, ("v",), fill)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_text_and_sentence_and_parallel_readers_only_raise_user_error(tmp_path: Path, raw: bytes) -> None:
    from archzoo.data.sentences import read_lines
    from archzoo.data.text import read_corpus
    from archzoo.data.translation import _read_gzip_lines

    path = tmp_path / "corpus.txt"
    path.write_bytes(raw)
    only_user_errors(read_corpus, path)
    only_user_errors(read_lines, path)
    for body in (raw, gzip.compress(raw)[: max(1, len(raw))], gzip.compress(raw)):
        (tmp_path / "side.gz").write_bytes(body)
        only_user_errors(_read_gzip_lines, tmp_path / "side.gz")


@FUZZ
@given(raw=st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12).map(lambda v: json.dumps(v).encode())))
def test_run_folder_json_files_only_raise_user_error(tmp_path: Path, raw: bytes) -> None:
    """config.json (a run to resume or evaluate), status.json and metrics.jsonl of a run folder."""
    from archzoo.training.config import load_run_config
    from archzoo.training.logger import MetricsLogger
    from archzoo.training.run_folder import read_status

    for name in ("config.json", "status.json", "metrics.jsonl"):
        (tmp_path / name).write_bytes(raw)
    only_user_errors(load_run_config, tmp_path)
    assert read_status(tmp_path) is None or isinstance(read_status(tmp_path), dict)  # never raises
    only_user_errors(MetricsLogger._read, tmp_path / "metrics.jsonl")


# ---------------------------------------------------------------- WAV (data/audio.py)


def wav_file(fmt: int, channels: int, rate: int, bits: int, payload: bytes, declared: int | None = None,
             riff_size: int | None = None, fmt_size: int = 16) -> bytes:
    """A RIFF/WAVE file with the given header fields, whatever they say; ``declared``: the data chunk's
    size field (default: the payload's length), ``riff_size`` the RIFF chunk's."""
    block = channels * max(bits, 8) // 8
    fmt_chunk = struct.pack("<HHIIHH", fmt & 0xFFFF, channels & 0xFFFF, rate & 0xFFFFFFFF,
                            (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits & 0xFFFF)
    fmt_chunk = (fmt_chunk + bytes(max(0, fmt_size - 16)))[:fmt_size]
    body = (b"WAVE" + b"fmt " + struct.pack("<I", fmt_size & 0xFFFFFFFF) + fmt_chunk + b"data"
            + struct.pack("<I", (len(payload) if declared is None else declared) & 0xFFFFFFFF) + payload)
    return b"RIFF" + struct.pack("<I", (len(body) if riff_size is None else riff_size) & 0xFFFFFFFF) + body


@st.composite
def wav_files(draw: st.DrawFn) -> bytes:
    """Headers that lie: odd, zero or huge rates, 0-8 (or 65,535) channels, odd sample widths and format
    tags, data chunks declared empty, short, or 4 GiB, over random or sine payloads."""
    import numpy as np

    rate = draw(st.one_of(st.sampled_from([8000, 16000, 44100, 7919, 1, 0, 100, 11025, 96000, 384000, 2**31 - 1,
                                           2**32 - 1]), st.integers(0, 2**32 - 1)))
    channels = draw(st.sampled_from([1, 2, 3, 8, 0, 65535]))
    bits = draw(st.sampled_from([16, 8, 24, 32, 0, 7, 64]))
    fmt = draw(st.sampled_from([1, 3, 0xFFFE, 0, 2, 0x55, 65535]))
    if draw(st.booleans()):
        n = draw(st.integers(0, 4000))
        tone = (8000 * np.sin(np.arange(n * max(channels, 1)) / 7.0)).astype("<i2").tobytes()
        payload = tone
    else:
        payload = draw(st.binary(max_size=2048))
    declared = draw(st.one_of(st.none(), st.sampled_from([0, 1, 2**31, 2**32 - 1]), st.integers(0, 4096)))
    riff_size = draw(st.one_of(st.none(), st.sampled_from([0, 4, 2**32 - 1])))
    fmt_size = draw(st.sampled_from([16, 16, 18, 40, 14, 0]))
    return wav_file(fmt, channels, rate, bits, payload, declared, riff_size, fmt_size)


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    import numpy as np
    import soundfile as sf

    path = tmp_path_factory.mktemp("wav") / "tone.wav"
    sf.write(path, (0.3 * np.sin(np.arange(4000) / 5.0)).astype(np.float32), 8000, subtype="PCM_16")
    return path.read_bytes()


@FUZZ
@given(data=st.data())
@example(data=None)
def test_read_audio_only_raises_user_error(tmp_path: Path, wav: bytes, data: st.DataObject | None) -> None:
    """Every input is read (mono, 8 kHz, with notices) or refused in one line, quickly: no traceback, no
    hang, no gigabytes allocated for a header that claims them."""
    import time

    import torch

    from archzoo.data.audio import read_audio

    if data is None:  # a real file, for the example the search starts from
        raw = wav
    else:
        raw = data.draw(st.one_of(
            st.binary(max_size=512),
            st.integers(0, len(wav)).map(lambda n: wav[:n]),  # truncated anywhere, headers included
            st.tuples(st.integers(0, 43), st.integers(1, 255)).map(  # one corrupted header byte
                lambda t: wav[:t[0]] + bytes([wav[t[0]] ^ t[1]]) + wav[t[0] + 1:]),
            wav_files(),
        ))
    path = tmp_path / "x.wav"
    path.write_bytes(raw)
    start = time.monotonic()
    out = only_user_errors(read_audio, path, 8000, 200, 5.0)
    assert time.monotonic() - start < 20, "reading one small file must not take long"
    if out is not None:
        assert out.waveform.dtype == torch.float32 and out.waveform.dim() == 1 and len(out.waveform) >= 200
        assert all("\n" not in n for n in out.notices)


@pytest.mark.parametrize(("fields", "needle"), [
    ({"rate": 2**31 - 1}, "sample rate"),  # resampling from it would build a filter of billions of taps
    ({"rate": 0}, "not readable audio"),
    ({"declared": 2**32 - 1, "riff_size": 2**32 - 1}, ""),  # a data chunk claiming 4 GiB over 8 KB
    ({"channels": 0}, "not readable audio"),
])
def test_read_audio_headers_that_lie(tmp_path: Path, fields: dict[str, int], needle: str) -> None:
    import numpy as np

    from archzoo.data.audio import read_audio

    spec = {"fmt": 1, "channels": 1, "rate": 8000, "bits": 16, "declared": None, "riff_size": None, **fields}
    payload = (8000 * np.sin(np.arange(4000) / 7.0)).astype("<i2").tobytes()
    path = tmp_path / "lie.wav"
    path.write_bytes(wav_file(spec["fmt"], spec["channels"], spec["rate"], spec["bits"], payload, spec["declared"],
                              spec["riff_size"]))
    try:
        read_audio(path, 8000, 200, 5.0)
    except UserError as e:
        assert needle in str(e) and "\n" not in str(e)
    else:
        assert needle == "", "the file should have been refused"
