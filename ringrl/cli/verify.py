"""``ringrl verify``: offline batch verification of responses (math, science, logic, code).

Input rows carry ``id``, ``domain``, ``response`` and the verifier fields (extra fields
are ignored); output rows are ``{"id", "reward", "status", "detail"}`` in input order.
A row that cannot be verified (unknown domain, missing field) is reported on stderr as
``FILE:LINE: field 'F': message``; by default it gets status ``error`` and reward 0 and
the run goes on, with ``--strict`` the command stops with exit code 2 before grading.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ringrl.errors import DataError, UserError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "verify",
        help="batch verification of responses (math, code, science, logic)",
        description="Score responses with the rule-based verifiers: 1 when the verifier accepts the "
        "final answer, else 0. Rows: id, domain, response and the verifier fields (answer; tests or "
        "test_code, entry_point; checker, numbers, target). Code runs in the sandbox (docs/rewards.md).",
    )
    p.add_argument("input", metavar="INPUT.jsonl", help="rows to verify")
    p.add_argument("--output", "-o", required=True, metavar="OUT.jsonl", help="where to write the verdicts")
    p.add_argument("--workers", type=int, default=None, help="grader processes and code sandboxes (default: CPU count)")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per math/science/logic grading (default 5) and per code execution (default 10)",
    )
    p.add_argument(
        "--strict", action="store_true", help="stop at the first bad row (exit 2) instead of marking it error"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _load(path: Path, strict: bool) -> tuple[list[dict[str, Any]], list[str], dict[int, str]]:
    from ringrl.rewards.registry import row_problem
    from ringrl.utils.io import iter_jsonl

    rows: list[dict[str, Any]] = []
    responses: list[str] = []
    bad: dict[int, str] = {}  # row index -> the problem, as the verdict's detail
    for lineno, row in iter_jsonl(path):
        problem = row_problem(row)
        if problem is None and "id" not in row:
            problem = ("id", "missing")
        if problem is None and not isinstance(row.get("response"), str):
            problem = ("response", "missing (a string)" if "response" not in row else "must be a string")
        if problem is not None:
            err = DataError(str(path), lineno, problem[0], problem[1])
            if strict:
                raise err
            print(f"ringrl verify: {err}", file=sys.stderr)
            bad[len(rows)] = f"field '{problem[0]}': {problem[1]}"
        rows.append(row)
        responses.append(row.get("response") if isinstance(row.get("response"), str) else "")
    if not rows:
        raise UserError(f"{path}: no rows")
    return rows, responses, bad


def run(args: argparse.Namespace) -> int:
    from ringrl.rewards import RewardPool, Verdict
    from ringrl.utils.io import write_jsonl

    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise UserError("--timeout must be positive")
    path = Path(args.input)
    rows, responses, bad = _load(path, args.strict)
    kwargs: dict[str, Any] = {"workers": args.workers}
    if args.timeout is not None:
        kwargs.update(timeout=args.timeout, code_timeout=args.timeout)
    start = time.monotonic()
    verdicts: list[Verdict]
    with RewardPool(**kwargs) as pool:
        if args.no_progress:
            verdicts = pool.score(rows, responses)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(
                TextColumn("verify"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=False,
                console=_stderr_console(),
            ) as bar:
                task = bar.add_task("verify", total=len(rows))
                verdicts = pool.score(rows, responses, progress=lambda k: bar.advance(task, k))
    elapsed = max(time.monotonic() - start, 1e-9)
    for i, problem in bad.items():  # already reported on stderr with file and line
        verdicts[i] = Verdict.of("error", problem)
    out_rows = [
        {"id": r.get("id"), "reward": v.reward, "status": v.status, "detail": v.detail} for r, v in zip(rows, verdicts)
    ]
    write_jsonl(Path(args.output), out_rows)
    _summary(rows, verdicts, elapsed)
    return 0


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _summary(rows: list[dict[str, Any]], verdicts: list[Any], elapsed: float) -> None:
    from rich.table import Table

    counts = Counter((str(r.get("domain")), v.status) for r, v in zip(rows, verdicts))
    statuses = sorted({s for _, s in counts})
    domains = sorted({d for d, _ in counts})
    table = Table(title=f"{len(rows)} rows in {elapsed:.2f}s ({len(rows) / elapsed:.1f} rows/s)")
    table.add_column("domain")
    for s in statuses:
        table.add_column(s, justify="right")
    table.add_column("reward mean", justify="right")
    for d in domains:
        rs = [v.reward for r, v in zip(rows, verdicts) if str(r.get("domain")) == d]
        table.add_row(d, *[str(counts.get((d, s), 0)) for s in statuses], f"{sum(rs) / len(rs):.3f}")
    _stderr_console().print(table)
