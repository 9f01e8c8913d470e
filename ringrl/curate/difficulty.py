"""Model-aware difficulty (the Ring-lite paper's data curation): keep rows the model
sometimes solves.

The solve rate of a row is the fraction of ``K`` sampled responses its verifier
accepts. Rows solved always (rate 1) or never (rate 0) carry no learning signal for
group-relative RL and are dropped; the rate is kept on the other rows as ``solve_rate``.
The model is behind an injectable ``solve_rate_fn(rows) -> list[float]`` so that the
filter is a pure function and tests pass a scripted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ringrl.curate.types import Entry, Removal, StageResult

SolveRateFn = Callable[[list[dict[str, Any]]], list[float]]


def drop_by_solve_rate(entries: Sequence[Entry], solve_rate_fn: SolveRateFn) -> StageResult:
    """Drop rows with solve rate 0 (``too_hard``) or 1 (``too_easy``); the kept rows are
    copies with ``solve_rate`` added. ``solve_rate_fn`` gets every row at once, so a
    real implementation can batch generation, and must return one rate in [0, 1] per row."""
    rows = [e.row for e in entries]
    rates = list(solve_rate_fn(rows)) if rows else []
    if len(rates) != len(rows):
        raise ValueError(f"solve_rate_fn returned {len(rates)} rates for {len(rows)} rows")
    kept: list[Entry] = []
    removed: list[Removal] = []
    for entry, rate in zip(entries, rates):
        rate = float(rate)
        if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
            raise ValueError(f"solve_rate_fn returned {rate!r} for line {entry.line}; rates must be in [0, 1]")
        if rate <= 0.0:
            removed.append(Removal(entry.line, "too_hard", "never solved (solve rate 0)"))
        elif rate >= 1.0:
            removed.append(Removal(entry.line, "too_easy", "always solved (solve rate 1)"))
        else:
            kept.append(Entry(entry.line, {**entry.row, "solve_rate": round(rate, 6)}))
    return StageResult(kept, removed)
