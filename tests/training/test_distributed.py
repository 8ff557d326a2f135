"""Data-parallel training (training/distributed.py, trainer.py): two CPU ranks under torchrun with a
global batch B compute the updates of one process with batch B, and only rank 0 writes the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from archzoo.training import checkpoint
from archzoo.training.config import load_run_config, resolve_config
from archzoo.training.distributed import DistInfo, agree, mean_over_ranks
from archzoo.training.trainer import STOP_REASONS, Trainer, override_train
from helpers import small_run_overrides

REPO = Path(__file__).resolve().parents[2]


ARCHZOO_WITHOUT_FIGURES = """
import sys
from pathlib import Path

import archzoo.viz.plots as plots
from archzoo.cli.main import main


def stub(*args, **kwargs):
    path = next(a for a in args if isinstance(a, Path))
    path.write_bytes(b"")
    return path


plots.plot_confusion = plots.plot_image_grid = plots.plot_curves = stub
sys.exit(main(sys.argv[1:]))
"""


def test_two_ranks_equal_one_process(tmp_path: Path) -> None:
    # no dropout (each rank draws its own masks), fp32; augmentation on: each rank must take its
    # slice of the one draw over the global batch; accumulation on top of the ranks
    sets = small_run_overrides(**{"model.name": "mlp", "model.args.hidden_sizes": [32], "model.args.dropout": 0.0,
                                  "data.augment": "shift", "train.accum_steps": 2, "train.log_every_steps": 3,
                                  "train.eval_every_steps": 6})
    dist_dir = tmp_path / "two-ranks"
    # `python -m archzoo` with the report's figures stubbed out, as in this process (seconds saved)
    entry = tmp_path / "archzoo_entry.py"
    entry.write_text(ARCHZOO_WITHOUT_FIGURES)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(entry), "train", "quickstart", *[a for s in sets for a in ("--set", s)], "--max-steps", "12",
           "--out", str(dist_dir), "--no-progress", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x 2 ranks" in proc.stdout and proc.stdout.count("stopped: max_steps after 12 steps") == 1
    assert "Traceback" not in proc.stderr

    cfg = resolve_config("quickstart", sets + ["train.max_steps=12"])
    single = Trainer(cfg, tmp_path / "one-process", progress=False, verbose=False)
    assert load_run_config(dist_dir) == single.cfg
    start = {k: v.clone() for k, v in single.model.state_dict().items()}
    single.fit()

    ranks, _ = checkpoint.read_weights(dist_dir / "model.safetensors")
    one, _ = checkpoint.read_weights(tmp_path / "one-process" / "model.safetensors")
    assert ranks.keys() == one.keys()
    for key in one:
        torch.testing.assert_close(ranks[key], one[key], atol=1e-5, rtol=0, msg=f"{key} differs")
    # and not trivially: the weights moved
    assert (one["net.1.weight"] - start["net.1.weight"]).abs().max() > 1e-3

    # rank 0 alone wrote the metrics: one record per (step, split), the same as one process logs,
    # with the train loss averaged over the ranks' shards
    lines = (dist_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    keys = [(r["step"], r["split"]) for r in records]
    assert len(keys) == len(set(keys))
    single_records = [json.loads(line) for line in (tmp_path / "one-process" / "metrics.jsonl").read_text().splitlines()]
    assert keys == [(r["step"], r["split"]) for r in single_records]
    for r, s in zip(records, single_records, strict=True):
        assert r["loss"] == pytest.approx(s["loss"], abs=1e-5)
    assert sorted(p.name for p in dist_dir.iterdir()) == sorted(p.name for p in (tmp_path / "one-process").iterdir())
    assert not list(dist_dir.glob(".*.tmp"))


def torchrun(tmp_path: Path, launch: list[str], args: list[str]) -> subprocess.Popen:
    """``archzoo ARGS`` under torchrun with ``launch`` options, the report's figures stubbed out."""
    entry = tmp_path / "archzoo_entry.py"
    entry.write_text(ARCHZOO_WITHOUT_FIGURES)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *launch, str(entry), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    # torchrun's agent logs a traceback when the agent holding the rendezvous store leaves first while the
    # other still waits in its exit barrier ("Error waiting on exit barrier", exit status still 0): a race
    # between the launchers, not the workers'. Every other traceback fails the test.
    ours = [line for line in err.splitlines() if "elastic/agent/server/api.py:" not in line]
    assert not any("Traceback" in line for line in ours), err[-3000:]
    return out


def assert_close_weights(a: Path, b: Path) -> None:
    wa, wb = checkpoint.read_weights(a)[0], checkpoint.read_weights(b)[0]
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=1e-5, rtol=0, msg=f"{key} differs")


def test_a_gan_trains_on_two_ranks_like_one_process(tmp_path: Path) -> None:
    """Two optimizers under DDP: each phase's network averages its own gradients over the ranks; no batch
    norm or dropout (per-rank statistics and masks would differ from one process by design)."""
    sets = ["task='image_generation'", "model.name='gan_mlp'", "model.args.g_hidden=[32, 32]",
            "model.args.d_hidden=[32]", "model.args.latent_dim=16", "model.args.dropout=0.0",
            "model.args.batch_norm=false", "data.dataset='mnist-small'", "data.val_size=9400", "data.grid_size=8",
            "train.batch_size=64", "train.optimizer='adam'", "train.lr=2e-4", "train.accum_steps=2",
            "train.eval_every_steps=5", "train.eval_batch_size=600"]
    args = ["train", *[a for s in sets for a in ("--set", s)], "--max-steps", "10", "--no-progress", "--device", "cpu"]
    out = finish(torchrun(tmp_path, ["--standalone", "--nproc_per_node", "2"], [*args, "--out", str(tmp_path / "ranks")]))
    assert "x 2 ranks" in out and out.count("stopped: max_steps after 10 steps") == 1
    single = Trainer(resolve_config(None, sets + ["train.max_steps=10"]), tmp_path / "one", device="cpu",
                     progress=False, verbose=False)
    start = {k: v.clone() for k, v in single.model.state_dict().items()}
    single.fit()
    assert_close_weights(tmp_path / "ranks" / "model.safetensors", tmp_path / "one" / "model.safetensors")
    moved = checkpoint.read_weights(tmp_path / "one" / "model.safetensors")[0]
    for net in ("generator", "discriminator"):  # both networks were trained, not trivially equal
        assert max((moved[k] - start[k]).abs().max() for k in start if k.startswith(net)) > 1e-4, net


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_one_machine_then_resumed_in_one_process(tmp_path: Path) -> None:
    """`torchrun --nnodes 2` with one process per node over loopback (gloo) computes the single-process
    updates, and its checkpoint resumes in one process to the single-process run's end."""
    sets = small_run_overrides(**{"model.name": "mlp", "model.args.hidden_sizes": [32], "model.args.dropout": 0.0,
                                  "data.augment": "shift", "train.eval_every_steps": 6, "train.schedule": "constant"})
    args = ["train", "quickstart", *[a for s in sets for a in ("--set", s)], "--no-progress", "--device", "cpu"]
    port = free_port()
    nodes = [torchrun(tmp_path, ["--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1", "--master_addr",
                                 "127.0.0.1", "--master_port", str(port)],
                      [*args, "--max-steps", "6", "--out", str(tmp_path / "two-nodes")]) for rank in (0, 1)]
    outs = [finish(node) for node in nodes]
    assert "x 2 ranks" in outs[0] and "stopped: max_steps after 6 steps" in outs[0]
    assert outs[1] == ""  # rank 1 writes nothing, prints nothing

    single = resolve_config("quickstart", sets + ["train.max_steps=12"])
    Trainer(single, tmp_path / "one", progress=False, verbose=False).fit()
    six, twelve = checkpoint.checkpoints(tmp_path / "one")  # evaluated (and saved) at steps 6 and 12
    assert_close_weights(tmp_path / "two-nodes" / "model.safetensors", six / "model.safetensors")

    # the two-node run's own config (same global batch), continued to step 12 by one process
    resumed = Trainer(override_train(load_run_config(tmp_path / "two-nodes"), max_steps=12), tmp_path / "two-nodes",
                      resume=True, progress=False, verbose=False)
    assert resumed.step == 6 and resumed.fit().step == 12
    assert_close_weights(tmp_path / "two-nodes" / "model.safetensors", twelve / "model.safetensors")


def test_single_process_helpers_are_identities() -> None:
    info = DistInfo()
    assert not info.enabled and info.is_main
    assert agree("time_budget", STOP_REASONS, info, torch.device("cpu")) == "time_budget"
    value = torch.tensor(2.5)
    assert mean_over_ranks(value, info) is value


@pytest.mark.parametrize(("mine", "theirs", "agreed"), [
    (None, None, None),
    (None, "time_budget", "time_budget"),  # not "interrupted": the run still evaluates and reports
    ("time_budget", None, "time_budget"),
    ("time_budget", "interrupted", "interrupted"),  # Ctrl-C on any rank wins
    ("early_stopped", None, "early_stopped"),
    ("reached_99", None, "reached_99"),  # an on_step hook's own reason
    (None, "reached_99", "stopped"),
])
def test_ranks_agree_on_one_stop_reason(mine: str | None, theirs: str | None, agreed: str | None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import archzoo.training.distributed as distributed

    sent: list[torch.Tensor] = []
    monkeypatch.setattr(distributed.dist, "all_reduce", lambda t, op=None: sent.append(t.clone()))
    agree(theirs, STOP_REASONS, DistInfo(rank=0, world_size=2), torch.device("cpu"))  # what the other rank sends

    def all_reduce(t: torch.Tensor, op: object = None) -> None:
        assert op == distributed.dist.ReduceOp.MAX
        t.copy_(torch.maximum(t, sent[0]))

    monkeypatch.setattr(distributed.dist, "all_reduce", all_reduce)
    assert agree(mine, STOP_REASONS, DistInfo(rank=1, world_size=2), torch.device("cpu")) == agreed
