"""`archzoo train/eval/transcribe` on speech runs, end to end on the staged recordings, including bad audio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import SHARED_DATA, cli, needs_spoken_digits

pytestmark = needs_spoken_digits
RECORDINGS = SHARED_DATA / "spoken-digits" / "recordings"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A few steps of an isolated-digit CNN and of a BiLSTM-CTC, trained through the CLI."""
    from archzoo.cli.main import main

    root = tmp_path_factory.mktemp("speech")
    data = ["--data-dir", str(SHARED_DATA), "--no-progress", "--set", "train.batch_size=16"]
    assert main(["train", "spoken-digits-cnn", "--max-steps", "4", "--out", str(root / "cnn"), *data,
                 "--set", "model.args.channels=[8, 16]", "--set", "model.args.time_strides=[2, 2]"]) == 0
    assert main(["train", "connected-digits-bilstm", "--max-steps", "2", "--out", str(root / "ctc"), *data,
                 "--set", "model.args.hidden_size=16", "--set", "model.args.num_layers=1", "--set", "data.val_utterances=8",
                 "--set", "data.test_utterances=8", "--set", "data.train_utterances=32", "--set", "data.beam_size=2"]) == 0
    return {"cnn": root / "cnn", "ctc": root / "ctc"}


def test_eval_reports_accuracy_per_speaker_and_writes_the_confusion_matrix(runs: dict[str, Path],
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "eval", str(runs["cnn"]))
    assert rc == 0 and "standard split (index 0-4) test (300 recordings)" in out and "per-speaker accuracy" in out
    assert (runs["cnn"] / "confusion.png").is_file()
    report = json.loads((runs["cnn"] / "eval.json").read_text())
    assert set(report["per_speaker_accuracy"]) == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
    rc, out, _ = cli(capsys, "eval", str(runs["ctc"]))
    assert rc == 0 and "digit error rate" in out and "greedy" in out and (runs["ctc"] / "ctc_posteriors.png").is_file()


def test_transcribe_prints_top_guesses_and_notices(runs: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    mono = RECORDINGS / "7_jackson_2.wav"
    y, rate = sf.read(str(mono), dtype="float32")
    stereo = tmp_path / "stereo-16k.wav"
    from scipy.signal import resample_poly

    up = resample_poly(y, 2, 1).astype(np.float32)
    sf.write(stereo, np.stack([up, up], 1), 16000)
    rc, out, err = cli(capsys, "transcribe", str(runs["cnn"]), str(mono), str(stereo))
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{mono}\t") and len(lines[0].split("\t")[2].split("  ")) == 3
    assert "notice" in err and "mixed down to mono" in err and "resampled from 16,000 Hz to 8,000 Hz" in err
    rc, out, _ = cli(capsys, "transcribe", str(runs["ctc"]), str(mono), "--top", "2")
    assert rc == 0 and out.count("\n") == 1 and out.startswith(f"{mono}\t")


def test_the_python_api_transcribes_too(runs: dict[str, Path]) -> None:
    import archzoo

    run = archzoo.load(runs["cnn"], device="cpu")
    assert run.verbs == ("transcribe", "evaluate", "export")
    result = run.transcribe(RECORDINGS / "7_jackson_2.wav", top=2)
    assert result.files == [str(RECORDINGS / "7_jackson_2.wav")] and len(result.alternatives[0]) == 2
    assert result.texts[0] == result.alternatives[0][0][0] and sum(p for _, p in result.alternatives[0]) <= 1 + 1e-6
    ctc = archzoo.load(runs["ctc"], device="cpu").transcribe([RECORDINGS / "7_jackson_2.wav"] * 2)
    assert len(ctc.lines()) == 2 and set(ctc.texts[0]) <= set("0123456789")


def test_greedy_decoding_posteriors_and_their_plot(runs: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    import archzoo
    from archzoo.errors import UserError
    from archzoo.tasks.ctc import greedy_decode

    wav = RECORDINGS / "7_jackson_2.wav"
    ctc = archzoo.load(runs["ctc"], device="cpu")
    greedy = ctc.transcribe(wav, top=3, beam=1, posteriors=True)
    (post,) = greedy.frame_posteriors
    assert torch.allclose(post.sum(1), torch.ones(len(post)), atol=1e-5)
    assert greedy.posterior_labels == ["blank", *[str(d) for d in range(10)]]
    best = greedy_decode(post.log()[None], torch.tensor([len(post)]))[0]
    assert len(greedy.alternatives[0]) == 1 and greedy.texts[0] == "".join(str(c - 1) for c in best)
    assert 0 < greedy.alternatives[0][0][1] <= 1  # p(labels | audio), summed over the alignments
    assert greedy.features[0].shape[1] == 40 and greedy.plot(tmp_path / "ctc.png", 0, "x").stat().st_size > 1000
    beam = ctc.transcribe(wav, top=2, beam=4)
    assert beam.frame_posteriors is None and len(beam.alternatives[0]) == 2
    cnn = archzoo.load(runs["cnn"], device="cpu").transcribe(wav, posteriors=True)
    assert cnn.frame_posteriors is None and cnn.plot(tmp_path / "cnn.png").stat().st_size > 1000
    with pytest.raises(UserError, match="takes no beam"):
        archzoo.load(runs["cnn"], device="cpu").transcribe(wav, beam=2)
    rc, out, _ = cli(capsys, "transcribe", str(runs["ctc"]), str(wav), "--beam", "1")
    assert rc == 0 and out.split("\t")[1] == (greedy.texts[0] or "(nothing)")


@pytest.mark.parametrize(("make", "needle"), [
    (lambda p: p.write_bytes(b"RIFF\x00\x00garbage"), "not readable audio"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), 8000), "no samples"),
    (lambda p: sf.write(p, np.full(100, 0.1, np.float32), 8000), "shorter than one analysis window"),
    (lambda p: sf.write(p, np.full(8000 * 6, 0.1, np.float32), 8000), "at most 5 s"),
    (lambda p: sf.write(p, np.full(8000, 0.1, np.float32), 500), "sample rate of 500 Hz"),
    (lambda p: p.write_text("seven\n"), "not readable audio"),
])
def test_bad_audio_is_a_one_line_error(runs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       make, needle: str) -> None:  # noqa: ANN001
    path = tmp_path / "bad.wav"
    make(path)
    rc, out, err = cli(capsys, "transcribe", str(runs["cnn"]), str(path))
    assert rc == 2 and needle in err and err.count("\n") == 1 and out == ""


def test_transcribe_refuses_runs_of_other_tasks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from archzoo.cli.main import main

    assert main(["train", "hopfield-mnist", "--out", str(tmp_path / "hop"), "--no-progress", "--set", "data.trials=1"]) == 0
    capsys.readouterr()
    rc, _, err = cli(capsys, "transcribe", str(tmp_path / "hop"), str(RECORDINGS / "0_theo_0.wav"))
    assert rc == 2 and "needs a spoken_digits or connected_digits run" in err
