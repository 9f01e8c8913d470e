"""Benchmarks: the registry of known benchmark files and their mapping into dataset rows.

Known benchmarks are read from local JSONL files in a data directory (never copied into
the project): GSM8K test, MATH-500, AIME 2024 and 2025, HumanEval and MBPP (sanitized);
their fields are described in ``shared/data/SOURCES.md``. Each is mapped into the row
format of DESIGN.md ("Dataset rows"): ``id``, ``prompt``, ``domain`` and what the
verifier needs (``answer`` for math; ``tests``, plus ``entry_point`` for HumanEval's
``check(candidate)``, for code).

The data directory is ``--data-dir`` when given, else ``$RINGRL_DATA_DIR``, else the
first ``shared/data`` folder found beside the project: each ancestor of the current
directory and of the installed package is tried in turn (``<ancestor>/shared/data``), so
a checkout at ``/work/main`` finds ``/work/shared/data``.

Other sources: ``synthetic-<domain>`` is the test split of an embedded synthetic task
(``ringrl.tasks.make_split``, every level), ``synthetic-<domain>-l<N>`` its level N only
(fewer problems where a level's space is small), and ``NAME=PATH`` is any user file of rows (JSONL,
Parquet or a ``datasets`` folder) validated like every other dataset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringrl.data.prompts import CODE_FUNCTION_SUFFIX
from ringrl.data.rows import check_row, load_rows
from ringrl.errors import DataError, UserError
from ringrl.utils.io import iter_jsonl

DATA_DIR_ENV = "RINGRL_DATA_DIR"
SYNTHETIC_PREFIX = "synthetic-"
SYNTHETIC_TEST_SIZE = 200  # problems in a synthetic test split when --limit is not given
SYNTHETIC_TEST_SEED = 0  # the embedded tasks' test splits are fixed by this seed

Row = dict[str, Any]


def _math_row(raw: Row, prompt_key: str) -> Row:
    return {"id": str(raw["id"]), "prompt": raw[prompt_key], "domain": "math", "answer": str(raw["answer"])}


def _gsm8k(raw: Row) -> Row:
    return _math_row(raw, "question")


def _math500(raw: Row) -> Row:
    return {**_math_row(raw, "problem"), "subject": raw.get("subject"), "level": raw.get("level")}


def _aime(raw: Row) -> Row:
    return _math_row(raw, "problem")


def _humaneval(raw: Row) -> Row:
    # The verifier runs prompt + completion when the response has no fenced block,
    # then ``test`` and ``check(entry_point)``.
    return {
        "id": str(raw["id"]),
        "prompt": raw["prompt"],
        "domain": "code",
        "tests": raw["test"],
        "entry_point": raw["entry_point"],
    }


def mbpp_message(raw: Row) -> str:
    """MBPP's user message: the task, its asserts shown as in the MBPP paper, the code instruction.

    MBPP's task text does not name the function, so (as in Austin et al. 2021) the
    tests are shown; without them no model can match the expected name and signature.
    """
    tests = "\n".join(raw["test_list"])
    return f"{raw['prompt'].strip()}\nYour code should pass these tests:\n\n{tests}\n\n{CODE_FUNCTION_SUFFIX}"


def _mbpp(raw: Row) -> Row:
    setup = [raw["test_setup_code"]] if raw.get("test_setup_code") else []
    return {
        "id": str(raw["id"]),
        "prompt": mbpp_message(raw),
        "raw_prompt": True,  # the message above is complete; prompts.user_message adds nothing
        "domain": "code",
        "tests": "\n".join([*raw.get("test_imports", []), *setup, *raw["test_list"]]) + "\n",
    }


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark known by name: its file in the data directory and its row mapping."""

    name: str
    file: str
    to_row: Callable[[Row], Row]
    description: str


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in (
        BenchmarkSpec("gsm8k", "gsm8k_test.jsonl", _gsm8k, "GSM8K test, 1319 problems"),
        BenchmarkSpec("math500", "math500_test.jsonl", _math500, "MATH-500, 500 problems"),
        BenchmarkSpec("aime2024", "aime2024.jsonl", _aime, "AIME 2024 I+II, 30 problems"),
        BenchmarkSpec("aime2025", "aime2025.jsonl", _aime, "AIME 2025 I+II, 30 problems"),
        BenchmarkSpec("humaneval", "humaneval.jsonl", _humaneval, "HumanEval, 164 problems"),
        BenchmarkSpec("mbpp", "mbpp_sanitized.jsonl", _mbpp, "MBPP sanitized, 427 problems"),
    )
}
ALIASES = {"math-500": "math500", "aime24": "aime2024", "aime25": "aime2025", "mbpp-sanitized": "mbpp"}


@dataclass(frozen=True)
class Benchmark:
    """A loaded benchmark: rows in the row format, each with a unique string ``id``."""

    name: str
    rows: list[Row]
    source: str  # the file it was read from, or the generator that made it

    def ids(self) -> list[str]:
        return [r["id"] for r in self.rows]


def known_names() -> list[str]:
    """Names accepted by :func:`load_benchmark` (``synthetic-<domain>`` shown as a pattern)."""
    return [*BENCHMARKS, f"{SYNTHETIC_PREFIX}<domain>", f"{SYNTHETIC_PREFIX}<domain>-l<level>", "NAME=PATH"]


def data_dir_candidates(cwd: Path | None = None) -> list[Path]:
    """Every ``<ancestor>/shared/data`` tried, in order, when no data directory is given."""
    starts = [Path(cwd or Path.cwd()).resolve(), Path(__file__).resolve().parent]
    seen: list[Path] = []
    for start in starts:
        for anc in (start, *start.parents):
            cand = anc / "shared" / "data"
            if cand not in seen:
                seen.append(cand)
    return seen


def resolve_data_dir(data_dir: str | Path | None = None, cwd: Path | None = None) -> tuple[Path | None, str]:
    """The data directory and how it was chosen (for messages); ``None`` when none exists."""
    if data_dir is not None:
        return Path(data_dir), "--data-dir"
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env), f"${DATA_DIR_ENV}"
    candidates = data_dir_candidates(cwd)
    for cand in candidates:
        if cand.is_dir():
            return cand, "found beside the project"
    # Name only the first few nearest the working directory and the package: enough to act on.
    shown = ", ".join(str(c) for c in candidates[:3])
    return None, f"looked for shared/data in the ancestors of the working directory and of the package ({shown}, ...)"


def _load_known(spec: BenchmarkSpec, data_dir: str | Path | None, limit: int | None) -> Benchmark:
    root, how = resolve_data_dir(data_dir)
    if root is None:
        raise UserError(f"benchmark '{spec.name}' needs {spec.file}: no data directory ({how}); pass --data-dir")
    path = root / spec.file
    if not path.is_file():
        raise UserError(f"benchmark '{spec.name}': {path} not found (data directory {root}, {how}); pass --data-dir")
    rows: list[Row] = []
    for lineno, raw in iter_jsonl(path):
        try:
            row = spec.to_row(raw)
        except KeyError as e:
            raise DataError(str(path), lineno, str(e.args[0]), f"missing (needed by benchmark '{spec.name}')") from None
        problem = check_row(row, "eval")
        if problem is not None:
            raise DataError(str(path), lineno, problem[0], problem[1])
        rows.append(row)
        if limit and len(rows) >= limit:
            break
    _check_unique(rows, str(path))
    return Benchmark(spec.name, rows, str(path))


def _load_synthetic(name: str, limit: int | None) -> Benchmark:
    domain, levels = name[len(SYNTHETIC_PREFIX) :], None
    level = re.fullmatch(r"(.+)-l(\d+)", domain)
    if level:
        domain, levels = level.group(1), (int(level.group(2)),)
    from ringrl.tasks import make_split

    n = limit or SYNTHETIC_TEST_SIZE
    try:
        raw_rows = make_split(domain, "test", n, SYNTHETIC_TEST_SEED, levels=levels, strict=levels is None)
    except (KeyError, ValueError, UserError) as e:
        raise UserError(f"benchmark '{name}': {e}") from None
    if not raw_rows:
        raise UserError(f"benchmark '{name}': {domain} at levels {levels} has no test problems")
    rows = [{**r, "id": str(r.get("id", f"{name}-{i}"))} for i, r in enumerate(raw_rows)]
    _check_unique(rows, name)
    args = f"{domain!r}, 'test', {n}, {SYNTHETIC_TEST_SEED}" + (f", levels={levels}" if levels else "")
    return Benchmark(name, rows[:n], f"ringrl.tasks.make_split({args})")


def _load_user(name: str, path: str, limit: int | None) -> Benchmark:
    loaded = load_rows(path, "eval", limit)
    rows = [{**r, "id": str(r.get("id", f"{name}-{i}"))} for i, r in enumerate(loaded)]
    _check_unique(rows, path)
    return Benchmark(name, rows, str(path))


def _check_unique(rows: Iterable[Row], where: str) -> None:
    seen: set[str] = set()
    for i, r in enumerate(rows):
        if r["id"] in seen:
            raise DataError(where, None, "id", f"duplicate id {r['id']!r} (row {i + 1})")
        seen.add(r["id"])


def load_benchmark(spec: str, data_dir: str | Path | None = None, limit: int | None = None) -> Benchmark:
    """Load one benchmark by name (``gsm8k``), ``synthetic-<domain>``, or ``NAME=PATH``.

    ``limit`` keeps the first N problems. Unknown names raise a UserError listing the
    known ones; a missing file names where it looked.
    """
    spec = spec.strip()
    if "=" in spec:
        name, path = (s.strip() for s in spec.split("=", 1))
        if not name or not path:
            raise UserError(f"benchmark {spec!r}: expected NAME=PATH")
        return _load_user(name, path, limit)
    if spec.endswith((".jsonl", ".parquet")):
        return _load_user(Path(spec).stem, spec, limit)
    key = ALIASES.get(spec.lower(), spec.lower())
    if key in BENCHMARKS:
        return _load_known(BENCHMARKS[key], data_dir, limit)
    if key.startswith(SYNTHETIC_PREFIX) and len(key) > len(SYNTHETIC_PREFIX):
        return _load_synthetic(key, limit)
    raise UserError(f"unknown benchmark {spec!r}; known: {', '.join(known_names())}")


def parse_benchmark_list(values: Iterable[str]) -> list[str]:
    """Split ``--benchmarks`` values (comma-separated, possibly repeated) into specs, keeping order."""
    out: list[str] = []
    for v in values:
        for part in v.split(","):
            if part.strip() and part.strip() not in out:
                out.append(part.strip())
    if not out:
        raise UserError(f"no benchmarks given; known: {', '.join(known_names())}")
    return out
