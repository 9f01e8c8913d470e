"""What each report figure draws: the data handed to matplotlib (read back from the
figure's lines, markers, spans and images) equals the metric of each run as written to its
run directory, in that run's color, for every figure of ringrl/report/plots.py.

The expected values come from the records the test writes, not from the report's reader;
every metric gets its own values so a curve drawing the wrong key cannot pass."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.axes
import numpy as np
import pytest

import ringrl.report.plots as plots
from ringrl.report import build_report

# a distinct value for every (metric, run, step): slope per metric, offset per run
KEYS = {
    "reward/mean": 0.01,
    "response_length/mean": 3.0,
    "train/grad_norm": 0.07,
    "train/entropy": -0.002,
    "train/tokens": 11.0,
    "throughput/tokens_per_s": 13.0,
    "time/step": 0.05,
    "moe/max_expert_load": 0.003,
    "train/loss": -0.02,
}
# each figure's metric as docs/report.md states it (not read from plots.CURVES)
DOCUMENTED = {
    "RL reward": "reward/mean",
    "Response length": "response_length/mean",
    "Gradient norm": "train/grad_norm",
    "Policy entropy": "train/entropy",
    "Training tokens per step": "train/tokens",
    "Throughput": "throughput/tokens_per_s",
    "Step time": "time/step",
    "SFT loss": "train/loss",
    "Busiest expert's share": "moe/max_expert_load",
}
KIND = {"alpha": "rl", "beta": "rl", "sft": "sft", "bare": "unknown"}  # "unknown": no summary.json
RL_ONLY = set(list(DOCUMENTED.values())[:7])  # RL curves: not drawn for SFT runs (SFT steps are not RL steps)
OFFSET = {"alpha": 1.0, "beta": 2.0, "sft": 3.0, "bare": 4.0}


def value(key: str, run: str, step: int) -> float:
    return round(OFFSET[run] * 10 + KEYS[key] * (step + 1) + list(KEYS).index(key), 6)


def write(path: Path, records: list[dict], summary: dict | None = None, selection: dict | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary is not None:
        (path / "summary.json").write_text(json.dumps(summary))
    if selection is not None:
        (path / "selection.json").write_text(json.dumps(selection))
    return path


def load_cells(step: int) -> dict[str, float]:
    return {f"moe/load/layer{i}/expert{j}": 0.1 * (i + 1) + 0.01 * j + 0.001 * step for i in range(2) for j in range(3)}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    """Builds a report over four runs (once) and returns ``(figures by first-axes title, spans, runs)``."""
    tmp_path = tmp_path_factory.mktemp("plots")
    rl_keys = [k for k in KEYS if k != "train/loss"]
    alpha = [
        {"step": s, **{k: value(k, "alpha", s) for k in rl_keys}, **(load_cells(s) if s >= 3 else {})} for s in range(5)
    ]
    alpha[2]["train/grad_norm"] = "inf"  # drawn as a gap (nan)
    beta = [  # 40 steps: faint raw curve + EMA; no entropy logged; starts at step 10
        {"step": 10 + s, **{k: value(k, "beta", s) for k in rl_keys if k != "train/entropy"}} for s in range(40)
    ]
    beta[7]["train/tokens"] = "inf"  # a gap in the raw curve; the EMA carries on over it
    sft = [
        {
            "step": s,
            "train/loss": value("train/loss", "sft", s),
            "train/grad_norm": 9.0,  # an SFT run: not drawn on the RL gradient-norm curve
            "moe/max_expert_load": value("moe/max_expert_load", "sft", s),
        }
        for s in range(4)
    ]
    bare = [  # no summary.json: kind unknown, drawn with the RL and the SFT curves
        {"step": s, "reward/mean": value("reward/mean", "bare", s), "train/loss": value("train/loss", "bare", s)}
        for s in range(3)
    ]
    checkpoints = [
        {"name": f"epoch-{e}", "epoch": e, "entropy": h, "accuracy": a}
        for e, h, a in [(1, 0.71, 0.2), (3, 0.27, None), (2, 0.46, 0.35)]
    ]
    dirs = [
        write(
            tmp_path / "alpha",
            alpha,
            {"kind": "rl", "rl_tokens": 3000, "sft_tokens": 12_000, "eval": {"x": {"avg@k": 0.4}, "y": {"avg@k": 0.2}}},
        ),
        write(
            tmp_path / "beta",
            beta,
            {"kind": "rl", "rl_tokens": 5000, "sft_tokens": 10_000, "eval": {"x": {"pass_at_1": 0.5}}},
        ),
        write(tmp_path / "sft", sft, {"kind": "sft", "checkpoints": checkpoints}, {"band": [0.4, 0.6], "epoch": 2}),
        write(tmp_path / "bare", bare),
    ]
    figures: dict[str, object] = {}
    real_png = plots._png

    def spy_png(fig):
        figures[fig.axes[0].get_title()] = fig
        return real_png(fig)

    spans: list[tuple[object, float, float, dict]] = []
    real_span = matplotlib.axes.Axes.axhspan

    def spy_span(self, ymin, ymax, *args, **kwargs):
        spans.append((self, ymin, ymax, kwargs))
        return real_span(self, ymin, ymax, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "_png", spy_png)
        mp.setattr(matplotlib.axes.Axes, "axhspan", spy_span)
        build_report(dirs, tmp_path / "report.html", labels=["alpha", "beta", "sft", "bare"])
    runs = {"alpha": alpha, "beta": beta, "sft": sft, "bare": bare}
    return figures, spans, runs


def series(records: list[dict], key: str) -> tuple[list[float], list[float]]:
    pairs = [(r["step"], r[key]) for r in records if key in r]
    return [float(s) for s, _ in pairs], [float(v) if v != "inf" else math.nan for _, v in pairs]


def by_hand_ema(values: list[float], alpha: float = 0.8) -> list[float]:
    out, acc = [], None
    for v in values:
        if not math.isnan(v):
            acc = v if acc is None else alpha * acc + (1 - alpha) * v
        out.append(math.nan if acc is None else acc)
    return out


def labelled(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


COLOR = dict(zip(["alpha", "beta", "sft", "bare"], plots.colors(4)))


@pytest.mark.parametrize("spec", plots.CURVES, ids=[s.slug for s in plots.CURVES])
def test_each_curve_draws_its_metric_for_each_run(report, spec) -> None:
    figures, _, runs = report
    (fig,) = [f for t, f in figures.items() if t.startswith(spec.title)]
    ax = fig.axes[0]
    drawn = labelled(ax)
    key = DOCUMENTED[spec.title]
    expected = [
        name
        for name, recs in runs.items()
        if any(key in r for r in recs)
        and KIND[name]
        in ({"sft", "unknown"} if key == "train/loss" else {"rl", "unknown"} if key in RL_ONLY else KIND.values())
    ]
    assert sorted(drawn) == sorted(expected)
    assert expected, "every curve has a run to draw in this fixture"
    for name in expected:
        steps, values = series(runs[name], key)
        line = drawn[name]
        assert list(line.get_xdata()) == steps
        assert line.get_color() == COLOR[name] or tuple(line.get_color()) == tuple(COLOR[name])
        if len(values) > 30:  # the labelled line is the EMA; the raw values are drawn faint under it
            np.testing.assert_allclose(line.get_ydata(), by_hand_ema(values), rtol=1e-12)
            raw = [ln for ln in ax.get_lines() if ln.get_label().startswith("_") and ln.get_color() == line.get_color()]
            assert len(raw) == 1
            np.testing.assert_array_equal(raw[0].get_xdata(), steps)
            np.testing.assert_array_equal(raw[0].get_ydata(), values)
            assert ax.get_title().endswith("(EMA 0.8; faint: raw)")
        else:
            np.testing.assert_array_equal(line.get_ydata(), values)  # nan where the log said inf
    assert ax.get_ylabel() == spec.ylabel


def test_sft_entropy_and_accuracy_per_epoch(report) -> None:
    figures, spans, _ = report
    fig = figures["SFT checkpoint entropy per epoch"]
    ax_h, ax_a = fig.axes[0], fig.axes[1]
    line = labelled(ax_h)["sft"]
    assert list(line.get_xdata()) == [1.0, 2.0, 3.0]  # sorted by epoch
    assert list(line.get_ydata()) == [0.71, 0.46, 0.27]
    star = labelled(ax_h)["sft: chosen (epoch 2)"]
    assert (list(star.get_xdata()), list(star.get_ydata()), star.get_marker()) == ([2.0], [0.46], "*")
    acc = labelled(ax_a)["sft"]
    assert list(acc.get_xdata()) == [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(acc.get_ydata(), [0.2, 0.35, math.nan])  # epoch 3 logged no accuracy
    on_h = [(lo, hi, kw.get("label")) for a, lo, hi, kw in spans if a is ax_h]
    assert on_h == [(0.3, 0.5, "paper's band 0.3-0.5"), (0.4, 0.6, "sft: selection band 0.4-0.6")]
    assert labelled(ax_h).keys() == {"sft", "sft: chosen (epoch 2)"}  # the RL runs have no checkpoints


def test_token_efficiency_points_are_each_runs_ratio_and_score(report) -> None:
    figures, _, _ = report
    ax = figures["Token efficiency against score"].axes[0]
    points = [tuple(c.get_offsets()[0]) for c in ax.collections]
    assert points == [(3000 / 12_000, pytest.approx((0.4 + 0.2) / 2)), (5000 / 10_000, 0.5)]
    assert [tuple(c.get_facecolor()[0]) for c in ax.collections] == [tuple(COLOR["alpha"]), tuple(COLOR["beta"])]
    assert [t.get_text() for t in ax.texts] == ["alpha", "beta"]
    assert ax.get_ylabel() == "mean eval avg@k"


def test_expert_load_heatmap_is_the_last_steps_matrix(report) -> None:
    figures, _, _ = report
    (fig,) = [f for t, f in figures.items() if t.startswith("alpha: step")]
    ax = fig.axes[0]
    assert ax.get_title() == "alpha: step 4"
    grid = np.asarray(ax.images[0].get_array())
    want = load_cells(4)
    assert grid.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert grid[i, j] == want[f"moe/load/layer{i}/expert{j}"]
    assert len(fig.axes) == 2  # one panel (alpha, the only run logging loads) and its colorbar


def test_every_figure_is_checked(report) -> None:
    figures, _, _ = report
    curve_titles = {s.title for s in plots.CURVES}
    others = {"SFT checkpoint entropy per epoch", "Token efficiency against score", "alpha: step 4"}
    assert {t.replace(" (EMA 0.8; faint: raw)", "") for t in figures} == curve_titles | others
