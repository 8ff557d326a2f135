"""Faults on the data path (data/sources.py): `archzoo data import` and `archzoo data fetch` killed with
SIGKILL at random moments never leave a half file under a catalogued name (only temporaries and
resumable .part files), and running the same command again completes with verified files."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archzoo.data.sources import DATASETS, verify_file
from helpers import SHARED_DATA
from mirror_server import serve

REPO = Path(__file__).resolve().parents[2]
needs_fashion = pytest.mark.skipif(not (SHARED_DATA / "fashion-mnist").is_dir(),
                                   reason="../shared/data/fashion-mnist not staged")


def archzoo(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("ARCHZOO_DATA", None)
    return subprocess.Popen([sys.executable, "-m", "archzoo", "data", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)


def assert_nothing_half_written(folder: Path) -> int:
    """Every file under a catalogued name verifies; returns how many there are."""
    spec = DATASETS.get("fashion-mnist")
    present = 0
    for fspec in spec.files:
        path = folder / fspec.name
        if path.exists():
            verify_file(fspec, path)  # raises on a torn file
            present += 1
    return present


def kill_repeatedly(args: list[str], tmp_path: Path, kills: int, seed: int) -> None:
    """Run ``archzoo data ARGS`` once whole (into a scratch folder, to time it), then ``kills`` times
    into one data dir, each killed at a random point of that time, then once more to completion."""
    rng = random.Random(seed)
    start = time.monotonic()
    whole = archzoo(*args, "--data-dir", str(tmp_path / "scratch"))
    assert whole.wait(timeout=240) == 0, whole.stderr.read().decode()[-2000:]
    duration = time.monotonic() - start
    data = tmp_path / "data"
    for _ in range(kills):
        proc = archzoo(*args, "--data-dir", str(data))
        time.sleep(rng.uniform(0.3, 1.0) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert_nothing_half_written(data / "fashion-mnist")
    proc = archzoo(*args, "--data-dir", str(data))
    assert proc.wait(timeout=240) == 0, proc.stderr.read().decode()[-2000:]
    assert assert_nothing_half_written(data / "fashion-mnist") == 4


@needs_fashion
def test_a_killed_import_leaves_no_half_file(tmp_path: Path) -> None:
    files = [str(p) for p in sorted((SHARED_DATA / "fashion-mnist").iterdir())]
    kill_repeatedly(["import", "fashion-mnist", *files], tmp_path, kills=3, seed=0)


@needs_fashion
def test_a_killed_download_leaves_no_half_file(tmp_path: Path) -> None:
    with serve(SHARED_DATA) as mirror:
        kill_repeatedly(["fetch", "fashion-mnist", "--mirror", mirror.url, "--no-progress"], tmp_path, kills=3, seed=1)
