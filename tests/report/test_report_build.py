"""Report generation from fabricated run directories."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from ringrl.cli import main
from ringrl.errors import UserError
from ringrl.report import (
    build_report,
    coefficient_of_variation,
    load_runs,
    run_stats,
    to_float,
    token_efficiency_points,
)

TITLES = [
    "RL reward",
    "Response length",
    "Gradient norm",
    "Policy entropy",
    "Training tokens per step",
    "Throughput",
    "Step time",
    "SFT loss",
    "Busiest expert&#x27;s share",
    "SFT entropy per epoch",
    "Token efficiency",
    "Expert load per layer",
    "Stability and final reward",
    "Evaluation",
]


def write_run(path: Path, records: list[dict], summary: dict | None = None, extra_lines: list[str] = ()) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if summary is not None:
        (path / "summary.json").write_text(json.dumps(summary))
    (path / "config.yaml").write_text("seed: 0\n")
    return path


def rl_run(path: Path, algo: str, tokens: list[int], rewards: list[float], sft_tokens: int, score: float) -> Path:
    records = []
    for step, (tok, rew) in enumerate(zip(tokens, rewards)):
        records.append(
            {
                "step": step,
                "time": float(step),
                "reward/mean": rew,
                "response_length/mean": tok / 8,
                "train/tokens": tok,
                "train/grad_norm": 1.0 + 0.1 * (step % 3),
                "train/entropy": 0.5 - 0.01 * step,
                "throughput/tokens_per_s": 1000.0 + step,
                "time/step": tok / 1000,
                "moe/max_expert_load": 0.2,
                **{f"moe/load/layer{i}/expert{j}": (0.4 if j == step % 4 else 0.2) for i in range(2) for j in range(4)},
            }
        )
    summary = {
        "kind": "rl",
        "algo": algo,
        "init": "sft/checkpoints/epoch-2",
        "steps": len(tokens),
        "rl_tokens": int(sum(tokens)),
        "sft_tokens": sft_tokens,
        "reward_first": rewards[0],
        "reward_last": rewards[-1],
        "eval": {
            "gsm8k": {
                "avg@k": score,
                "pass@k": {"1": score, "4": min(1.0, score + 0.2)},
                "problems": 50,
                "samples": 4,
                "mean_length": 120.5,
                "no_answer_fraction": 0.02,
            }
        },
    }
    return write_run(path, records, summary)


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    c3po = rl_run(tmp_path / "c3po", "c3po", [800] * 6, [0.1, 0.2, 0.25, 0.3, 0.35, 0.4], 10_000, 0.45)
    grpo = rl_run(
        tmp_path / "grpo", "grpo", [400, 1200, 600, 1000, 500, 1100], [0.1, 0.2, "nan", 0.1, 0.15, 0.2], 20_000, 0.30
    )
    sft = write_run(
        tmp_path / "sft",
        [
            {
                "step": s,
                "time": s * 2.0,
                "train/loss": 2.0 / (s + 1),
                "train/grad_norm": "inf" if s == 2 else 3.0,
                "train/tokens": 512,
                "throughput/tokens_per_s": 2600.0,
            }
            for s in range(5)
        ],
        {
            "kind": "sft",
            "model": "tiny",
            "tokens_seen": 20_000,
            "checkpoints": [
                {
                    "name": f"epoch-{e}",
                    "path": f"checkpoints/epoch-{e}",
                    "epoch": e,
                    "step": 10 * e,
                    "tokens_seen": 5000 * e,
                    "entropy": h,
                    "accuracy": a,
                    "eval_problems": 64,
                }
                for e, h, a in [(1, 0.7, 0.2), (2, 0.45, 0.35), (3, 0.25, 0.4)]
            ],
            "selection": {"chosen": "epoch-2", "band": [0.3, 0.5]},
        },
        extra_lines=['{"step": 5, "time": 10.0, "train/lo'],  # a run killed mid-write
    )
    return {"c3po": c3po, "grpo": grpo, "sft": sft}


def test_coefficient_of_variation_on_known_numbers():
    assert coefficient_of_variation([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(2.0 / 5.0)  # std 2, mean 5
    assert coefficient_of_variation([800, 800, 800]) == 0.0
    assert coefficient_of_variation([-1.0, -3.0]) == pytest.approx(0.5)  # |mean| 2, std 1
    assert coefficient_of_variation([1.0, float("nan"), 3.0, float("inf")]) == pytest.approx(0.5)
    assert math.isnan(coefficient_of_variation([5.0]))
    assert math.isnan(coefficient_of_variation([1.0, -1.0]))


def test_stats_from_runs(runs):
    loaded, notes = load_runs([runs["c3po"], runs["grpo"], runs["sft"]], ["C3PO", "GRPO", "SFT"])
    c3po, grpo, sft = (run_stats(r) for r in loaded)
    assert c3po.cv_tokens == 0.0 and c3po.cv_step_time == 0.0  # 0.8 s every step
    tokens = np.array([400, 1200, 600, 1000, 500, 1100], dtype=float)
    assert grpo.cv_tokens == pytest.approx(tokens.std() / tokens.mean())
    assert grpo.cv_step_time == pytest.approx(grpo.cv_tokens)
    grads = np.array([1.0, 1.1, 1.2, 1.0, 1.1, 1.2])
    assert c3po.cv_grad_norm == pytest.approx(grads.std() / grads.mean())
    assert c3po.final_reward == pytest.approx(0.4) and grpo.final_reward == pytest.approx(0.2)
    assert sft.cv_grad_norm == 0.0  # the "inf" step is ignored
    assert math.isnan(sft.final_reward) and sft.steps == 5
    assert any("sft/metrics.jsonl:6: skipped" in n for n in notes)


def test_to_float_reads_nonfinite_strings():
    assert math.isnan(to_float("nan")) and to_float("inf") == math.inf and to_float("-Infinity") == -math.inf
    assert to_float(3) == 3.0 and to_float(True) is None and to_float("abc") is None


def test_token_efficiency_points(runs):
    loaded, _ = load_runs([runs["c3po"], runs["grpo"], runs["sft"]])
    points, score_name = token_efficiency_points(loaded)
    assert score_name == "mean eval avg@k"
    assert [(r.label, x, y) for r, x, y in points] == [("c3po", 4800 / 10_000, 0.45), ("grpo", 4800 / 20_000, 0.30)]


def test_report_is_self_contained_and_overlays_runs(runs, tmp_path):
    out = build_report(
        [runs["c3po"], runs["grpo"], runs["sft"]],
        tmp_path / "out" / "report.html",
        labels=["C3PO run", "GRPO run", "SFT run"],
    )
    page = out.read_text()
    for title in TITLES:
        assert title in page, title
    for label in ("C3PO run", "GRPO run", "SFT run"):
        assert label in page
    refs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)""", page)
    assert refs and all(r.startswith("data:") for r in refs)
    assert "<script" not in page and "url(" not in page
    assert "Plot skipped" not in page
    files = sorted(p.name for p in (tmp_path / "out" / "report_files").glob("*.png"))
    assert files == sorted(
        [
            "reward.png",
            "response_length.png",
            "grad_norm.png",
            "entropy.png",
            "tokens.png",
            "throughput.png",
            "step_time.png",
            "sft_loss.png",
            "max_expert_load.png",
            "sft_entropy.png",
            "token_efficiency.png",
            "expert_load.png",
        ]
    )
    for name in files:
        data = (tmp_path / "out" / "report_files" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert len(refs) == len(files)
    assert "pass@4" in page and "epoch-2" in page  # eval and checkpoint tables


@pytest.fixture
def legends(monkeypatch) -> list[list[str]]:
    """The texts of every legend drawn while the test runs, one list per legend."""
    import matplotlib.axes

    seen: list[list[str]] = []
    original = matplotlib.axes.Axes.legend

    def spy(self, *args, **kwargs):
        legend = original(self, *args, **kwargs)
        seen.append([t.get_text() for t in legend.get_texts()])
        return legend

    monkeypatch.setattr(matplotlib.axes.Axes, "legend", spy)
    return seen


def test_legend_labels_are_drawn(runs, tmp_path, legends):
    build_report([runs["c3po"], runs["grpo"]], tmp_path / "r.html", labels=["alpha", "beta"])
    assert ["alpha", "beta"] in legends  # reward, tokens, ... overlay both runs


def test_eval_results_in_ringrl_eval_spelling(tmp_path):
    run = write_run(
        tmp_path / "ev",
        [],
        {
            "kind": "eval",
            "eval": {
                "aime": {"pass_at_1": 0.125, "pass_at_k": {"1": 0.125, "16": 0.5}, "problems": 30, "samples": 480}
            },
        },
    )
    page = build_report([run], tmp_path / "ev.html").read_text()
    assert "<td>aime</td><td>0.125</td><td>0.125</td><td>0.5</td><td>30</td><td>480</td>" in page
    assert "pass@16" in page


def test_missing_metrics_are_skipped_and_said(tmp_path):
    bare = write_run(tmp_path / "bare", [{"step": 0, "time": 0.0, "reward/mean": 0.5}])
    out = build_report([bare], tmp_path / "bare.html")
    page = out.read_text()
    assert page.count("Plot skipped") == 11  # 12 plots, only reward is drawn
    assert "no run logs <code>train/grad_norm</code>" in page
    assert [p.name for p in (tmp_path / "bare_files").glob("*.png")] == ["reward.png"]
    assert "No run's summary.json has evaluation results" in page


def test_pipeline_directory_expands_to_stages(runs, tmp_path):
    pipe = tmp_path / "pipe"
    pipe.mkdir()
    (pipe / "summary.json").write_text(
        json.dumps(
            {
                "kind": "pipeline",
                "stages": [
                    {"name": "sft", "kind": "sft", "dir": str(runs["sft"])},
                    {"name": "select", "kind": "select", "dir": "select"},
                    {"name": "rl-math", "kind": "rl", "dir": str(runs["c3po"])},
                ],
            }
        )
    )
    loaded, notes = load_runs([pipe], ["quick"])
    assert [r.label for r in loaded] == ["quick/sft", "quick/rl-math"]
    assert any("stage select" in n for n in notes)


def test_bad_inputs_are_user_errors(runs, tmp_path, capsys):
    with pytest.raises(UserError, match="not found"):
        build_report([tmp_path / "nope"], tmp_path / "r.html")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a run directory"):
        build_report([tmp_path / "empty"], tmp_path / "r.html")
    assert main(["report", str(runs["c3po"]), "--labels", "a,b", "-o", str(tmp_path / "r.html")]) == 2
    assert "2 labels for 1 run" in capsys.readouterr().err


def test_cli_writes_report(runs, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert main(["report", str(runs["c3po"]), str(runs["grpo"]), "--output", str(out), "--labels", "c,g"]) == 0
    assert out.is_file() and (tmp_path / "cli_files" / "reward.png").is_file()
    assert "wrote" in capsys.readouterr().out


def test_rl_curves_leave_out_sft_runs(tmp_path):
    """SFT steps log train/tokens and train/grad_norm too, but they are not RL steps."""
    from ringrl.report.plots import CURVES, colors, curve_plot

    sft = write_run(
        tmp_path / "sft",
        [
            {"step": s, "time": s, "train/tokens": 500 + s, "train/grad_norm": 1.0, "train/loss": 2.0 - 0.1 * s}
            for s in range(5)
        ],
        {"kind": "sft", "checkpoints": []},
    )
    rl = rl_run(tmp_path / "rl", "c3po", [800] * 4, [0.1, 0.2, 0.3, 0.4], 10_000, 0.5)
    spec = {c.slug: c for c in CURVES}
    only_sft, _ = load_runs([sft])
    assert curve_plot(only_sft, spec["tokens"], colors(1)) is None
    assert curve_plot(only_sft, spec["grad_norm"], colors(1)) is None
    assert curve_plot(only_sft, spec["sft_loss"], colors(1)) is not None
    both, _ = load_runs([sft, rl])
    assert curve_plot(both, spec["tokens"], colors(2)) is not None


def test_sft_entropy_plot_marks_the_runs_own_band_and_chosen_checkpoint(runs, tmp_path, legends):
    """selection.json beside an SFT run (select-checkpoint's output): its band and chosen epoch enter Figure 5."""
    (runs["sft"] / "selection.json").write_text(json.dumps({"chosen": "epoch-3", "epoch": 3, "band": [0.2, 0.3]}))
    loaded, _ = load_runs([runs["sft"]], labels=["s"])
    assert loaded[0].selection["band"] == [0.2, 0.3]
    build_report([runs["sft"]], tmp_path / "r.html", labels=["s"])
    assert ["paper's band 0.3-0.5", "s", "s: selection band 0.2-0.3", "s: chosen (epoch 3)"] in legends
