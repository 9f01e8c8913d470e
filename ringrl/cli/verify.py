"""``ringrl verify``: offline batch verification of responses (math, science, logic, code).

Input rows carry ``id``, ``domain``, ``response`` and the verifier fields (extra fields
are ignored); output rows are ``{"id", "reward", "status", "detail"}`` in input order.
A row that cannot be verified (unknown domain, missing field) is reported on stderr as
``FILE:LINE: field 'F': message``; by default it gets status ``error`` and reward 0 and
the run goes on, with ``--strict`` the command stops with exit code 2 before grading.

Code rows need the sandbox's isolation: where it is unavailable the command stops with one
line and exit code 2 before grading, unless ``--unsafe-no-sandbox`` (or
``RINGRL_SANDBOX_UNSAFE=1``) allows running code with rlimits only.
"""

from __future__ import annotations

import argparse
import math
import os
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
    p.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="where sandbox isolation (user, PID, network, mount namespaces) is unavailable, run code "
        "with rlimits only instead of refusing (same as RINGRL_SANDBOX_UNSAFE=1); never for untrusted code",
    )
    p.set_defaults(func=run)


def _load(path: Path, strict: bool) -> tuple[list[dict[str, Any]], list[str], dict[int, str]]:
    from ringrl.rewards.registry import row_problem
    from ringrl.utils.io import iter_jsonl

    rows: list[dict[str, Any]] = []
    responses: list[str] = []
    bad: dict[int, str] = {}  # row index -> the problem, as the verdict's detail
    try:
        numbered = list(iter_jsonl(path))
    except UnicodeDecodeError as e:
        raise DataError(str(path), _first_bad_line(path), None, f"not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror or e}") from None
    for lineno, row in numbered:
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
        response = row.get("response")
        responses.append(response if isinstance(response, str) else "")
    if not rows:
        raise UserError(f"{path}: no rows")
    return rows, responses, bad


def _first_bad_line(path: Path) -> int | None:
    """The 1-based number of the first line of ``path`` that is not valid UTF-8."""
    try:
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return lineno
    except OSError:
        pass
    return None


def _check_output(out: Path) -> None:
    """One line, before any grading, for an output path that cannot be written."""
    if out.is_dir():
        raise UserError(f"--output {out}: is a directory")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"--output {out}: {parent} is a file, not a directory")
    if out.exists() and not os.access(out, os.W_OK):
        raise UserError(f"--output {out}: not writable")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--output {out}: cannot write in {parent} (read-only or no permission)")


def _needs_sandbox(rows: list[dict[str, Any]], bad: dict[int, str]) -> bool:
    return any(r.get("domain") == "code" for i, r in enumerate(rows) if i not in bad)


def run(args: argparse.Namespace) -> int:
    from ringrl.rewards import RewardPool, Verdict
    from ringrl.rewards.sandbox import namespaces_available, refusal, unsafe_allowed
    from ringrl.utils.io import write_jsonl

    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UserError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    path = Path(args.input)
    out = Path(args.output)
    _check_output(out)
    rows, responses, bad = _load(path, args.strict)
    unsafe = unsafe_allowed(args.unsafe_no_sandbox)
    if _needs_sandbox(rows, bad) and not unsafe and not namespaces_available():
        raise UserError(refusal())
    kwargs: dict[str, Any] = {"workers": args.workers, "unsafe_no_sandbox": unsafe}
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
    try:
        write_jsonl(out, out_rows)
    except OSError as e:
        raise UserError(f"--output {out}: cannot write: {e.strerror or e}") from None
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
