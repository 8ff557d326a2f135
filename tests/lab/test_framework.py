"""The lab framework end to end on a tiny fake experiment (tests/lab/conftest.py): verdicts computed from
the data, cells cached and reused, more seeds computing only the new cells, an interrupted run resuming,
and pages, figures, raw JSON and the index rebuilt from the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archzoo.errors import UserError
from archzoo.lab.report import report
from archzoo.lab.runner import run_experiment

NAME = "fake-bigger-is-better"


def results(out: Path) -> dict:
    return json.loads((out / NAME / "results.json").read_text())


def test_a_run_writes_page_figure_raw_json_and_index(fake_experiment, tmp_path: Path) -> None:
    page = run_experiment(NAME, tmp_path, progress=False)
    assert page == tmp_path / f"{NAME}.md"
    text = page.read_text()
    assert "> Bigger is better." in text and "Nobody 2024" in text  # the claim, quoted, with its source
    assert "**Verdict: supported.** size 2 wins in every seed." in text
    assert "Rule (fixed before the run): supported if size 2 scores above size 1" in text
    assert "| 2 | 20.5 ± 0.7 |" in text  # mean ± std over the two seeds
    assert f"![Score against size.]({NAME}/scores.png)" in text and (tmp_path / NAME / "scores.png").stat().st_size > 0
    assert "compute time of the 4 cells" in text and "machine:" in text and "load average" in text
    summary = results(tmp_path)
    assert summary["complete"] and summary["seeds"] == [0, 1]
    assert summary["claims"][0]["verdict"] == {"outcome": "supported", "reason": "size 2 wins in every seed.",
                                               "numbers": {"size_2_wins": "2/2"}}
    cells = sorted((tmp_path / NAME / "cells").iterdir())
    assert len(cells) == 4 and all(json.loads(c.read_text())["result"]["score"] >= 10 for c in cells)
    assert not (tmp_path / NAME / "runs").exists()  # scratch folders are removed once their cells are cached
    index = (tmp_path / "index.md").read_text()
    assert f"[{NAME}]({NAME}.md)" in index and "**supported**" in index and "1 supported, 0 refuted" in index
    assert "| full, 2 seeds |" in index and "Quick mode" not in text


def test_the_verdict_follows_the_data(fake_experiment, tmp_path: Path) -> None:
    fake_experiment.invert = True
    run_experiment(NAME, tmp_path, progress=False)
    assert results(tmp_path)["claims"][0]["verdict"]["outcome"] == "refuted"


def test_finished_cells_are_reused_and_more_seeds_compute_only_new_cells(fake_experiment, tmp_path: Path) -> None:
    run_experiment(NAME, tmp_path, progress=False)
    assert len(fake_experiment.calls) == 4
    run_experiment(NAME, tmp_path, progress=False)
    assert len(fake_experiment.calls) == 4  # nothing recomputed
    run_experiment(NAME, tmp_path, seeds=3, progress=False)
    assert fake_experiment.calls[4:] == [(1, 2), (2, 2)]  # only seed 2
    assert results(tmp_path)["seeds"] == [0, 1, 2] and len(results(tmp_path)["cells"]) == 6
    assert "seeds**" not in (tmp_path / f"{NAME}.md").read_text()
    run_experiment(NAME, tmp_path, seeds=1, progress=False)  # fewer seeds than the default: the page says so
    assert len(fake_experiment.calls) == 6 and "**1 of the experiment's 2 seeds**" in (tmp_path / f"{NAME}.md").read_text()
    # quick mode is another configuration: its cells are computed, the full ones stay
    run_experiment(NAME, tmp_path, quick=True, seeds=1, progress=False)
    assert fake_experiment.calls[6:] == [(1, 0), (2, 0)] and len(list((tmp_path / NAME / "cells").iterdir())) == 8
    # the page and the index say the verdict is the quick grid's, not the full mode's
    assert "**Quick mode**" in (tmp_path / f"{NAME}.md").read_text()
    assert "| quick, 1 seed |" in (tmp_path / "index.md").read_text()


def test_an_interrupted_run_resumes_where_it_stopped(fake_experiment, tmp_path: Path) -> None:
    fake_experiment.interrupt_at = (1, 1)  # the third cell
    with pytest.raises(KeyboardInterrupt):
        run_experiment(NAME, tmp_path, progress=False)
    assert fake_experiment.calls == [(1, 0), (2, 0)]
    assert len(list((tmp_path / NAME / "cells").iterdir())) == 2
    # the page of an unfinished experiment says so and gives no verdict
    report(tmp_path)
    assert "**Verdict: incomplete.** 2 of 4 cells are not computed yet" in (tmp_path / f"{NAME}.md").read_text()
    assert "1 incomplete" in (tmp_path / "index.md").read_text()
    fake_experiment.interrupt_at = None
    run_experiment(NAME, tmp_path, progress=False)  # its scratch folder, with partial work, starts afresh
    assert fake_experiment.calls == [(1, 0), (2, 0), (1, 1), (2, 1)]
    assert results(tmp_path)["claims"][0]["verdict"]["outcome"] == "supported"


def test_an_interrupted_training_cell_continues_from_its_checkpoint_as_if_never_stopped(
        fake_training_experiment, tmp_path: Path) -> None:
    exp, name = fake_training_experiment, fake_training_experiment.name
    run_experiment(name, tmp_path / "whole", seeds=1, progress=False)
    exp.stop_at = 5  # as Ctrl-C or SIGTERM would, after the checkpoint of step 4
    with pytest.raises(KeyboardInterrupt):
        run_experiment(name, tmp_path / "parts", seeds=1, progress=False)
    assert not any((tmp_path / "parts" / name / "cells").iterdir())  # nothing cached from the interrupted cell
    exp.stop_at = None
    run_experiment(name, tmp_path / "parts", seeds=1, progress=False)
    assert exp.first_steps == [0, 0, 5]  # the second attempt continued where the first stopped
    whole, parts = (json.loads(next((tmp_path / d / name / "cells").iterdir()).read_text()) for d in ("whole", "parts"))
    assert parts["result"] == whole["result"]  # test accuracy and loss, bit for bit
    assert parts["meta"]["resumed"] is True and "resumed" not in whole["meta"]
    assert not (tmp_path / "parts" / name / "runs").exists()
    page = (tmp_path / "parts" / f"{name}.md").read_text()
    assert "1 cell(s) continued a training that an interruption stopped" in page
    assert "continued a training" not in (tmp_path / "whole" / f"{name}.md").read_text()


def test_an_interrupted_training_cell_whose_recipe_changed_starts_afresh(fake_training_experiment,
                                                                        tmp_path: Path) -> None:
    exp, name = fake_training_experiment, fake_training_experiment.name
    exp.stop_at = 5
    with pytest.raises(KeyboardInterrupt):
        run_experiment(name, tmp_path, seeds=1, progress=False)
    exp.stop_at, exp.steps = None, 10  # the code changed between the attempts: its checkpoint is not reused
    run_experiment(name, tmp_path, seeds=1, progress=False)
    assert exp.first_steps == [0, 0]


def cell_results(out: Path) -> dict[str, dict]:
    return {f.name: json.loads(f.read_text())["result"] for f in (out / NAME / "cells").iterdir()}


def test_jobs_compute_the_same_cells_in_worker_processes(fake_experiment, tmp_path: Path) -> None:
    run_experiment(NAME, tmp_path / "one", progress=False)
    assert len(fake_experiment.calls) == 4
    run_experiment(NAME, tmp_path / "two", progress=False, jobs=2)
    assert len(fake_experiment.calls) == 4  # computed in the workers, not in this process
    assert cell_results(tmp_path / "two") == cell_results(tmp_path / "one")
    assert results(tmp_path / "two")["claims"] == results(tmp_path / "one")["claims"]
    assert json.loads((tmp_path / "two" / NAME / "manifest.json").read_text())["jobs"] == 2
    assert not (tmp_path / "two" / NAME / "runs").exists()


def test_cells_that_run_alone_are_computed_here_before_the_workers_start(fake_experiment, tmp_path: Path) -> None:
    fake_experiment.alone_sizes = {1}
    run_experiment(NAME, tmp_path, progress=False, jobs=2)
    assert fake_experiment.calls == [(1, 0), (1, 1)]  # the size-2 cells ran in the workers
    assert len(cell_results(tmp_path)) == 4 and results(tmp_path)["claims"][0]["verdict"]["outcome"] == "supported"


def test_an_interrupted_cell_in_a_worker_stops_the_run_and_the_others_stay_cached(fake_experiment,
                                                                                 tmp_path: Path) -> None:
    fake_experiment.interrupt_at = (2, 0)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(NAME, tmp_path, progress=False, jobs=2)
    cached = {(r["cell"]["config"]["size"], r["cell"]["seed"]) for r in
              (json.loads(f.read_text()) for f in (tmp_path / NAME / "cells").iterdir())}
    assert (2, 0) not in cached and (1, 0) in cached  # the cell beside the interrupted one finished
    fake_experiment.interrupt_at = None
    run_experiment(NAME, tmp_path, progress=False, jobs=2)
    assert results(tmp_path)["claims"][0]["verdict"]["outcome"] == "supported"


def test_no_queued_cell_starts_after_a_cell_failed_in_a_worker(fake_experiment, tmp_path: Path) -> None:
    fake_experiment.interrupt_at = (2, 0)
    fake_experiment.seconds = {1: 2.0}  # (1, 0) runs beside the failing cell; (1, 1) is queued behind them
    with pytest.raises(KeyboardInterrupt):
        run_experiment(NAME, tmp_path, progress=False, jobs=2)
    cached = {(r["cell"]["config"]["size"], r["cell"]["seed"]) for r in
              (json.loads(f.read_text()) for f in (tmp_path / NAME / "cells").iterdir())}
    assert cached == {(1, 0)}  # the pool had handed (1, 1) to the failed cell's worker: it did not start


STOPPED_RUN = """
import sys
from pathlib import Path
from lab_fakes import FakeTrainingExperiment
from archzoo.lab import EXPERIMENTS
from archzoo.lab.runner import run_experiment

exp = FakeTrainingExperiment()
exp.steps = 10**7  # hours: only a stop ends these cells
EXPERIMENTS._entries[exp.name] = exp
run_experiment(exp.name, Path(sys.argv[1]), seeds=3, jobs=2, progress=False)
"""


def test_a_sigterm_to_the_lab_run_stops_its_workers_trainings_at_a_checkpoint(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    tests = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.Popen([sys.executable, "-c", STOPPED_RUN, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    runs = tmp_path / "fake-resumable-training" / "runs"
    deadline = time.monotonic() + 120
    while not (runs.is_dir() and len(list(runs.glob("*/work/metrics.jsonl"))) == 2 and
               all(p.stat().st_size for p in runs.glob("*/work/metrics.jsonl"))):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[0]
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)  # as a scheduler or `docker stop` does: to the main process only
    output, _ = run.communicate(timeout=60)  # a worker left running would hold the pipe open past this
    assert run.returncode != 0 and "KeyboardInterrupt" in output
    for work in runs.glob("*/work"):  # the two running trainings stopped at the end of a step and saved
        assert json.loads((work / "status.json").read_text())["status"] == "interrupted"
        assert any((work / "checkpoints").iterdir())
    assert not any((tmp_path / "fake-resumable-training" / "cells").iterdir())
    assert sorted(p.name.rsplit("-", 1)[-1] for p in runs.iterdir()) == ["seed0", "seed1"]  # seed 2 never started


def test_only_computes_the_named_cells_and_the_parts_add_up_to_the_whole_run(fake_experiment,
                                                                           tmp_path: Path) -> None:
    run_experiment(NAME, tmp_path, progress=False, only=["size 2"])
    assert fake_experiment.calls == [(2, 0), (2, 1)]
    summary = results(tmp_path)
    assert not summary["complete"] and summary["missing_cells"] == 2 and summary["claims"][0]["verdict"] is None
    assert "Missing cells (2): size 1 seed 0, size 1 seed 1" in (tmp_path / f"{NAME}.md").read_text()
    run_experiment(NAME, tmp_path, progress=False, only=["size 1", "size 2"], jobs=2)  # size 2 is cached
    assert len(fake_experiment.calls) == 2 and len(cell_results(tmp_path)) == 4
    assert results(tmp_path)["complete"]
    whole = tmp_path / "whole"
    run_experiment(NAME, whole, progress=False)
    assert cell_results(whole) == cell_results(tmp_path)
    assert results(whole)["claims"] == results(tmp_path)["claims"]


def test_only_an_unknown_label_is_a_one_line_error_naming_the_labels(fake_experiment, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such cell label; its labels are size 1, size 2"):
        run_experiment(NAME, tmp_path, progress=False, only=["size 3"])
    assert fake_experiment.calls == []


def test_jobs_below_one_are_a_one_line_error(fake_experiment, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--jobs must be >= 1"):
        run_experiment(NAME, tmp_path, progress=False, jobs=0)


def test_report_rebuilds_pages_from_the_cache(fake_experiment, tmp_path: Path) -> None:
    run_experiment(NAME, tmp_path, progress=False)
    (tmp_path / f"{NAME}.md").unlink()
    (tmp_path / "index.md").unlink()
    assert report(tmp_path) == [tmp_path / f"{NAME}.md"]
    assert len(fake_experiment.calls) == 4 and "Verdict: supported" in (tmp_path / f"{NAME}.md").read_text()
    assert (tmp_path / "index.md").is_file()


def test_a_cell_of_another_code_version_is_computed_again(fake_experiment, tmp_path: Path) -> None:
    run_experiment(NAME, tmp_path, progress=False)
    fake_experiment.version = 2
    run_experiment(NAME, tmp_path, progress=False)
    assert len(fake_experiment.calls) == 8


def test_a_foreign_folder_in_the_way_is_never_deleted(fake_experiment, tmp_path: Path) -> None:
    from archzoo.lab.base import Cell

    cell = Cell({"size": 1, "quick": False}, 0)
    mine = tmp_path / NAME / "runs" / cell.key
    mine.mkdir(parents=True)
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="was not made by archzoo lab"):
        run_experiment(NAME, tmp_path, progress=False)
    assert (mine / "thesis.tex").read_text() == "precious"


def test_the_page_names_each_machine_of_a_run_split_over_machines(fake_experiment, tmp_path: Path) -> None:
    run_experiment(NAME, tmp_path, progress=False)
    machine = json.loads(next((tmp_path / NAME / "cells").iterdir()).read_text())["meta"]["machine"]
    assert machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "machine:" in (tmp_path / f"{NAME}.md").read_text() and "cell(s) on" not in (tmp_path / f"{NAME}.md").read_text()
    first = next((tmp_path / NAME / "cells").iterdir())
    record = json.loads(first.read_text())
    record["meta"]["machine"] = {**machine, "cpu_capability": "AVX512", "native_bf16": True}
    first.write_text(json.dumps(record))
    report(tmp_path)
    text = (tmp_path / f"{NAME}.md").read_text()
    assert "  - 1 cell(s) on " in text and "(AVX512, native bf16)" in text and "  - 3 cell(s) on " in text


def test_report_without_results_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="holds no lab results"):
        report(tmp_path)
    with pytest.raises(UserError, match="is not a folder"):
        report(tmp_path / "missing")
