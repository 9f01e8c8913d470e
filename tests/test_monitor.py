"""The stability monitor on crafted metric streams: each alert fires where its condition
starts (at, just below and just above its threshold), once per bad stretch, and a healthy
stream raises nothing."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from ringrl.errors import ConfigError
from ringrl.monitor import MonitorConfig, StabilityMonitor, robust_z

CFG = MonitorConfig()


def healthy(step: int, rng: random.Random) -> dict[str, float]:
    """A run going well: entropy slowly falling (x0.7 over 400 steps), grad norm lognormal with the
    CV measured on the quickstart's C3PO runs (0.37), reward rising with binomial noise, small KL."""
    return {
        "train/entropy": 0.5 * (1 - 0.3 * step / 400) * math.exp(rng.gauss(0, 0.05)),
        "train/grad_norm": 2.0 * math.exp(rng.gauss(0, 0.37)),
        "reward/mean": min(1.0, 0.3 + 0.3 * step / 400 + rng.gauss(0, 0.04)),
        "train/kl": 0.02 * step / 400 + abs(rng.gauss(0, 0.005)),
        "response_length/truncated_fraction": rng.choice([0.0, 0.05, 0.1]),
        "train/skipped_nonfinite": 0,
    }


def feed(mon: StabilityMonitor, rows: list[dict[str, float]]) -> list[tuple[int, str]]:
    return [(a.step, a.name) for step, row in enumerate(rows, 1) for a in mon.observe(step, row)]


@pytest.mark.parametrize("seed", range(5))
def test_healthy_run_raises_nothing(seed):
    rng = random.Random(seed)
    assert feed(StabilityMonitor(CFG), [healthy(s, rng) for s in range(1, 401)]) == []


def test_robust_z_hand_computed():
    # median 2, |h - 2| = 1, 0, 1, 0, 1 -> MAD 1; z(6) = 0.6745 * 4 / 1
    assert robust_z(6.0, [1.0, 2.0, 3.0, 2.0, 1.0]) == pytest.approx(0.6745 * 4)
    assert robust_z(2.0, [2.0, 2.0, 2.0]) == 0.0
    assert robust_z(2.5, [2.0, 2.0, 2.0]) == math.inf


@pytest.mark.parametrize(("value", "fires"), [(0.1, False), (0.0999, True), (0.1001, False), (0.05, True)])
def test_entropy_collapse_threshold(value, fires):
    # start = mean of the first 5 steps = 0.5; the alert needs entropy < 0.2 x 0.5 = 0.1
    rows = [{"train/entropy": e} for e in (0.4, 0.6, 0.5, 0.5, 0.5)] + [{"train/entropy": value}]
    assert feed(StabilityMonitor(CFG), rows) == ([(6, "entropy_collapse")] if fires else [])


def test_alert_fires_once_per_bad_stretch_and_rearms():
    rows = [{"train/entropy": 0.5}] * 5 + [{"train/entropy": 0.01}] * 4 + [{"train/entropy": 0.4}]
    rows += [{"train/entropy": 0.01}]
    assert feed(StabilityMonitor(CFG), rows) == [(6, "entropy_collapse"), (11, "entropy_collapse")]


def test_grad_spike_against_robust_z_of_log_norm():
    base = [1.0, 1.2, 0.8, 1.1, 0.9, 1.0, 1.05, 0.95]
    logs = [math.log(b) for b in base]
    med = statistics.median(logs)
    mad = statistics.median(abs(b - med) for b in logs)
    at = math.exp(med + CFG.grad_z * mad / 0.6745)  # exactly the threshold: z == grad_z, not above it
    for value, fires in ((at * 0.999, False), (at * 1.001, True), (10.0, True), (0.01, False)):
        rows = [{"train/grad_norm": g} for g in base] + [{"train/grad_norm": value}]
        assert feed(StabilityMonitor(CFG), rows) == ([(9, "grad_spike")] if fires else []), value
    # too little history: no z-score yet
    assert feed(StabilityMonitor(CFG), [{"train/grad_norm": g} for g in (1.0, 1.0, 100.0)]) == []


def test_reward_collapse_from_best_running_mean():
    # 5-step means: best 0.5; then rewards fall to 0.25: running mean 0.25 at step 10 -> drop 0.25 > 0.2
    rows = [{"reward/mean": 0.5}] * 5 + [{"reward/mean": 0.25}] * 5
    alerts = feed(StabilityMonitor(CFG), rows)
    # running means at steps 6..10: 0.45, 0.40, 0.35, 0.30 (drop exactly 0.2: not more), 0.25
    assert alerts == [(10, "reward_collapse")]


def test_kl_blowup_threshold_and_nan():
    rows = [{"train/kl": 1.0}, {"train/kl": 1.0001}, {"train/kl": 0.5}, {"train/kl": float("nan")}]
    assert feed(StabilityMonitor(CFG), rows) == [(2, "kl_blowup"), (4, "kl_blowup")]
    # metrics.jsonl stores a NaN as the string "nan": a replay sees the same blow-up
    assert feed(StabilityMonitor(CFG), [{"train/kl": "nan"}]) == [(1, "kl_blowup")]


def test_lengths_at_cap_need_patience():
    key = "response_length/truncated_fraction"
    rows = [{key: 0.5}, {key: 0.6}, {key: 0.49}, {key: 0.5}, {key: 0.5}, {key: 0.9}]
    # 0.49 breaks the streak; 0.5 counts (at or above); the third consecutive step fires
    assert feed(StabilityMonitor(CFG), rows) == [(6, "length_at_cap")]


def test_skipped_updates_share_in_window():
    cfg = MonitorConfig(window=4, skipped_max=2)
    rows = [{"train/skipped_nonfinite": s} for s in (1, 0, 0, 0, 1, 0, 0, 1)]
    # window of 4: steps 2-5 hold one skip... step 5 holds [0, 0, 0, 1] -> 1; step 8 holds [1, 0, 0, 1] -> 2
    assert feed(StabilityMonitor(cfg), rows) == [(8, "skipped_updates")]


def test_replay_gives_the_same_state():
    rng = random.Random(3)
    rows = [healthy(s, rng) for s in range(1, 31)] + [{"train/entropy": 0.01, "train/kl": 5.0}]
    live = StabilityMonitor(CFG)
    first = feed(live, rows[:20])
    replayed = StabilityMonitor(CFG)
    assert feed(replayed, rows[:20]) == first
    rest = [(a.step, a.name) for s, r in enumerate(rows[20:], 21) for a in live.observe(s, r)]
    again = [(a.step, a.name) for s, r in enumerate(rows[20:], 21) for a in replayed.observe(s, r)]
    assert rest == again == [(31, "entropy_collapse"), (31, "kl_blowup")]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"warmup": 0}, "monitor.warmup"),
        ({"entropy_ratio": 1.5}, "monitor.entropy_ratio"),
        ({"kl_max": float("nan")}, "monitor.kl_max"),
        ({"grad_z": 0.0}, "monitor.grad_z"),
        ({"stop": True, "rollback": True}, "monitor.rollback"),
    ],
)
def test_config_errors_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        MonitorConfig(**overrides).validate()
    assert e.value.key == key


def test_reward_collapse_is_relative_on_hard_tasks():
    # best running mean 0.25; the limit is min(0.2, 0.5 x 0.25) = 0.125: a fall to 0.12 (drop 0.13) fires,
    # one to 0.13 (drop 0.12) does not, and a run at 0.04 never fires on noise below reward_drop_min 0.05
    assert feed(StabilityMonitor(CFG), [{"reward/mean": 0.25}] * 5 + [{"reward/mean": 0.12}] * 5) == [
        (10, "reward_collapse")
    ]
    assert feed(StabilityMonitor(CFG), [{"reward/mean": 0.25}] * 5 + [{"reward/mean": 0.13}] * 5) == []
    assert feed(StabilityMonitor(CFG), [{"reward/mean": 0.06}] * 5 + [{"reward/mean": 0.015}] * 5) == []
