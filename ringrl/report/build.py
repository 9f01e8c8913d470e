"""``build_report``: one self-contained HTML page overlaying several runs.

Every plot is embedded as a base64 PNG (``data:`` URI) and also written beside the page
as ``<stem>_files/<plot>.png``. A plot no run has data for is left out, and the page
says so. Pipelines, quickstart and experiments call :func:`build_report` directly.
"""

from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringrl.report.plots import (
    CURVES,
    colors,
    curve_plot,
    eval_avg,
    eval_pass_at_k,
    expert_load_heatmap,
    sft_entropy_plot,
    token_efficiency_plot,
)
from ringrl.report.runs import Run, load_runs
from ringrl.report.stats import RunStats, run_stats
from ringrl.utils.io import atomic_write_text


@dataclass(frozen=True)
class Section:
    """One plot of the page: its file name, title, caption and PNG (None: skipped)."""

    slug: str
    title: str
    caption: str
    png: bytes | None
    missing: str


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; plots are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sections(runs: Sequence[Run]) -> list[Section]:
    run_colors = colors(len(runs))
    sections = [
        Section(
            spec.slug,
            spec.title,
            f"<code>{spec.key}</code> per step" + (f"; the paper's {spec.figure}" if spec.figure else ""),
            curve_plot(runs, spec, run_colors),
            f"no run logs <code>{spec.key}</code>",
        )
        for spec in CURVES
    ]
    sections.append(
        Section(
            "sft_entropy",
            "SFT entropy per epoch",
            "entropy and accuracy of each SFT checkpoint (summary.json); the paper's Figure 5, "
            "its selection band 0.3-0.5 shaded grey; a run's own band (selection.json) hatched, its chosen checkpoint starred",
            sft_entropy_plot(runs, run_colors),
            "no run's summary.json lists checkpoints with entropy",
        )
    )
    sections.append(
        Section(
            "token_efficiency",
            "Token efficiency",
            "RL tokens / SFT tokens against score, one point per RL run; the paper's Figure 9",
            token_efficiency_plot(runs, run_colors),
            "no RL run's summary.json has both <code>rl_tokens</code> and <code>sft_tokens</code> with a score",
        )
    )
    sections.append(
        Section(
            "expert_load",
            "Expert load per layer",
            "share of routed tokens per expert and layer at the last step (<code>moe/load/layer{i}/expert{j}</code>)",
            expert_load_heatmap(runs),
            "no run logs per-layer expert load",
        )
    )
    return sections


def _stats_table(stats: Sequence[RunStats]) -> str:
    return _table(
        ["run", "kind", "steps", "CV tokens/step", "CV step time", "CV grad norm", "final reward"],
        [[s.label, s.kind, s.steps, s.cv_tokens, s.cv_step_time, s.cv_grad_norm, s.final_reward] for s in stats],
    )


def _runs_table(runs: Sequence[Run]) -> str:
    rows = []
    for run in runs:
        s = run.summary
        rows.append(
            [
                run.label,
                run.kind,
                s.get("algo"),
                len(run.metrics),
                s.get("tokens_seen", s.get("rl_tokens")),
                str(run.path),
            ]
        )
    return _table(["run", "kind", "algo", "steps logged", "tokens", "directory"], rows)


def _eval_tables(runs: Sequence[Run]) -> str:
    parts = []
    for run in runs:
        evals = run.summary.get("eval")
        if not isinstance(evals, dict) or not evals:
            continue
        entries = {bench: v for bench, v in evals.items() if isinstance(v, dict)}
        ks = sorted({k for v in entries.values() for k in eval_pass_at_k(v)}, key=lambda k: (len(k), k))
        rows = []
        for bench, v in entries.items():
            passk = eval_pass_at_k(v)
            rows.append(
                [
                    bench,
                    eval_avg(v),
                    *[passk.get(k) for k in ks],
                    v.get("problems"),
                    v.get("samples"),
                    v.get("mean_length"),
                    v.get("no_answer_fraction"),
                ]
            )
        headers = ["benchmark", "avg@k", *[f"pass@{k}" for k in ks], "problems", "samples", "mean length", "no answer"]
        parts.append(f"<h3>{html.escape(run.label)}</h3>" + _table(headers, rows))
    return "".join(parts) or "<p class='missing'>No run's summary.json has evaluation results.</p>"


def _checkpoint_tables(runs: Sequence[Run]) -> str:
    parts = []
    for run in runs:
        cps = run.summary.get("checkpoints")
        if not isinstance(cps, list) or not cps:
            continue
        rows = [
            [
                c.get("name"),
                c.get("epoch"),
                c.get("step"),
                c.get("tokens_seen"),
                c.get("entropy"),
                c.get("accuracy"),
                c.get("eval_problems"),
            ]
            for c in cps
            if isinstance(c, dict)
        ]
        selection = run.summary.get("selection")
        note = ""
        if isinstance(selection, dict) and selection:
            note = (
                "<p>selection: "
                + ", ".join(
                    f"{html.escape(str(k))} = {_fmt(v)}"
                    for k, v in selection.items()
                    if not isinstance(v, (dict, list))
                )
                + "</p>"
            )
        parts.append(
            f"<h3>{html.escape(run.label)}</h3>"
            + _table(["checkpoint", "epoch", "step", "tokens seen", "entropy", "accuracy", "eval problems"], rows)
            + note
        )
    return "".join(parts) or "<p class='missing'>No run's summary.json lists SFT checkpoints.</p>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee}.missing{color:#888;font-style:italic}
.caption{color:#555;font-size:.9em}code{background:#f6f6f6;padding:0 .2em}
"""


def render_html(runs: Sequence[Run], sections: Sequence[Section], notes: Sequence[str], files_dir: str) -> str:
    """The page: runs, stability table, plots (embedded), SFT checkpoints, evaluation."""
    body = [
        f"<h1>ringrl report: {len(runs)} run{'s' if len(runs) != 1 else ''}</h1>",
        "<h2>Runs</h2>",
        _runs_table(runs),
        "<h2>Stability and final reward</h2>",
        "<p class='caption'>Coefficient of variation = population standard deviation / |mean| over the "
        "logged steps (lower is steadier; C3PO's fixed token budget should keep tokens/step and step time "
        "flat). Final reward: last logged <code>reward/mean</code>, else <code>reward_last</code>.</p>",
        _stats_table([run_stats(r) for r in runs]),
    ]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.png is None:
            body.append(f"<p class='missing'>Plot skipped: {section.missing}.</p>")
            continue
        data = base64.b64encode(section.png).decode("ascii")
        body.append(
            f"<p class='caption'>{section.caption}. Copy: <code>{html.escape(files_dir)}/{section.slug}.png</code></p>"
        )
        body.append(f"<img alt='{html.escape(section.title)}' src='data:image/png;base64,{data}'>")
    body += ["<h2>SFT checkpoints</h2>", _checkpoint_tables(runs), "<h2>Evaluation</h2>", _eval_tables(runs)]
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>ringrl report</title>"
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def build_report(run_dirs: Sequence[Path], output: Path, labels: Sequence[str] | None = None) -> Path:
    """Write a self-contained HTML report overlaying ``run_dirs`` to ``output`` and the
    plots as PNG files to ``<output stem>_files/``; returns ``output``.

    Pipeline directories expand to their stages. ``labels`` (one per directory) default
    to the directory names. Raises UserError for a missing or empty run directory.
    """
    output = Path(output)
    runs, notes = load_runs([Path(d) for d in run_dirs], labels)
    sections = _sections(runs)
    files_dir = output.parent / f"{output.stem}_files"
    for section in sections:
        if section.png is not None:
            _write_bytes(files_dir / f"{section.slug}.png", section.png)
    atomic_write_text(output, render_html(runs, sections, notes, files_dir.name))
    os.chmod(output, 0o644)
    return output
