"""Loading run directories for the report (DESIGN.md, "Run directory").

A run directory holds ``metrics.jsonl`` (one JSON object per step), ``summary.json``
and ``config.yaml``; any of them may be missing. A pipeline directory (``summary.json``
with ``"kind": "pipeline"``) expands to its stages' run directories. Reading is
tolerant: a line that is not a JSON object (a run killed mid-write) is skipped with a
warning, and non-finite floats written as strings (``"nan"``, ``"inf"``) are read back
as floats.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ringrl.errors import UserError

_NONFINITE = {
    "nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
}


@dataclass
class Run:
    """One run directory as the report sees it."""

    path: Path
    label: str
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)
    """``selection.json`` of an SFT run (``select-checkpoint``): band, chosen epoch."""

    @property
    def kind(self) -> str:
        """``sft``, ``rl``, another summary kind, or ``unknown``."""
        kind = self.summary.get("kind")
        return kind if isinstance(kind, str) else "unknown"

    def has(self, key: str) -> bool:
        """Whether any step carries a finite value of ``key``."""
        return any(key in m and math.isfinite(m[key]) for m in self.metrics)

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps [N], values [N])`` of the steps carrying ``key``; inf becomes nan."""
        pairs = [(m.get("step", i), m[key]) for i, m in enumerate(self.metrics) if key in m]
        if not pairs:
            return np.zeros(0), np.zeros(0)
        steps, values = (np.asarray(v, dtype=float) for v in zip(*pairs))
        values[~np.isfinite(values)] = np.nan
        return steps, values


def to_float(value: Any) -> float | None:
    """A metric value as a float: numbers as they are, ``"nan"``/``"inf"`` strings as
    non-finite floats, anything else (booleans, other strings, lists) None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return _NONFINITE.get(value.strip().lower())
    return None


def read_metrics_tolerant(path: Path) -> tuple[list[dict[str, float]], list[str]]:
    """Numeric fields of every JSON-object line of ``path``, and a warning per bad line."""
    records: list[dict[str, float]] = []
    warnings: list[str] = []
    with Path(path).open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                warnings.append(f"{path}:{lineno}: skipped ({e.msg})")
                continue
            if not isinstance(obj, dict):
                warnings.append(f"{path}:{lineno}: skipped (not a JSON object)")
                continue
            record = {k: x for k, v in obj.items() if (x := to_float(v)) is not None}
            records.append(record)
    return records, warnings


def load_run(path: Path, label: str) -> Run:
    """Read one run directory; it must hold ``metrics.jsonl`` or ``summary.json``."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: run directory not found")
    metrics_path, summary_path = path / "metrics.jsonl", path / "summary.json"
    if not metrics_path.is_file() and not summary_path.is_file():
        raise UserError(f"{path}: not a run directory (no metrics.jsonl or summary.json)")
    run = Run(path=path, label=label)
    run.summary = _json_object(summary_path, run.warnings)
    if metrics_path.is_file():
        run.metrics, warnings = read_metrics_tolerant(metrics_path)
        run.warnings.extend(warnings)
    run.selection = _json_object(path / "selection.json", run.warnings)
    return run


def _json_object(path: Path, warnings: list[str]) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when the file is absent, or unreadable (said in ``warnings``)."""
    if not path.is_file():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        warnings.append(f"{path}: unreadable ({e.msg}); ignored")
        return {}
    return obj if isinstance(obj, dict) else {}


def _default_labels(paths: Sequence[Path]) -> list[str]:
    names = [p.resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]


def _pipeline_stages(path: Path) -> list[tuple[Path, str]] | None:
    """The ``(stage_dir, stage_name)`` of a pipeline directory, or None for a plain run."""
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        return None
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if not isinstance(summary, dict) or summary.get("kind") != "pipeline":
        return None
    stages = []
    for i, stage in enumerate(summary.get("stages") or []):
        if not isinstance(stage, dict) or not isinstance(stage.get("dir"), str):
            continue
        stage_dir = Path(stage["dir"])
        if not stage_dir.is_absolute():
            stage_dir = path / stage_dir
        stages.append((stage_dir, str(stage.get("name") or f"stage{i + 1}")))
    return stages


def load_runs(paths: Sequence[Path], labels: Sequence[str] | None = None) -> tuple[list[Run], list[str]]:
    """Load the given run directories, expanding pipeline directories into their stages
    (labelled ``LABEL/STAGE``; stages without metrics or summary are skipped with a
    note). Returns the runs and the notes."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise UserError("no run directories given")
    if labels is not None and len(labels) != len(paths):
        raise UserError(f"--labels: {len(labels)} labels for {len(paths)} run directories")
    labels = list(labels) if labels is not None else _default_labels(paths)
    runs: list[Run] = []
    notes: list[str] = []
    for path, label in zip(paths, labels):
        if not path.is_dir():
            raise UserError(f"{path}: run directory not found")
        stages = _pipeline_stages(path)
        if stages is None:
            runs.append(load_run(path, label))
            continue
        for stage_dir, name in stages:
            if (stage_dir / "metrics.jsonl").is_file() or (stage_dir / "summary.json").is_file():
                runs.append(load_run(stage_dir, f"{label}/{name}"))
            else:
                notes.append(f"{label}: stage {name} ({stage_dir}) has no metrics or summary; skipped")
        if not stages:
            notes.append(f"{label}: pipeline directory lists no stages")
    for run in runs:
        notes.extend(f"{run.label}: {w}" for w in run.warnings)
    return runs, notes
