"""``ringrl curate``: cleansing, de-duplication, decontamination, difficulty (docs/curate.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ringrl.curate import FILTERS, REPORT_NAME, CurateConfig, NearDupConfig, benchmark_files, curate_file
from ringrl.curate.data_dir import find_data_dir
from ringrl.errors import UserError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "curate",
        help="clean, de-duplicate and decontaminate a JSONL data set",
        description="Drop rows with no answer, invalid characters or images, multiple-choice, "
        "true/false and yes/no problems, several sub-questions, exact and near duplicates, rows "
        "overlapping benchmark questions and, with --model, rows the model always or never solves. "
        f"Writes OUT.jsonl and {REPORT_NAME} beside it, and prints a table of removals per filter.",
    )
    p.add_argument("input", metavar="IN.jsonl", type=Path, help="rows to curate (one JSON object a line)")
    p.add_argument("--output", "-o", metavar="OUT.jsonl", type=Path, required=True, help="kept rows")
    p.add_argument(
        "--benchmarks",
        metavar="LIST",
        help="comma-separated benchmarks: the names eval takes (gsm8k, math500, aime2024, ...), JSONL files, or "
        "file names in the data dir (e.g. math500_test); default: every *.jsonl in the data dir whose name "
        "does not contain 'train'",
    )
    p.add_argument(
        "--data-dir",
        metavar="D",
        type=Path,
        help="benchmark folder (default: $RINGRL_DATA_DIR, else a shared/data folder found above the current "
        "directory or the package)",
    )
    p.add_argument("--no-decontam", action="store_true", help="skip decontamination")
    p.add_argument(
        "--near-dup-threshold",
        metavar="X",
        type=float,
        default=0.8,
        help="Jaccard similarity of normalised word shingles at or above which a row is a near duplicate (default 0.8)",
    )
    p.add_argument(
        "--shingle", metavar="W", type=int, default=5, help="near-duplicate shingle size in words (default 5)"
    )
    p.add_argument("--ngram", metavar="N", type=int, default=13, help="decontamination word n-gram size (default 13)")
    p.add_argument("--model", metavar="DIR", help="model for model-aware difficulty (solve rate over --samples)")
    p.add_argument("--samples", metavar="K", type=int, default=8, help="samples per row for the solve rate (default 8)")
    p.set_defaults(func=run)


def _solve_rate_fn(model: str, samples: int) -> Any:
    """The solve-rate hook backed by the generation engine and rewards."""
    if samples < 2:
        raise UserError(f"--samples must be at least 2 to tell always/never from sometimes, got {samples}")
    raise UserError(
        "--model: model-aware difficulty needs the shared generation engine and rewards, which are not "
        "wired into curate yet; run without --model (library users can pass solve_rate_fn to curate_file)"
    )


def run(args: argparse.Namespace) -> int:
    config = CurateConfig(
        near_dup=NearDupConfig(threshold=args.near_dup_threshold, ngram=args.shingle),
        decontam_ngram=args.ngram,
    )
    solve_rate_fn = _solve_rate_fn(args.model, args.samples) if args.model else None
    files: list[Path] = []
    if not args.no_decontam:
        data_dir = args.data_dir
        if data_dir is not None and not data_dir.is_dir():
            raise UserError(f"--data-dir {data_dir}: not a directory")
        if data_dir is None:
            data_dir = find_data_dir()
        names = [n.strip() for n in args.benchmarks.split(",") if n.strip()] if args.benchmarks else None
        files = benchmark_files(data_dir, names)
        if not files:
            print(
                "ringrl curate: warning: no benchmark files found; decontamination skipped "
                "(pass --data-dir or --benchmarks)",
                file=sys.stderr,
            )
    result, report = curate_file(
        args.input,
        args.output,
        config,
        files,
        solve_rate_fn,
        extra_settings={"model": args.model, "samples": args.samples if args.model else None},
    )
    for err in result.parse_errors:
        print(f"ringrl curate: {args.input}:{err.line}: skipped: {err.error}", file=sys.stderr)
    _print_table(report)
    return 0


def _print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"curation: {report['rows_read']} rows read, {report['rows_kept']} kept")
    table.add_column("filter")
    table.add_column("removed", justify="right")
    table.add_column("rule")
    if report["unparseable"]:
        table.add_row("unparseable", str(report["unparseable"]), "line is not a UTF-8 JSON object")
    for name, count in report["removed_by_filter"].items():
        table.add_row(name, str(count), FILTERS.get(name, ""))
    if report["decontamination"] != "done":
        table.caption = f"decontamination {report['decontamination']}"
    Console().print(table)
    print(f"wrote {report['output']} and {Path(report['output']).parent / REPORT_NAME}")
