"""``ringrl report``: one self-contained HTML page overlaying several runs (docs/report.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ringrl.errors import UserError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="HTML report with plots, several runs overlaid",
        description="Reward, response length, gradient norm, entropy, tokens per step, throughput and step "
        "time (the paper's Figures 7 and 8), SFT loss, SFT entropy per epoch (Figure 5), token efficiency "
        "(Figure 9), expert load, stability (coefficient of variation) and evaluation tables. Plots are "
        "embedded in the page and copied to <output stem>_files/*.png. A pipeline directory expands to "
        "its stages.",
    )
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", type=Path, help="run or pipeline directories")
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE.html",
        type=Path,
        default=Path("report.html"),
        help="where to write the page (default report.html)",
    )
    p.add_argument("--labels", metavar="a,b", help="comma-separated legend labels, one per RUN_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ringrl.report import build_report

    labels = None
    if args.labels is not None:
        labels = [label.strip() for label in args.labels.split(",")]
        if any(not label for label in labels):
            raise UserError(f"--labels {args.labels!r}: empty label")
    if args.output.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--output {args.output}: must end in .html")
    out = build_report(args.run_dirs, args.output, labels)
    print(f"wrote {out} and {out.parent / (out.stem + '_files')}/")
    return 0
