"""``ringrl select-checkpoint RUN_DIR [--band LOW HIGH]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ringrl.sft.select import PAPER_BAND


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "select-checkpoint",
        help="choose the SFT checkpoint for RL by entropy band",
        description="Among SFT checkpoints whose entropy lies in the band, take the most-trained; if none is in "
        "the band, the closest one (and say so). Prints a table and writes RUN_DIR/selection.json.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="an `ringrl sft` run directory (with summary.json)")
    p.add_argument(
        "--band",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        default=list(PAPER_BAND),
        help=f"entropy band in nats (default: the paper's {PAPER_BAND[0]} {PAPER_BAND[1]})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ringrl.sft.selectcli import print_checkpoints, select_run
    from ringrl.utils.io import read_json

    sel, record = select_run(args.run_dir, args.band[0], args.band[1])
    print_checkpoints(read_json(Path(args.run_dir) / "summary.json")["checkpoints"], chosen=record["chosen"])
    if not sel.in_band:
        print(f"warning: {sel.reason}", file=sys.stderr)
    print(f"chosen: {record['chosen']} ({record['path']}): {sel.reason}")
    return 0
