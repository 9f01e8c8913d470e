"""Report figures: one function per plot, runs in, PNG bytes out (None when no run has
the data). Figures are drawn with matplotlib's object API on the Agg canvas, so the
global pyplot state and the user's backend are never touched."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ringrl.report.runs import Run
from ringrl.report.stats import final_reward

ENTROPY_BAND = (0.3, 0.5)  # the Ring-lite paper's entropy band for checkpoint selection
_LOAD_KEY = re.compile(r"^moe/load/layer(\d+)/expert(\d+)$")


@dataclass(frozen=True)
class CurveSpec:
    """A per-step metric drawn as one line per run."""

    slug: str
    key: str
    title: str
    ylabel: str
    figure: str = ""
    """Where the paper shows it, for the caption."""
    kinds: tuple[str, ...] = ()
    """Run kinds the curve is drawn for (empty: any); SFT steps are not RL steps."""


RL = ("rl", "unknown")  # runs without a summary.json (kind unknown) are drawn everywhere
CURVES: tuple[CurveSpec, ...] = (
    CurveSpec("reward", "reward/mean", "RL reward", "mean reward", "Figures 7 and 8", RL),
    CurveSpec(
        "response_length", "response_length/mean", "Response length", "tokens per response", "Figures 7 and 8", RL
    ),
    CurveSpec("grad_norm", "train/grad_norm", "Gradient norm", "grad norm (before clipping)", "Figures 7 and 8", RL),
    CurveSpec("entropy", "train/entropy", "Policy entropy", "mean token entropy (nats)", "Figures 7 and 8", RL),
    CurveSpec("tokens", "train/tokens", "Training tokens per step", "tokens in the loss", "Figures 7 and 8", RL),
    CurveSpec("throughput", "throughput/tokens_per_s", "Throughput", "tokens / s", "Figures 7 and 8", RL),
    CurveSpec("step_time", "time/step", "Step time", "seconds per step", "Figures 7 and 8", RL),
    CurveSpec("sft_loss", "train/loss", "SFT loss", "loss per token", kinds=("sft", "unknown")),
    CurveSpec("max_expert_load", "moe/max_expert_load", "Busiest expert's share", "max expert load"),
)


def colors(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct colors (tab10, then tab20) so a run keeps its color in every plot."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def ema(values: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average that skips nan values (``[N]`` in, ``[N]`` out)."""
    out = np.full_like(values, np.nan)
    acc = math.nan
    for i, v in enumerate(values):
        if math.isfinite(v):
            acc = v if not math.isfinite(acc) else alpha * acc + (1 - alpha) * v
        out[i] = acc
    return out


def alert_steps(run: Run) -> list[tuple[int, list[str]]]:
    """``(step, [alert names])`` for each step where the stability monitor raised an alert."""
    out = []
    for i, m in enumerate(run.metrics):
        names = sorted(k[len("alert/") :] for k, v in m.items() if k.startswith("alert/") and v)
        if names:
            out.append((int(m.get("step", i)), names))
    return out


def curve_plot(runs: Sequence[Run], spec: CurveSpec, run_colors: Sequence) -> bytes | None:
    """``spec.key`` against step, one line per run that has it. Curves with more than 30
    points are drawn faint with an EMA (0.8) on top. Steps where the stability monitor raised
    an alert are marked with a band in the run's color."""
    present = [
        (run, c) for run, c in zip(runs, run_colors) if run.has(spec.key) and (not spec.kinds or run.kind in spec.kinds)
    ]
    if not present:
        return None
    fig = Figure(figsize=(7.0, 4.0))
    ax = fig.add_subplot()
    smoothed = False
    for run, color in present:
        steps, values = run.series(spec.key)
        if len(values) > 30:
            ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
            ax.plot(steps, ema(values, 0.8), color=color, linewidth=1.8, label=run.label)
            smoothed = True
        else:
            ax.plot(
                steps,
                values,
                color=color,
                linewidth=1.6,
                marker="o" if len(values) <= 12 else None,
                markersize=3,
                label=run.label,
            )
        for k, (step, _) in enumerate(alert_steps(run)):
            ax.axvspan(step - 0.5, step + 0.5, color=color, alpha=0.15, label=f"{run.label}: alert" if k == 0 else None)
    ax.set_title(spec.title + (" (EMA 0.8; faint: raw)" if smoothed else ""))
    ax.set_xlabel("step")
    ax.set_ylabel(spec.ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


def _checkpoints(run: Run) -> list[dict]:
    cps = run.summary.get("checkpoints")
    return [c for c in cps if isinstance(c, dict)] if isinstance(cps, list) else []


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _selection_band(run: Run) -> tuple[float, float] | None:
    band = run.selection.get("band")
    if isinstance(band, list) and len(band) == 2 and all(math.isfinite(_num(v)) for v in band):
        return _num(band[0]), _num(band[1])
    return None


def sft_entropy_plot(runs: Sequence[Run], run_colors: Sequence) -> bytes | None:
    """Entropy (left) and accuracy (right) of each SFT checkpoint against epoch, with the
    paper's selection band 0.3-0.5 shaded grey (Figure 5); a run with a ``selection.json``
    also gets its own band hatched in its color and its chosen checkpoint starred."""
    present = []
    for run, color in zip(runs, run_colors):
        points = [
            (_num(c.get("epoch", i + 1)), _num(c.get("entropy")), _num(c.get("accuracy")))
            for i, c in enumerate(_checkpoints(run))
        ]
        points = [p for p in points if math.isfinite(p[0]) and math.isfinite(p[1])]
        if points:
            present.append((run, color, points))
    if not present:
        return None
    fig = Figure(figsize=(10.0, 4.0))
    ax_h, ax_a = fig.subplots(1, 2)
    ax_h.axhspan(*ENTROPY_BAND, color="0.5", alpha=0.15, label="paper's band 0.3-0.5")
    has_acc = False
    for run, color, points in present:
        epochs, ent, acc = (np.array(v) for v in zip(*sorted(points)))
        ax_h.plot(epochs, ent, marker="o", color=color, label=run.label)
        band = _selection_band(run)
        if band is not None and band != ENTROPY_BAND:
            ax_h.axhspan(
                *band,
                facecolor="none",
                edgecolor=color,
                hatch="//",
                alpha=0.5,
                label=f"{run.label}: selection band {band[0]:g}-{band[1]:g}",
            )
        chosen = _num(run.selection.get("epoch"))
        if math.isfinite(chosen) and chosen in epochs:
            ax_h.plot(
                [chosen],
                [ent[list(epochs).index(chosen)]],
                marker="*",
                markersize=14,
                color=color,
                linestyle="none",
                label=f"{run.label}: chosen (epoch {chosen:g})",
            )
        if np.isfinite(acc).any():
            ax_a.plot(epochs, acc, marker="o", color=color, label=run.label)
            has_acc = True
    ax_h.set_title("SFT checkpoint entropy per epoch")
    ax_h.set_xlabel("epoch")
    ax_h.set_ylabel("mean token entropy (nats)")
    ax_h.grid(alpha=0.3)
    ax_h.legend(fontsize="small")
    for ax in (ax_h, ax_a):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_a.set_title("SFT checkpoint accuracy per epoch")
    ax_a.set_xlabel("epoch")
    ax_a.set_ylabel("accuracy")
    ax_a.grid(alpha=0.3)
    if has_acc:
        ax_a.legend(fontsize="small")
    else:
        ax_a.text(0.5, 0.5, "no accuracy recorded", ha="center", va="center", transform=ax_a.transAxes)
    return _png(fig)


def eval_avg(entry: dict) -> float:
    """avg@k pass@1 of one benchmark entry: ``avg@k`` (run summary) or ``pass_at_1``
    (``ringrl eval`` results), nan when absent."""
    return _num(entry.get("avg@k", entry.get("pass_at_1")))


def eval_pass_at_k(entry: dict) -> dict[str, float]:
    """``{k: pass@k}`` of one benchmark entry: ``pass@k`` or ``pass_at_k``, keys as strings."""
    table = entry.get("pass@k", entry.get("pass_at_k"))
    return {str(k): _num(v) for k, v in table.items()} if isinstance(table, dict) else {}


def eval_score(run: Run) -> float:
    """Mean avg@k over the run's evaluated benchmarks (nan without any)."""
    evals = run.summary.get("eval")
    if not isinstance(evals, dict):
        return math.nan
    scores = [eval_avg(v) for v in evals.values() if isinstance(v, dict)]
    scores = [s for s in scores if math.isfinite(s)]
    return float(np.mean(scores)) if scores else math.nan


def token_efficiency_points(runs: Sequence[Run]) -> tuple[list[tuple[Run, float, float]], str]:
    """``(run, rl_tokens / sft_tokens, score)`` per RL run with both token counts, and
    the score's name: the mean eval ``avg@k`` when any such run was evaluated, else the
    final reward."""
    candidates = []
    for run in runs:
        rl, sft = _num(run.summary.get("rl_tokens")), _num(run.summary.get("sft_tokens"))
        if math.isfinite(rl) and math.isfinite(sft) and sft > 0:
            candidates.append((run, rl / sft))
    if any(math.isfinite(eval_score(r)) for r, _ in candidates):
        points = [(r, x, eval_score(r)) for r, x in candidates if math.isfinite(eval_score(r))]
        return points, "mean eval avg@k"
    points = [(r, x, final_reward(r)) for r, x in candidates if math.isfinite(final_reward(r))]
    return points, "final RL reward"


def token_efficiency_plot(runs: Sequence[Run], run_colors: Sequence) -> bytes | None:
    """Score against token efficiency = RL tokens / SFT tokens, one point per RL run (Figure 9)."""
    points, score_name = token_efficiency_points(runs)
    if not points:
        return None
    color_of = {id(r): c for r, c in zip(runs, run_colors)}
    fig = Figure(figsize=(7.0, 4.0))
    ax = fig.add_subplot()
    for run, x, y in points:
        ax.scatter([x], [y], color=color_of[id(run)], s=40, zorder=3)
        ax.annotate(run.label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize="small")
    ax.set_title("Token efficiency against score")
    ax.set_xlabel("token efficiency = RL tokens / SFT tokens")
    ax.set_ylabel(score_name)
    ax.grid(alpha=0.3)
    ax.margins(x=0.15, y=0.15)
    return _png(fig)


def expert_load_matrix(run: Run) -> tuple[np.ndarray, int] | None:
    """``([layers, experts] load, step)`` from the last step carrying
    ``moe/load/layer{i}/expert{j}`` keys, or None."""
    for record in reversed(run.metrics):
        cells = [(int(m.group(1)), int(m.group(2)), v) for k, v in record.items() if (m := _LOAD_KEY.match(k))]
        if cells:
            layers = max(c[0] for c in cells) + 1
            experts = max(c[1] for c in cells) + 1
            grid = np.full((layers, experts), np.nan)
            for i, j, v in cells:
                grid[i, j] = v
            return grid, int(record.get("step", len(run.metrics) - 1))
    return None


def expert_load_heatmap(runs: Sequence[Run]) -> bytes | None:
    """Per-layer expert load at the last step, one panel per run that logs it."""
    present = [(run, m) for run in runs if (m := expert_load_matrix(run)) is not None]
    if not present:
        return None
    fig = Figure(figsize=(min(5.0 * len(present), 15.0), 3.8))
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    vmax = max(float(np.nanmax(grid)) for _, (grid, _) in present)
    for ax, (run, (grid, step)) in zip(axes, present):
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax)
        ax.set_title(f"{run.label}: step {step}", fontsize="medium")
        ax.set_xlabel("expert")
        ax.set_ylabel("layer")
        ax.set_xticks(range(grid.shape[1]))
        ax.set_yticks(range(grid.shape[0]))
        fig.colorbar(image, ax=ax, label="share of routed tokens")
    fig.suptitle("Expert load per layer (last step)")
    return _png(fig)
