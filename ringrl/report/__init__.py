"""HTML reports over run directories (docs/report.md): the paper's training curves
(Figures 5, 7, 8, 9), expert load, stability numbers and evaluation tables."""

from ringrl.report.build import build_report, render_html
from ringrl.report.plots import CURVES, CurveSpec, token_efficiency_points
from ringrl.report.runs import Run, load_run, load_runs, to_float
from ringrl.report.stats import RunStats, coefficient_of_variation, run_stats

__all__ = [
    "CURVES",
    "CurveSpec",
    "Run",
    "RunStats",
    "build_report",
    "coefficient_of_variation",
    "load_run",
    "load_runs",
    "render_html",
    "run_stats",
    "to_float",
    "token_efficiency_points",
]
