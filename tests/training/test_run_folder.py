"""Run folders (training/run_folder.py, trainer.py, cli/train.py): a new run never writes over a
user's files or another run, two trainings never share a folder, default names never collide, the
status is on disk, and what a run needs is verified before it trains."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archzoo.errors import UserError
from archzoo.training import checkpoint, run_folder
from archzoo.training.config import RunConfig, load_run_config, resolve_config
from archzoo.training.trainer import Trainer
from helpers import cli, small_run_overrides

REPO = Path(__file__).resolve().parents[2]


def small_config(**overrides: object) -> RunConfig:
    base: dict[str, object] = {"model.name": "mlp", "model.args.hidden_sizes": [16], "train.max_steps": 4}
    base.update(overrides)
    return resolve_config("quickstart", small_run_overrides(**base))


def train_args(out: Path, *extra: str) -> list[str]:
    sets = small_run_overrides(**{"model.name": "mlp", "model.args.hidden_sizes": [16]})
    return ["train", "quickstart", *[a for s in sets for a in ("--set", s)], "--max-steps", "4", "--out", str(out),
            "--no-progress", "--device", "cpu", *extra]


def one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archzoo: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ------------------------------------------------------------------------------ protection


def test_a_finished_run_is_not_overwritten_without_asking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert cli(capsys, *train_args(run))[0] == 0
    weights = (run / "model.safetensors").read_bytes()
    rc, _, err = cli(capsys, *train_args(run))
    assert rc == 2
    one_line_error(err, f"{run} already holds a max_steps run (step 4)", f"archzoo train --resume {run}", "--overwrite")
    assert (run / "model.safetensors").read_bytes() == weights
    # --overwrite replaces it whole: nothing of the old run is left to mix in
    (run / "samples").mkdir()
    (run / "samples" / "old.png").write_bytes(b"old")
    rc, out, _ = cli(capsys, *train_args(run, "--overwrite", "--set", "train.seed=1"))
    assert rc == 0 and "stopped: max_steps after 4 steps" in out
    assert not (run / "samples").exists() and (run / "model.safetensors").read_bytes() != weights
    assert load_run_config(run).train.seed == 1


def test_a_folder_of_the_users_own_files_is_refused_even_with_overwrite(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    for extra in ([], ["--overwrite"]):
        rc, _, err = cli(capsys, *train_args(mine, *extra))
        assert rc == 2
        one_line_error(err, f"{mine} is not empty and is not an archzoo run", "choose a new or empty folder")
    assert [p.name for p in mine.iterdir()] == ["chapter1.tex"] and (mine / "chapter1.tex").read_text() == "precious"
    with pytest.raises(UserError, match="not an archzoo run"):  # the Trainer itself refuses too (the Python API)
        Trainer(small_config(), mine, progress=False, verbose=False, overwrite=True).fit()
    assert [p.name for p in mine.iterdir()] == ["chapter1.tex"]


def test_an_empty_folder_is_fine_and_overwrite_needs_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert cli(capsys, *train_args(tmp_path / "empty"))[0] == 0
    rc, _, err = cli(capsys, "train", "quickstart", "--overwrite", "--dry-run")
    assert rc == 2
    one_line_error(err, "--overwrite replaces the run in --out; give --out too")


def test_resume_of_a_file_or_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    for target, why in ((tmp_path / "file", "is a file"), (tmp_path / "nowhere", "does not exist")):
        rc, _, err = cli(capsys, "train", "--resume", str(target))
        assert rc == 2
        one_line_error(err, f"--resume {target}: {why}", "give the run folder")


def test_resume_before_the_first_checkpoint_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"

    def killed_early(trainer: Trainer) -> None:  # what kill -9 before the first save leaves: a config only
        raise SystemExit(9)

    with pytest.raises(SystemExit):
        Trainer(small_config(), run, progress=False, verbose=False, on_step=killed_early).fit()
    assert (run / "config.json").is_file() and checkpoint.latest_checkpoint(run) is None
    rc, _, err = cli(capsys, "train", "--resume", str(run))
    assert rc == 2
    one_line_error(err, f"{run} has no checkpoint yet", "stopped before its first save", "--overwrite")


# ------------------------------------------------------------------------------ one training a folder


def test_a_folder_in_use_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    # flock treats two open() of one file as two holders, even in one process: this is another training
    with run_folder.RunLock(run):
        rc, _, err = cli(capsys, *train_args(run))
        assert rc == 2
        one_line_error(err, f"{run} is in use by another training (pid {os.getpid()})", "--out")
        assert [p.name for p in run.iterdir()] == [".lock"]  # nothing written beside the other training
    assert cli(capsys, *train_args(run))[0] == 0  # released: the folder is free again


@pytest.mark.slow
def test_two_trainings_into_one_folder_at_once(tmp_path: Path) -> None:
    """Started together into the same folder: one trains, the other stops in one line; the run is whole."""
    run = tmp_path / "run"
    sets = small_run_overrides(**{"model.name": "mlp", "model.args.hidden_sizes": [16]})
    cmd = [sys.executable, "-m", "archzoo", "train", "quickstart", *[a for s in sets for a in ("--set", s)],
           "--max-steps", "40", "--out", str(run), "--no-progress", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [p.communicate(timeout=240) + (p.returncode,) for p in procs]
    codes = sorted(code for _, _, code in results)
    assert codes == [0, 2], results
    loser_err = next(err for _, err, code in results if code == 2)
    assert len(loser_err.strip().splitlines()) == 1 and ("in use by another training" in loser_err
                                                         or "already holds" in loser_err), loser_err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["step"], r["split"]) for r in records]
    assert len(keys) == len(set(keys))  # one run's metrics, not two interleaved
    assert run_folder.read_status(run)["status"] == "max_steps"


def test_default_run_folders_are_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "strftime", lambda fmt: "20261204-120000")  # every run in the same second
    made = [run_folder.new_run_dir(tmp_path, "mnist-fast") for _ in range(3)]
    assert [p.name for p in made] == ["mnist-fast-20261204-120000", "mnist-fast-20261204-120000-2",
                                      "mnist-fast-20261204-120000-3"]
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)


def test_parallel_default_names_never_collide(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        made = pool.starmap(run_folder.new_run_dir, [(tmp_path, "x")] * 8)
    assert len(set(made)) == 8


# ------------------------------------------------------------------------------ status and output


def test_status_json_follows_the_run(tmp_path: Path) -> None:
    seen = []

    def look(trainer: Trainer) -> None:
        seen.append(run_folder.read_status(trainer.run_dir))

    result = Trainer(small_config(**{"train.eval_every_steps": 2}), tmp_path, progress=False, verbose=False,
                     on_step=look).fit()
    assert seen[0] is None and seen[2]["status"] == "running" and seen[2]["step"] == 2
    final = run_folder.read_status(tmp_path)
    assert final["status"] == "max_steps" == result.status and final["step"] == 4
    assert final["best"]["step"] == result.best["step"] and final["test"]["accuracy"] == result.test["accuracy"]
    assert final["train_seconds"] > 0 and final["updated"].endswith("+00:00")


def test_a_failed_run_says_so(tmp_path: Path) -> None:
    def fail(trainer: Trainer) -> None:
        if trainer.step == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Trainer(small_config(**{"train.eval_every_steps": 2}), tmp_path, progress=False, verbose=False,
                on_step=fail).fit()
    assert run_folder.read_status(tmp_path)["status"] == "failed"
    assert run_folder.read_status(tmp_path)["step"] == 2  # the last checkpoint it left


def test_no_validation_split_prints_no_empty_val_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Trainer(small_config(**{"data.val_size": 0, "train.eval_every_steps": 2}), tmp_path, progress=False).fit()
    out = capsys.readouterr().out
    assert "step 2 epoch 0: saved (no validation split)" in out and "val \n" not in out + "\n"
    assert not [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if r["split"] == "val"]


def test_no_progress_bar_when_output_is_not_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trainer = Trainer(small_config(), tmp_path, progress=True, verbose=False)  # stderr is captured: not a TTY
    assert not trainer.progress
    trainer.fit()
    assert "step/s" not in capsys.readouterr().err


def test_files_written_through_temporaries_have_the_usual_mode(tmp_path: Path) -> None:
    Trainer(small_config(), tmp_path, progress=False, verbose=False).fit()
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.json", "best.safetensors", "status.json", "eval.json", "metrics.jsonl"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


# ------------------------------------------------------------------------------ data verified first


def test_a_corrupt_test_file_stops_the_run_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from archzoo.data.sources import BUILTIN_DIR

    data = tmp_path / "data" / "mnist-small"
    data.mkdir(parents=True)
    for f in (BUILTIN_DIR / "mnist-small").iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    test_images = data / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(test_images.read_bytes())
    raw[-100] ^= 0xFF
    test_images.write_bytes(bytes(raw))
    run = tmp_path / "run"
    rc, _, err = cli(capsys, *train_args(run, "--data-dir", str(tmp_path / "data")))
    assert rc == 2
    one_line_error(err, f"checksum mismatch for {test_images}")
    assert not run.exists() or not (run / "metrics.jsonl").exists()  # no step was trained


# ------------------------------------------------------------------------------ a full disk


def test_a_full_disk_mid_run_names_the_file_and_keeps_the_last_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    real_write = checkpoint._write_synced

    def disk_fills_at_step_4(path: Path, data: bytes) -> None:
        if ".step-000000004." in str(path.parent):
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(checkpoint, "_write_synced", disk_fills_at_step_4)
    rc, _, err = cli(capsys, *train_args(run, "--set", "train.eval_every_steps=2"))
    assert rc == 2
    one_line_error(err, f"cannot write {run / 'checkpoints' / 'step-000000004' / 'model.safetensors'}",
                   "No space left on device", "free some space")
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000000002"]  # no partial folder
    assert run_folder.read_status(run)["status"] == "failed"
    monkeypatch.undo()
    rc, out, _ = cli(capsys, "train", "--resume", str(run), "--no-progress")
    assert rc == 0 and "stopped: max_steps after 4 steps" in out


def test_any_other_full_disk_write_is_one_line_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import builtins

    real_open = builtins.open

    def full(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if str(file).endswith("metrics.jsonl") and "a" in mode:
            raise OSError(28, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full)
    rc, _, err = cli(capsys, *train_args(tmp_path / "run"))
    assert rc == 2
    one_line_error(err, f"{tmp_path / 'run' / 'metrics.jsonl'}: No space left on device; free some space")
