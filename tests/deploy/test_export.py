"""Export: every exportable family runs in onnxruntime (and from a saved torch.export program) and
computes what torch computes on real inputs, max abs difference <= 1e-4 in fp32, at batch sizes and
sequence lengths other than the ones traced. The translation model's encoder and decoder step decode
a real sentence greedily outside torch to the same tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from archzoo.data.images import load_idx_split
from archzoo.data.text import CharVocab, load_text
from archzoo.deploy.export import export_model
from archzoo.errors import UserError
from archzoo.models import create_model
from helpers import SHARED_DATA

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install archzoo[onnx])")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install archzoo[onnx])")
TOLERANCE = 1e-4


def session(path: Path) -> object:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(sess: object, names: list[str], *inputs: torch.Tensor) -> list[np.ndarray]:
    return sess.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True)})


def max_diff(a: np.ndarray, b: torch.Tensor) -> float:
    return float(np.abs(a - b.float().numpy()).max())


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """Real MNIST test digits, normalised as the classification task normalises them."""
    images = load_idx_split("mnist-small", "test").images[:9].float() / 255
    return (images - 0.1307) / 0.3081


@pytest.fixture(scope="module")
def shakespeare() -> tuple[CharVocab, torch.Tensor]:
    text = load_text("tinyshakespeare")[:4000]
    vocab = CharVocab.from_text(text + "\n")
    return vocab, vocab.encode(text)


def test_an_image_classifier_in_onnxruntime_with_any_batch(tmp_path: Path, digits: torch.Tensor) -> None:
    model = create_model("simple_cnn").eval()
    [path] = export_model(model, "simple_cnn", tmp_path / "cnn.onnx")
    sess = session(path)
    assert [i.shape for i in sess.get_inputs()] == [["batch", 1, 28, 28]]
    for batch in (digits[:1], digits):  # traced with 2
        with torch.no_grad():
            assert max_diff(run_onnx(sess, ["images"], batch)[0], model(batch)) <= TOLERANCE


def test_a_char_lm_step_in_onnxruntime_generates_like_torch(tmp_path: Path,
                                                             shakespeare: tuple[CharVocab, torch.Tensor]) -> None:
    vocab, ids = shakespeare
    model = create_model("lstm_lm", vocab_size=len(vocab), hidden_size=48, embedding_dim=16).eval()
    [path] = export_model(model, "lstm_lm", tmp_path / "lm.onnx")
    sess = session(path)
    batch = 3
    h, c = torch.zeros(2, batch, 48), torch.zeros(2, batch, 48)
    state = None
    for t in range(20):  # real text, one character per step, the state carried in and out
        step = ids[t * batch:(t + 1) * batch].view(batch, 1)
        logits, h_out, c_out = run_onnx(sess, ["ids", "h", "c"], step, h, c)
        with torch.no_grad():
            expected, state = model(step, state)
        assert max(max_diff(logits, expected), max_diff(h_out, state[0]), max_diff(c_out, state[1])) <= TOLERANCE
        h, c = torch.from_numpy(h_out), torch.from_numpy(c_out)


def test_torch_export_round_trip_and_bf16(tmp_path: Path, shakespeare: tuple[CharVocab, torch.Tensor]) -> None:
    vocab, ids = shakespeare
    model = create_model("gru_lm", vocab_size=len(vocab), hidden_size=32, embedding_dim=8).eval()
    [path] = export_model(model, "gru_lm", tmp_path / "lm.pt2", "torch-export")
    program = torch.export.load(path).module()
    step, h = ids[:5].view(5, 1), torch.randn(2, 5, 32)
    with torch.no_grad():
        logits, h_out = program(step, h)
        expected, state = model(step, h)
    assert (logits - expected).abs().max() <= TOLERANCE and (h_out - state).abs().max() <= TOLERANCE
    [path16] = export_model(model, "gru_lm", tmp_path / "lm16.pt2", "torch-export", dtype="bf16")
    logits16, _ = torch.export.load(path16).module()(step, h.bfloat16())
    assert logits16.dtype == torch.bfloat16 and (logits16.float() - expected).abs().max() < 0.1
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is left as it was


def test_unsupported_models_formats_and_dtypes_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="dcgan cannot be exported: export covers"):
        export_model(create_model("dcgan"), "dcgan", tmp_path / "m.onnx")
    model = create_model("linear", seq_len=8, horizon=2, num_channels=1)
    with pytest.raises(UserError, match="unknown export format 'onxx' \\(did you mean: onnx"):
        export_model(model, "linear", tmp_path / "m.onnx", "onxx")
    with pytest.raises(UserError, match="a bf16 ONNX file would not run"):
        export_model(model, "linear", tmp_path / "m.onnx", "onnx", "bf16")


@pytest.mark.slow
def test_gpt_forward_with_any_batch_and_length(tmp_path: Path, shakespeare: tuple[CharVocab, torch.Tensor]) -> None:
    vocab, ids = shakespeare
    model = create_model("gpt", vocab_size=len(vocab), context=64, d_model=64, num_layers=2, num_heads=4,
                         positions="rotary", dropout=0.0).eval()
    [path] = export_model(model, "gpt", tmp_path / "gpt.onnx")
    sess = session(path)
    for batch, length in ((1, 1), (3, 17), (2, 64)):
        x = ids[:batch * length].view(batch, length)
        with torch.no_grad():
            assert max_diff(run_onnx(sess, ["ids"], x)[0], model(x)[0]) <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("name", ["textcnn", "bert_classifier"])
def test_sentence_classifiers_with_any_batch_and_length(name: str, tmp_path: Path,
                                                        shakespeare: tuple[CharVocab, torch.Tensor]) -> None:
    vocab, ids = shakespeare  # real text as ids (characters stand in for words: the graph only sees ids)
    small = {"textcnn": {"embedding_dim": 16, "num_maps": 8},
             "bert_classifier": {"d_model": 32, "num_heads": 4, "num_layers": 1}}[name]
    model = create_model(name, vocab_size=len(vocab) + 2, **small).eval()
    [path] = export_model(model, name, tmp_path / "m.onnx")
    sess = session(path)
    x = (ids[:4 * 23].view(4, 23) + 2).clone()
    x[1, 9:] = 0  # a padded sentence
    with torch.no_grad():
        assert max_diff(run_onnx(sess, ["ids"], x)[0], model(x)) <= TOLERANCE
        assert max_diff(run_onnx(sess, ["ids"], x[:1, :6])[0], model(x[:1, :6])) <= TOLERANCE


def padded_sentences(ids: torch.Tensor, length: int) -> torch.Tensor:
    """Five rows of real text ids (characters stand in for words) right-padded to lengths length, 1, 7, 60, 3."""
    x = (ids[:5 * length].view(5, length) + 2).clone()
    for row, end in enumerate((length, 1, 7, 60, 3)):
        x[row, end:] = 0
    return x


@pytest.mark.parametrize(("name", "pooling"), [("bilstm_classifier", "max"), ("bigru_classifier", "last")])
def test_recurrent_sentence_classifiers_at_their_fixed_length(name: str, pooling: str, tmp_path: Path,
                                                              shakespeare: tuple[CharVocab, torch.Tensor]) -> None:
    from archzoo.models.sentence import EXPORT_LENGTH

    vocab, ids = shakespeare
    model = create_model(name, vocab_size=len(vocab) + 2, embedding_dim=16, hidden_size=12, num_layers=2,
                         pooling=pooling).eval()
    [path] = export_model(model, name, tmp_path / "m.onnx")
    sess = session(path)
    assert [i.shape for i in sess.get_inputs()] == [["batch", EXPORT_LENGTH]]
    x = padded_sentences(ids, EXPORT_LENGTH)  # the packed path in torch, the unpacked one in the graph
    with torch.no_grad():
        assert max_diff(run_onnx(sess, ["ids"], x)[0], model(x)) <= TOLERANCE
        assert max_diff(run_onnx(sess, ["ids"], x[1:2])[0], model(x[1:2, :1])) <= TOLERANCE


def test_nbsvm_with_any_batch_and_length(tmp_path: Path, shakespeare: tuple[CharVocab, torch.Tensor]) -> None:
    vocab, ids = shakespeare
    model = create_model("nbsvm", vocab_size=len(vocab) + 2, bigram_buckets=997)
    x = padded_sentences(ids, 80)
    model.fit_counts(x, torch.tensor([0, 1, 1, 0, 1]))
    torch.nn.init.normal_(model.weight)  # a trained model's weights are not zero
    model.eval()
    [path] = export_model(model, "nbsvm", tmp_path / "m.onnx")
    sess = session(path)
    with torch.no_grad():
        for batch in (x, x[1:2, :1], x[3:5, :2]):
            expected = model(batch)
            assert expected.abs().max() > 0.1 and max_diff(run_onnx(sess, ["ids"], batch)[0], expected) <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("name", ["linear", "lstm_forecaster", "transformer_forecaster"])
def test_forecasters_with_any_batch(name: str, tmp_path: Path) -> None:
    from archzoo.data.timeseries import load_series

    try:
        series = load_series("airline-passengers", (), None)
    except UserError:
        pytest.skip("airline-passengers not staged")
    values = torch.tensor(series.values, dtype=torch.float32)
    values = (values - values.mean()) / values.std()
    model = create_model(name, seq_len=48, horizon=12, num_channels=1).eval()
    [path] = export_model(model, name, tmp_path / "f.onnx")
    windows = torch.stack([values[i:i + 48] for i in range(0, 90, 10)])  # (9, 48, 1), real months
    with torch.no_grad():
        assert max_diff(run_onnx(session(path), ["x"], windows)[0], model(windows)) <= TOLERANCE


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "multi30k").is_dir(), reason="../shared/data/multi30k not staged")
def test_translation_encoder_and_decoder_step_decode_like_torch(tmp_path: Path) -> None:
    from archzoo.data.translation import BOS_ID, EOS_ID, build_tokenizer, load_parallel, pad_ids

    sources, _ = load_parallel("multi30k", "de", "en", "val")
    tokenizer = build_tokenizer("word", sources[:300], 0, 1, True)
    model = create_model("transformer_seq2seq", src_vocab_size=len(tokenizer), tgt_vocab_size=60, d_model=32, num_heads=4,
                         dim_feedforward=64, num_encoder_layers=2, num_decoder_layers=2).eval()
    encoder_path, decoder_path = export_model(model, "transformer_seq2seq", tmp_path / "mt.onnx")
    assert (encoder_path.name, decoder_path.name) == ("mt.encoder.onnx", "mt.decoder_step.onnx")
    encoder, decoder = session(encoder_path), session(decoder_path)
    src = pad_ids([[*tokenizer.encode(s), EOS_ID] for s in sources[:5]])  # 5 real sentences, padded
    memory = encoder.run(None, {"src": src.numpy()})
    with torch.no_grad():
        expected = model.encode(src)
    assert all(max_diff(m, e) <= TOLERANCE for m, e in zip(memory, expected, strict=True))
    names = [i.name for i in decoder.get_inputs()]
    state = [np.zeros((5, 4, 0, 8), np.float32) for _ in range(4)]
    tokens, torch_state = np.full(5, BOS_ID), model.start(expected)
    for _ in range(12):  # greedy decoding outside torch, step by step beside torch's
        logits, *state = decoder.run(None, dict(zip(names, [tokens, *memory, *state], strict=True)))
        with torch.no_grad():
            torch_logits, torch_state, _ = model.step(expected, torch_state, torch.from_numpy(tokens))
        assert max_diff(logits, torch_logits) <= TOLERANCE
        tokens = logits.argmax(1)
