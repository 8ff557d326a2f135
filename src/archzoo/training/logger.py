"""Metrics as JSON lines and long-format CSV (step, epoch, split, metric, value); TensorBoard optional."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text


class MetricsLogger:
    """Appends one record per log or evaluation; on resume, drops records past the resumed step."""

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int | None = None, tensorboard: bool = False):
        self.enabled = enabled
        self.records: list[dict[str, Any]] = []
        self.jsonl, self.csv = run_dir / "metrics.jsonl", run_dir / "metrics.csv"
        self.writer = None
        if not enabled:
            return
        if resume_step is not None and self.jsonl.exists():
            self.records = [r for r in self._read(self.jsonl) if r["step"] <= resume_step]
        atomic_write_text(self.jsonl, "".join(json.dumps(r) + "\n" for r in self.records))
        with open(self.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "epoch", "split", "metric", "value"])
            for r in self.records:
                self._csv_rows(w, r)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("train.tensorboard=true needs the tensorboard package: pip install tensorboard") from None
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    @staticmethod
    def _read(path: Path) -> list[dict[str, Any]]:
        """The records of a metrics.jsonl; a line torn by a crash while appending is dropped."""
        records = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                records.append(record)
        return records

    @staticmethod
    def _csv_rows(writer: Any, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if key not in ("step", "epoch", "split"):
                writer.writerow([record["step"], record.get("epoch", ""), record.get("split", ""), key, value])

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.records.append(record)
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")
        with open(self.csv, "a", newline="") as f:
            self._csv_rows(csv.writer(f), record)
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "epoch", "split") and isinstance(value, int | float):
                    self.writer.add_scalar(f"{record.get('split', 'train')}/{key}", value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
