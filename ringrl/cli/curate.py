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
    p.add_argument(
        "input",
        metavar="IN.jsonl",
        type=Path,
        help="rows to curate: JSONL (one JSON object a line), .parquet or a datasets folder",
    )
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
    p.add_argument(
        "--max-new-tokens",
        dest="max_new_tokens",
        metavar="N",
        type=int,
        default=1024,
        help="longest sampled response for the solve rate (default 1024)",
    )
    p.add_argument(
        "--temperature", type=float, default=1.0, help="sampling temperature for the solve rate (default 1.0)"
    )
    p.add_argument("--device", help="torch device for --model (default: CUDA when present)")
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run Python code shipped in the --model directory (config.json 'auto_map'); only for models you trust",
    )
    p.set_defaults(func=run)


def _solve_rate_fn(args: argparse.Namespace) -> Any:
    """The solve-rate hook: ``--samples`` responses per row from ``--model`` through the rollout
    engine, graded by the verifier registry; a row's rate is the fraction with reward 1."""
    samples = args.samples
    if samples < 2:
        raise UserError(f"--samples must be at least 2 to tell always/never from sometimes, got {samples}")
    if args.max_new_tokens < 1 or not args.temperature > 0:
        raise UserError("--max-new-tokens must be >= 1 and --temperature > 0")
    from ringrl.data.prompts import render_prompt
    from ringrl.models.forward import compute_autocast
    from ringrl.models.loading import load_policy
    from ringrl.rewards import RewardPool
    from ringrl.rollout import HFEngine

    try:
        model, tokenizer = load_policy(
            args.model, args.device, None, args.trust_remote_code, trust_key="--trust-remote-code"
        )
    except UserError as e:
        raise UserError(f"--model: {e}") from None

    def rates(rows: list[dict[str, Any]]) -> list[float]:
        engine = HFEngine(model, tokenizer)
        prompts = [render_prompt(tokenizer, r) for r in rows]
        with compute_autocast(model):
            groups = engine.generate(
                prompts, n=samples, temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=0
            )
        pool = RewardPool()
        try:
            verdicts = pool.score([r for r, g in zip(rows, groups) for _ in g], [c.text for g in groups for c in g])
        finally:
            pool.close()
        solved = [v.reward >= 1.0 for v in verdicts]
        return [sum(solved[i * samples : (i + 1) * samples]) / samples for i in range(len(rows))]

    return rates


def run(args: argparse.Namespace) -> int:
    config = CurateConfig(
        near_dup=NearDupConfig(threshold=args.near_dup_threshold, ngram=args.shingle),
        decontam_ngram=args.ngram,
    )
    solve_rate_fn = _solve_rate_fn(args) if args.model else None
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
