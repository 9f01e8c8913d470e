"""The report marks the stability monitor's alerts: a band at each alert step, in the run's color."""

from __future__ import annotations

from pathlib import Path

import matplotlib.axes
import pytest

from ringrl.report.plots import CURVES, alert_steps, colors, curve_plot
from ringrl.report.runs import Run


def rl_run(metrics: list[dict]) -> Run:
    return Run(path=Path("run"), label="run", summary={"kind": "rl"}, metrics=metrics)


def test_alert_bands_sit_on_the_alert_steps(monkeypatch):
    spans: list[tuple[float, float, object]] = []
    original = matplotlib.axes.Axes.axvspan

    def spy(self, xmin, xmax, *args, **kwargs):
        spans.append((xmin, xmax, kwargs.get("color")))
        return original(self, xmin, xmax, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "axvspan", spy)
    metrics = [{"step": s, "reward/mean": 0.5} for s in range(1, 8)]
    metrics[2]["alert/reward_collapse"] = 1
    metrics[5]["alert/grad_spike"] = 1
    metrics[5]["alert/kl_blowup"] = 1
    run = rl_run(metrics)
    assert alert_steps(run) == [(3, ["reward_collapse"]), (6, ["grad_spike", "kl_blowup"])]
    reward = next(c for c in CURVES if c.slug == "reward")
    color = colors(1)[0]
    assert curve_plot([run], reward, [color]) is not None
    assert spans == [(2.5, 3.5, color), (5.5, 6.5, color)]


@pytest.mark.parametrize("value", [0, 0.0])
def test_a_zero_alert_value_is_no_alert(value):
    assert alert_steps(rl_run([{"step": 1, "alert/kl_blowup": value}])) == []
