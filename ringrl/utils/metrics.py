"""Per-step metrics: one JSON object per line in ``metrics.jsonl`` plus TensorBoard events.

Every record carries ``step`` and ``time`` (seconds since the logger started); names use
``/`` groups as in DESIGN.md's schema. Lines are flushed as they are written, so an
interrupted run keeps every completed step.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any


class MetricsLogger:
    """``write=False`` (data-parallel ranks other than 0) keeps the clock and builds the records, writing nothing."""

    def __init__(
        self, run_dir: Path, tensorboard: bool = True, append: bool = False, t0: float = 0.0, write: bool = True
    ):
        self.path = Path(run_dir) / "metrics.jsonl"
        self._file = None
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not append:
                self.path.write_text("", encoding="utf-8")
            # always O_APPEND: after a rollback truncates the file, lines go on at its new end
            self._file = self.path.open("a", encoding="utf-8")
        self._start = time.perf_counter() - t0
        self._tb = None
        if tensorboard and write:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # tensorboard is a declared dependency
                raise RuntimeError("tensorboard is required for event logs (pip install tensorboard)") from e
            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def log(self, step: int, values: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"step": int(step), "time": round(self.elapsed(), 4)}
        for k, v in values.items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                v = str(v)  # JSON has no NaN/inf; keep it visible as a string
            record[k] = v
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        if self._tb is not None:
            for k, v in record.items():
                if k not in ("step", "time") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)
        return record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    rows = []
    with p.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows
