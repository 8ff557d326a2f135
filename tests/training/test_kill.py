"""Faults (training/checkpoint.py, trainer.py): SIGKILL a training at random moments, and right in the
middle of checkpoint writes, over and over. After every kill the run folder holds a loadable last
checkpoint, and resuming again and again ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from archzoo.training import checkpoint
from archzoo.training.config import resolve_config
from archzoo.training.trainer import Trainer
from helpers import small_run_overrides

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 16
# a model large enough that a checkpoint write (weights, Adam moments, fsyncs) takes a while, saved
# after every step, so kills land in writes often
SETS = small_run_overrides(**{"model.name": "mlp", "model.args.hidden_sizes": [384, 384], "model.args.dropout": 0.2,
                              "data.val_size": 9700, "data.augment": "shift", "train.eval_every_steps": 1,
                              "train.eval_batch_size": 300})


def command(run: Path, resume: bool) -> list[str]:
    args = ["--resume", str(run)] if resume else ["quickstart", *[a for s in SETS for a in ("--set", s)],
                                                  "--out", str(run), "--max-steps", str(MAX_STEPS)]
    return [sys.executable, "-m", "archzoo", "train", *args, "--no-progress", "--device", "cpu"]


def newest_step(run: Path) -> int:
    latest = checkpoint.latest_checkpoint(run)
    return -1 if latest is None else int(latest.name.removeprefix("step-"))


def writing(run: Path) -> bool:
    """A checkpoint is being written: its temporary folder exists."""
    folder = run / checkpoint.FOLDER
    try:
        return any(name.startswith(".step-") for name in os.listdir(folder))
    except FileNotFoundError:
        return False


def kill_once(run: Path, resume: bool, rng: random.Random, in_a_write: bool) -> bool:
    """Start the training, wait for one new checkpoint, then SIGKILL it: at a random moment of the next
    steps, or as soon as a checkpoint write is seen. Returns whether it finished before the kill."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    before = newest_step(run)
    proc = subprocess.Popen(command(run, resume), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while newest_step(run) <= before and proc.poll() is None:
            assert time.monotonic() < deadline, "the training made no checkpoint"
            time.sleep(0.002)
        if in_a_write:
            while not writing(run) and proc.poll() is None and time.monotonic() < deadline:
                pass  # spin: a write lasts milliseconds
        else:
            time.sleep(rng.uniform(0, 0.15))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode != -signal.SIGKILL:
        assert proc.returncode == 0, err.decode()[-2000:]
        return True
    return False


def assert_loadable(run: Path) -> None:
    tensors, meta, state = checkpoint.load_checkpoint(run)
    assert meta["step"] == state["step"] >= 1
    assert all(torch.isfinite(t).all() for t in tensors.values())


def kill_and_resume(tmp_path: Path, kills: int, seed: int) -> None:
    torch.set_num_threads(1)  # the same arithmetic as the killed processes, bit for bit
    cfg = resolve_config("quickstart", SETS + [f"train.max_steps={MAX_STEPS}"])
    Trainer(cfg, tmp_path / "uninterrupted", device="cpu", progress=False, verbose=False).fit()

    run, rng, finished, in_writes = tmp_path / "run", random.Random(seed), False, 0
    for k in range(kills):
        in_a_write = k % 2 == 1
        finished = kill_once(run, k > 0, rng, in_a_write)
        if finished:
            break
        in_writes += in_a_write and any(p.name.startswith(".step-") for p in (run / checkpoint.FOLDER).iterdir())
        assert_loadable(run)
    if not finished:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
        proc = subprocess.run(command(run, True), capture_output=True, text=True, env=env, timeout=240)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert not [p for p in (run / checkpoint.FOLDER).iterdir() if p.name.startswith(".")]  # temporaries swept
    done, _, state = checkpoint.load_checkpoint(run)
    expected, _, _ = checkpoint.load_checkpoint(tmp_path / "uninterrupted")
    assert state["step"] == MAX_STEPS and done.keys() == expected.keys()
    for key in expected:
        assert torch.equal(done[key], expected[key]), f"{key} differs after {kills} kills"
    assert in_writes >= 1 or finished, "no kill landed inside a checkpoint write"


def test_killed_runs_always_resume_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    kill_and_resume(tmp_path, kills=2, seed=0)  # once at a random moment, once inside a checkpoint write


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_many_times_over(tmp_path: Path, seed: int) -> None:
    kill_and_resume(tmp_path, kills=12, seed=seed)
