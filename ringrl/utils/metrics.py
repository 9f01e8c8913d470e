"""Per-step metrics: one JSON object per line in ``metrics.jsonl``, plus TensorBoard events
and, with ``logger.wandb=true``, a Weights & Biases run.

Every record carries ``step`` and ``time`` (seconds since the logger started); names use
``/`` groups as in DESIGN.md's schema. Lines are flushed as they are written, so an
interrupted run keeps every completed step.

W&B gets every record the JSONL gets (``step`` is logged as a metric and used as the x axis,
so a resumed or rolled-back run, whose steps go back, is drawn right), the resolved config
at start and the run's summary at the end. Its files live under ``RUN_DIR/wandb``; the run id
is kept in ``RUN_DIR/wandb/run-id`` so a resumed run continues the same W&B run. Offline
(``WANDB_MODE=offline``) it writes the same files and syncs later with ``wandb sync``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringrl.config import doc
from ringrl.errors import ConfigError


@dataclass(frozen=True)
class LoggerConfig:
    """``logger.*``: where metrics go besides ``metrics.jsonl`` and TensorBoard."""

    wandb: bool = doc("also log to Weights & Biases (pip install 'ringrl[wandb]'; WANDB_MODE=offline works)", False)
    wandb_project: str = doc("W&B project", "ringrl")
    wandb_name: str | None = doc("W&B run name; null: the run directory's name", None)
    wandb_group: str | None = doc("W&B group (a pipeline groups its stages under its own name)", None)

    def validate(self) -> None:
        if self.wandb and importlib.util.find_spec("wandb") is None:
            raise ConfigError("logger.wandb", "needs the wandb package: pip install 'ringrl[wandb]'")


class WandbSink:
    """One W&B run in ``RUN_DIR/wandb``, resumed by id when the run directory is resumed."""

    def __init__(self, cfg: LoggerConfig, run_dir: Path, config: dict[str, Any], resume: bool):
        import wandb

        root = Path(run_dir) / "wandb"
        root.mkdir(parents=True, exist_ok=True)
        id_file = root / "run-id"
        run_id = id_file.read_text().strip() if resume and id_file.is_file() else secrets.token_hex(4)
        self.run = wandb.init(
            project=cfg.wandb_project,
            name=cfg.wandb_name or Path(run_dir).resolve().name,
            group=cfg.wandb_group,
            dir=str(run_dir),
            config=config,
            id=run_id,
            resume="allow",
        )
        id_file.write_text(run_id)
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")

    def log(self, record: dict[str, Any]) -> None:
        """Every number of ``record``, NaN and inf included (a loss or KL blowing up is what a W&B
        chart must show)."""
        self.run.log({k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})

    def finish(self, summary: dict[str, Any] | None) -> None:
        if summary:
            self.run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
        self.run.finish()


class MetricsLogger:
    """``write=False`` (data-parallel ranks other than 0) keeps the clock and builds the records, writing nothing."""

    def __init__(
        self,
        run_dir: Path,
        tensorboard: bool = True,
        append: bool = False,
        t0: float = 0.0,
        write: bool = True,
        wandb: LoggerConfig | None = None,
        config: dict[str, Any] | None = None,
    ):
        self.path = Path(run_dir) / "metrics.jsonl"
        self._file = None
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not append:
                self.path.write_text("", encoding="utf-8")
            self._file = self.path.open("a", encoding="utf-8")
        self._start = time.perf_counter() - t0
        self._tb = None
        if tensorboard and write:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # tensorboard is a declared dependency
                raise RuntimeError("tensorboard is required for event logs (pip install tensorboard)") from e
            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))
        self._wandb = (
            WandbSink(wandb, run_dir, config or {}, resume=append) if wandb and wandb.wandb and write else None
        )

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def log(self, step: int, values: dict[str, Any]) -> dict[str, Any]:
        raw: dict[str, Any] = {"step": int(step), "time": round(self.elapsed(), 4)}
        raw.update((k, v.item() if hasattr(v, "item") else v) for k, v in values.items())
        # JSON has no NaN/inf: the file keeps them visible as strings (TensorBoard skips them); W&B gets the floats
        record = {k: str(v) if isinstance(v, float) and not math.isfinite(v) else v for k, v in raw.items()}
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        if self._tb is not None:
            for k, v in record.items():
                if k not in ("step", "time") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(raw)
        return record

    def reopen(self) -> None:
        """Write on at the end of ``metrics.jsonl`` as it is now (after a rollback replaced it, truncated)."""
        if self._file is not None:
            self._file.close()
            self._file = self.path.open("a", encoding="utf-8")

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Close every sink; ``summary`` (the run's summary.json) goes to W&B's run summary."""
        if self._wandb is not None:
            self._wandb.finish(summary)
            self._wandb = None
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
