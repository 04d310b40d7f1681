"""Scalars of a training run: ``train_log.csv``, ``val_log.csv`` and TensorBoard (rank 0 only).

Rows are dicts keyed by column; every row has ``iteration`` (iterations completed). On resume from
iteration ``t``, rows after ``t`` are dropped from the CSVs and TensorBoard events after ``t`` are
purged, so a resumed run's logs equal an uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flarelib.paths import atomic_write_text


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
