"""Scalars of a training run: ``train_log.csv``, ``val_log.csv`` and TensorBoard (rank 0 only).

Rows are dicts keyed by column; every row has ``iteration`` (iterations completed). On resume from
iteration ``t``, rows after ``t`` are dropped from the CSVs and TensorBoard events after ``t`` are
purged, so a resumed run's logs equal an uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flarelib.paths import atomic_write_text

TRAIN_LOG_NAME = "train_log.csv"
VAL_LOG_NAME = "val_log.csv"
TENSORBOARD_DIR = "tensorboard"


class CsvLog:
    """Append-only CSV of scalar rows keyed by ``iteration``; on resume, rows after it are dropped."""

    def __init__(self, path: Path, resume_iteration: int):
        self.path = Path(path)
        self.fields: list[str] | None = None
        if self.path.is_file():
            with self.path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                fields = list(reader.fieldnames or [])
                rows = [
                    r for r in reader if r.get("iteration") and int(float(r["iteration"])) <= resume_iteration
                ]
            if resume_iteration > 0 and fields:
                self.fields = fields
                atomic_write_text(self.path, self._render(rows, header=True))
            else:
                self.path.unlink()

    def _render(self, rows: Sequence[dict[str, Any]], header: bool) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields, extrasaction="ignore", restval="")
        if header:
            w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        return buf.getvalue()

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows with one ``write`` (header from the first row of a new file)."""
        if not rows:
            return
        header = False
        if self.fields is None:
            self.fields = list(rows[0])
            header = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as fh:
            fh.write(self._render(rows, header))
            fh.flush()
            os.fsync(fh.fileno())


def tensorboard_writer(log_dir: Path, purge_step: int | None) -> Any:
    """A ``SummaryWriter`` on ``log_dir`` (events from ``purge_step`` on dropped), or None with a
    warning when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as exc:  # tensorboard not installed
        warnings.warn(f"TensorBoard logging off ({exc})", stacklevel=2)
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


class RunLogs:
    """The logs of one run in ``out_dir`` (None: this rank writes nothing, rows are only counted).

    Training rows are buffered and written every ``log_every`` rows (and on :meth:`flush`); a
    validation row is written at once. Scalars go to TensorBoard as ``train/<name>`` and
    ``val/<name>`` at step ``iteration`` (non-finite training values are left out of TensorBoard).
    """

    def __init__(self, out_dir: Path | None, resume_iteration: int, *, log_every: int, tensorboard: bool):
        self.log_every = max(1, int(log_every))
        self.pending: list[dict[str, float]] = []
        self.train_csv = self.val_csv = self.writer = None
        if out_dir is None:
            return
        start = int(resume_iteration)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.train_csv = CsvLog(out_dir / TRAIN_LOG_NAME, start)
        self.val_csv = CsvLog(out_dir / VAL_LOG_NAME, start)
        if tensorboard:
            self.writer = tensorboard_writer(
                out_dir / TENSORBOARD_DIR, purge_step=start + 1 if start else None
            )

    def add_train(self, row: dict[str, float]) -> None:
        """Buffer a training row; write the buffer once it holds ``log_every`` rows."""
        self.pending.append(row)
        if len(self.pending) >= self.log_every:
            self.flush()

    def flush(self) -> None:
        """Write the buffered training rows."""
        if self.train_csv is not None:
            self.train_csv.append(self.pending)
        if self.writer is not None:
            for row in self.pending:
                for k, v in row.items():
                    if k != "iteration" and isinstance(v, float) and math.isfinite(v):
                        self.writer.add_scalar(f"train/{k}", v, int(row["iteration"]))
            self.writer.flush()
        self.pending.clear()

    def add_val(self, iteration: int, metrics: dict[str, float]) -> dict[str, float]:
        """Write the validation row ``{"iteration", **metrics}`` and return it."""
        row = {"iteration": float(iteration), **metrics}
        if self.val_csv is not None:
            self.val_csv.append([row])
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(f"val/{k}", v, iteration)
            self.writer.flush()
        return row

    def close(self) -> None:
        """Flush and close TensorBoard."""
        self.flush()
        if self.writer is not None:
            self.writer.close()
