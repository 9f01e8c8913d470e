"""Stability monitor: watches an RL run's step metrics for the ways RL goes bad.

The paper's case for C3PO is stability: GRPO on a long-CoT MoE showed reward collapse and
gradient-norm swings (its Figures 7 and 8), and a low-entropy start collapses early. This
module turns those failure modes into alerts a user sees while the run goes on.

:class:`StabilityMonitor` is a pure function of the metric stream: ``observe(step, metrics)``
takes one step's metrics (the keys of ``metrics.jsonl``) and returns the alerts that *start*
on that step. An alert fires once when its condition begins to hold and re-arms when the
condition clears, so a long bad stretch is one alert, not one per step. Replaying the same
metrics gives the same alerts, which is how a resumed run rebuilds the monitor's state.

Alerts (``alert/<name>`` in the metrics, 1 on the step it fires):

- ``entropy_collapse``: ``train/entropy`` below ``entropy_ratio`` x its running start (the mean
  of the first ``warmup`` steps). Exploration is dying; the paper's low-entropy starts never
  recovered once entropy fell.
- ``grad_spike``: the log of ``train/grad_norm`` with a robust z-score above ``grad_z`` against
  the previous ``window`` steps (median and MAD, so one earlier spike does not hide the next;
  on the log scale because gradient norms are positive and vary by factors). With the
  gradient-norm spread of the quickstart's C3PO runs (CV 0.37), a simulated healthy run crosses
  z = 6 about once in 10^5 steps, and a jump to about 10x the typical norm fires.
- ``reward_collapse``: the running reward (mean of the last ``reward_span`` steps) fell below
  its best running value by more than ``min(reward_drop, reward_drop_ratio x best)`` (and at
  least ``reward_drop_min``): the paper's "reward falls and never recovers". The relative
  part matters on hard tasks: a run whose best running reward is 0.25 collapsing to 0.05
  loses 80% of it but only 0.2 in absolute terms.
- ``kl_blowup``: ``train/kl`` above ``kl_max`` nats per token: the policy left the reference.
- ``length_at_cap``: ``response_length/truncated_fraction`` at or above ``truncated_max`` for
  ``patience`` consecutive steps: responses pile up at ``max_new_tokens``.
- ``skipped_updates``: at least ``skipped_max`` of the last ``window`` steps skipped their
  update (``train/skipped_nonfinite``).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ringrl.config import doc
from ringrl.errors import ConfigError, UserError

ALERTS = ("entropy_collapse", "grad_spike", "reward_collapse", "kl_blowup", "length_at_cap", "skipped_updates")


@dataclass(frozen=True)
class MonitorConfig:
    """``monitor.*``: thresholds of the stability monitor (module :mod:`ringrl.monitor`)."""

    enabled: bool = doc("watch every RL step and raise alerts (alert/<name> metrics, a progress line)", True)
    stop: bool = doc("stop the run at the first alert (exit code 3), keeping the last good checkpoint", False)
    rollback: bool = doc("at an alert, reload the last checkpoint and continue with the learning rate halved", False)
    max_rollbacks: int = doc("rollbacks allowed before the next alert stops the run (exit code 3)", 2)
    warmup: int = doc("steps whose mean entropy is the running start, and before which no trend alert fires", 5)
    window: int = doc("steps of history for the gradient-norm z-score and the skipped-update share", 50)
    entropy_ratio: float = doc("entropy_collapse: entropy below this fraction of its start", 0.2)
    grad_z: float = doc("grad_spike: robust z-score of log grad norm (median/MAD of the window) above this", 6.0)
    reward_span: int = doc("reward_collapse: steps in the running reward mean", 5)
    reward_drop: float = doc("reward_collapse: running reward this far (absolute) below its best", 0.2)
    reward_drop_ratio: float = doc("reward_collapse: ... or this fraction of its best, whichever is smaller", 0.5)
    reward_drop_min: float = doc(
        "reward_collapse: never for a drop smaller than this (noise of the running mean)", 0.05
    )
    kl_max: float = doc("kl_blowup: mean KL (k3) per token above this (nats)", 1.0)
    truncated_max: float = doc("length_at_cap: share of responses cut at max_new_tokens at or above this", 0.5)
    patience: int = doc("length_at_cap: consecutive steps the share must hold", 3)
    skipped_max: int = doc("skipped_updates: skipped updates within the window at or above this", 2)

    def validate(self) -> None:
        for key in ("warmup", "window", "reward_span", "patience", "skipped_max"):
            if getattr(self, key) < 1:
                raise ConfigError(f"monitor.{key}", "must be >= 1")
        if self.max_rollbacks < 0:
            raise ConfigError("monitor.max_rollbacks", "must be >= 0")
        for key in ("entropy_ratio", "truncated_max", "reward_drop_ratio"):
            v = getattr(self, key)
            if not (math.isfinite(v) and 0 < v <= 1):
                raise ConfigError(f"monitor.{key}", f"must be in (0, 1], got {v}")
        for key in ("grad_z", "reward_drop", "reward_drop_min", "kl_max"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"monitor.{key}", f"must be a finite number > 0, got {v}")
        if self.stop and self.rollback:
            raise ConfigError("monitor.rollback", "choose one of monitor.stop and monitor.rollback")


@dataclass(frozen=True)
class Alert:
    name: str  # one of ALERTS
    step: int
    message: str  # one line: what crossed which threshold


class MonitorStop(UserError):
    """The monitor stopped the run (``monitor.stop``, or rollbacks exhausted)."""

    exit_code = 3


def robust_z(x: float, history: list[float]) -> float:
    """``0.6745 (x - median) / MAD`` of ``history``; inf when the MAD is 0 and x differs from the median."""
    med = statistics.median(history)
    mad = statistics.median(abs(h - med) for h in history)
    if mad == 0:
        return 0.0 if x == med else math.inf
    return 0.6745 * (x - med) / mad


@dataclass
class StabilityMonitor:
    cfg: MonitorConfig
    _entropy_start: list[float] = field(default_factory=list)
    _grad: deque[float] = field(default_factory=deque)
    _rewards: deque[float] = field(default_factory=deque)
    _best_reward: float = -math.inf
    _capped_steps: int = 0
    _skips: deque[int] = field(default_factory=deque)
    _active: set[str] = field(default_factory=set)

    def observe(self, step: int, m: dict[str, Any]) -> list[Alert]:
        """The alerts that start at ``step``, given that step's metrics."""
        cfg = self.cfg
        now: dict[str, str] = {}
        ent = _finite(m.get("train/entropy"))
        if ent is not None:
            if len(self._entropy_start) < cfg.warmup:
                self._entropy_start.append(ent)
            else:
                start = statistics.fmean(self._entropy_start)
                if ent < cfg.entropy_ratio * start:
                    now["entropy_collapse"] = (
                        f"entropy {ent:.4g} < {cfg.entropy_ratio:g} x its start {start:.4g} (monitor.entropy_ratio)"
                    )
        g = _finite(m.get("train/grad_norm"))
        if g is not None and g > 0:
            if len(self._grad) >= max(cfg.warmup, 3):
                z = robust_z(math.log(g), list(self._grad))
                if z > cfg.grad_z:
                    now["grad_spike"] = (
                        f"grad norm {g:.4g} has robust z-score {z:.3g} (log scale) > {cfg.grad_z:g} (monitor.grad_z)"
                    )
            self._grad.append(math.log(g))
            if len(self._grad) > cfg.window:
                self._grad.popleft()
        r = _finite(m.get("reward/mean"))
        if r is not None:
            self._rewards.append(r)
            if len(self._rewards) > cfg.reward_span:
                self._rewards.popleft()
            if len(self._rewards) == cfg.reward_span:
                running = statistics.fmean(self._rewards)
                self._best_reward = max(self._best_reward, running)
                limit = max(cfg.reward_drop_min, min(cfg.reward_drop, cfg.reward_drop_ratio * self._best_reward))
                if self._best_reward - running > limit:
                    now["reward_collapse"] = (
                        f"running reward {running:.3f} is {self._best_reward - running:.3f} below its best "
                        f"{self._best_reward:.3f} (> {limit:.3g}: monitor.reward_drop, reward_drop_ratio, reward_drop_min)"
                    )
        kl = _number(m.get("train/kl"))
        if kl is not None and not (kl <= cfg.kl_max):  # a NaN KL is a blow-up too
            now["kl_blowup"] = f"KL {kl:.4g} > {cfg.kl_max:g} (monitor.kl_max)"
        trunc = _finite(m.get("response_length/truncated_fraction"))
        if trunc is not None:
            self._capped_steps = self._capped_steps + 1 if trunc >= cfg.truncated_max else 0
            if self._capped_steps >= cfg.patience:
                now["length_at_cap"] = (
                    f"{trunc:.0%} of responses at max_new_tokens for {self._capped_steps} steps "
                    f"(monitor.truncated_max {cfg.truncated_max:g}, monitor.patience {cfg.patience})"
                )
        skipped = m.get("train/skipped_nonfinite")
        if isinstance(skipped, (int, float)):
            self._skips.append(int(skipped > 0))
            if len(self._skips) > cfg.window:
                self._skips.popleft()
            if sum(self._skips) >= cfg.skipped_max:
                now["skipped_updates"] = (
                    f"{sum(self._skips)} of the last {len(self._skips)} updates skipped (monitor.skipped_max)"
                )
        started = [Alert(name, step, msg) for name, msg in now.items() if name not in self._active]
        self._active = set(now)
        return started


def alert_metrics(alerts: list[Alert]) -> dict[str, float]:
    """``{alert/<name>: 1}`` for the alerts of one step."""
    return {f"alert/{a.name}": 1.0 for a in alerts}


def _number(v: object) -> float | None:
    """A metric value as a float: numbers, and the strings metrics.jsonl stores for non-finite ones."""
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _finite(v: object) -> float | None:
    x = _number(v)
    return x if x is not None and math.isfinite(x) else None
