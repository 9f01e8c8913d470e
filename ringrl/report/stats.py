"""Per-run numbers for the report: stability (the C3PO claim) and final reward."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ringrl.report.runs import Run


def coefficient_of_variation(values: Sequence[float] | np.ndarray) -> float:
    """Population standard deviation over the absolute mean of the finite values
    (std with ddof=0). nan with fewer than two finite values or a zero mean; a spread
    below 1e-12 of the mean (floating-point noise of a constant series) is 0."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan
    mean = float(x.mean())
    if mean == 0.0:
        return math.nan
    cv = float(x.std()) / abs(mean)
    return 0.0 if cv < 1e-12 else cv


@dataclass(frozen=True)
class RunStats:
    """One row of the stability table."""

    label: str
    kind: str
    steps: int
    cv_tokens: float
    """Coefficient of variation of ``train/tokens`` (tokens entering the loss per step)."""
    cv_step_time: float
    """Coefficient of variation of ``time/step``."""
    cv_grad_norm: float
    """Coefficient of variation of ``train/grad_norm``."""
    final_reward: float
    """Last finite ``reward/mean``, else summary ``reward_last``, else nan."""


def final_reward(run: Run) -> float:
    _, values = run.series("reward/mean")
    finite = values[np.isfinite(values)]
    if finite.size:
        return float(finite[-1])
    last = run.summary.get("reward_last")
    return float(last) if isinstance(last, (int, float)) and not isinstance(last, bool) else math.nan


def run_stats(run: Run) -> RunStats:
    """The stability numbers of one run (nan where it has no data)."""
    return RunStats(
        label=run.label,
        kind=run.kind,
        steps=len(run.metrics),
        cv_tokens=coefficient_of_variation(run.series("train/tokens")[1]),
        cv_step_time=coefficient_of_variation(run.series("time/step")[1]),
        cv_grad_norm=coefficient_of_variation(run.series("train/grad_norm")[1]),
        final_reward=final_reward(run),
    )
