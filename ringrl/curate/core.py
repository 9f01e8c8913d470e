"""The curation run: read rows, apply every filter in order, write the kept rows and
``curation_report.json``.

Order: cleansing rules (:mod:`ringrl.curate.cleansing`), exact duplicates, near
duplicates (:mod:`ringrl.curate.dedup`), decontamination
(:mod:`ringrl.curate.decontam`), then, when a ``solve_rate_fn`` is given, model-aware
difficulty (:mod:`ringrl.curate.difficulty`), the only costly stage, on the survivors.
A row is counted under the first filter that drops it. De-duplication runs on rows
that passed cleansing, so the first *usable* occurrence of a duplicate is the one kept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ringrl.curate.cleansing import CLEANSING_RULES, cleansing_reason
from ringrl.curate.decontam import ContaminationIndex, build_index, drop_contaminated, load_benchmark_items
from ringrl.curate.dedup import NearDupConfig, drop_exact_duplicates, drop_near_duplicates
from ringrl.curate.difficulty import SolveRateFn, drop_by_solve_rate
from ringrl.curate.types import Entry, Removal, StageResult
from ringrl.data.rows import load_table
from ringrl.errors import UserError
from ringrl.utils.io import max_row_bytes, write_json, write_jsonl

FILTERS: dict[str, str] = {
    "empty_prompt": "no question text",
    "no_answer": "empty or missing answer (code: tests)",
    "invalid_characters": "control characters, U+FFFD or images",
    "multiple_choice": "options A-D, or an option letter as answer",
    "true_false_yes_no": "true/false or yes/no answer or question",
    "several_subquestions": "(a)/(b), 1./2. questions, or several question sentences",
    "exact_duplicate": "same question as an earlier row",
    "near_duplicate": "normalised question close to an earlier row's",
    "contaminated": "shares most n-grams with a benchmark question",
    "too_easy": "model always solves it (solve rate 1)",
    "too_hard": "model never solves it (solve rate 0)",
}
assert set(CLEANSING_RULES) <= set(FILTERS)

REPORT_NAME = "curation_report.json"


@dataclass(frozen=True)
class CurateConfig:
    """Settings of a curation run."""

    near_dup: NearDupConfig = NearDupConfig()
    """Near-duplicate detection: Jaccard threshold, shingle size, LSH layout."""
    decontam_ngram: int = 13
    """Word n-gram size for benchmark overlap."""
    boilerplate_max_docs: int = 10
    """Benchmark n-grams found in more questions than this are ignored as boilerplate."""
    decontam_min_overlap: float = 0.5
    """Shared n-grams / the smaller n-gram set at or above which a row is contaminated."""

    def __post_init__(self) -> None:
        if not 0.0 < self.near_dup.threshold <= 1.0:
            raise UserError(f"near-duplicate threshold must be in (0, 1], got {self.near_dup.threshold}")
        if self.near_dup.ngram < 1:
            raise UserError(f"shingle size must be at least 1, got {self.near_dup.ngram}")
        if not 0.0 < self.decontam_min_overlap <= 1.0:
            raise UserError(f"decontamination overlap must be in (0, 1], got {self.decontam_min_overlap}")
        if self.decontam_ngram < 1:
            raise UserError(f"decontamination n-gram must be at least 1, got {self.decontam_ngram}")


@dataclass(frozen=True)
class ParseError:
    """An input line that is not a JSON object."""

    line: int
    error: str


@dataclass
class CurationResult:
    """Kept rows (with ``solve_rate`` when difficulty ran), every removal and parse error."""

    kept: list[Entry]
    removed: list[Removal]
    parse_errors: list[ParseError] = field(default_factory=list)
    rows_read: int = 0

    def counts(self) -> dict[str, int]:
        """Rows removed per filter, every filter listed (0 when it removed nothing)."""
        counts = dict.fromkeys(FILTERS, 0)
        for r in self.removed:
            counts[r.filter] = counts.get(r.filter, 0) + 1
        return counts


def read_entries(path: Path, limit: int | None = None) -> tuple[list[Entry], list[ParseError]]:
    """Parse a JSONL file line by line; lines that are not UTF-8 JSON objects, and rows over
    ``limit`` bytes (default ``$RINGRL_MAX_ROW_BYTES``, never read whole), become
    :class:`ParseError` records instead of stopping the run. Blank lines are skipped. A Parquet
    file or a ``datasets`` folder is read as ``sft``/``rl`` read it (entries numbered by row).
    A file of which no line is a JSON object is not JSONL: one line, exit 2, not empty output."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: file not found")
    if p.is_dir() or p.suffix == ".parquet":
        return [Entry(i, row) for i, row in enumerate(load_table(p), start=1)], []
    cap = limit or max_row_bytes()
    entries: list[Entry] = []
    errors: list[ParseError] = []
    with p.open("rb") as f:
        lineno = 0
        while raw := f.readline(cap + 1):
            lineno += 1
            if len(raw) > cap and not raw.endswith(b"\n"):
                while (rest := f.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass  # the rest of the oversize line, a chunk at a time
                errors.append(ParseError(lineno, f"row longer than {cap:,} bytes (raise RINGRL_MAX_ROW_BYTES)"))
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                errors.append(ParseError(lineno, f"not UTF-8 ({e.reason} at byte {e.start})"))
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(ParseError(lineno, f"invalid JSON ({e.msg} at column {e.colno})"))
                continue
            if not isinstance(row, dict):
                errors.append(ParseError(lineno, f"expected a JSON object, got {type(row).__name__}"))
                continue
            entries.append(Entry(lineno, row))
    if errors and not entries:
        first = errors[0]
        raise UserError(
            f"{p}: no line is a JSON object ({len(errors)} bad, line {first.line}: {first.error}); "
            "curate reads JSONL, Parquet (.parquet) or a datasets folder"
        )
    return entries, errors


def apply_cleansing(entries: Sequence[Entry]) -> StageResult:
    """Drop rows any cleansing rule rejects, counted under the first such rule."""
    kept: list[Entry] = []
    removed: list[Removal] = []
    for entry in entries:
        verdict = cleansing_reason(entry.row)
        if verdict is None:
            kept.append(entry)
        else:
            removed.append(Removal(entry.line, *verdict))
    return StageResult(kept, removed)


def curate_entries(
    entries: Sequence[Entry],
    config: CurateConfig = CurateConfig(),
    index: ContaminationIndex | None = None,
    solve_rate_fn: SolveRateFn | None = None,
) -> CurationResult:
    """Run every filter in order over parsed rows (pure: no I/O).

    ``index`` None skips decontamination; ``solve_rate_fn`` None skips difficulty.
    """
    current = list(entries)
    removed: list[Removal] = []
    stages = [
        apply_cleansing,
        drop_exact_duplicates,
        lambda es: drop_near_duplicates(es, config.near_dup),
    ]
    if index is not None:
        stages.append(lambda es: drop_contaminated(es, index))
    if solve_rate_fn is not None:
        stages.append(lambda es: drop_by_solve_rate(es, solve_rate_fn))
    for stage in stages:
        result = stage(current)
        current = result.kept
        removed.extend(result.removed)
    removed.sort(key=lambda r: r.line)
    return CurationResult(kept=current, removed=removed, rows_read=len(entries))


def build_report(
    result: CurationResult,
    input_path: Path,
    output_path: Path,
    config: CurateConfig,
    benchmarks: Sequence[tuple[Path, int]],
    decontamination_note: str | None,
    extra_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``curation_report.json`` object."""
    return {
        "input": str(input_path),
        "output": str(output_path),
        "rows_read": result.rows_read,
        "unparseable": len(result.parse_errors),
        "rows_kept": len(result.kept),
        "removed_by_filter": result.counts(),
        "settings": {
            "near_dup_threshold": config.near_dup.threshold,
            "shingle_words": config.near_dup.ngram,
            "minhash_bands": config.near_dup.bands,
            "minhash_rows_per_band": config.near_dup.rows_per_band,
            "decontam_ngram": config.decontam_ngram,
            "decontam_min_overlap": config.decontam_min_overlap,
            "boilerplate_max_docs": config.boilerplate_max_docs,
            "near_dup_same_answer": config.near_dup.same_answer,
            **(extra_settings or {}),
        },
        "benchmarks": [{"file": str(p), "questions": n} for p, n in benchmarks],
        "decontamination": decontamination_note or "done",
        "parse_errors": [asdict(e) for e in result.parse_errors],
        "removed": [asdict(r) for r in result.removed],
    }


def curate_file(
    input_path: Path,
    output_path: Path,
    config: CurateConfig = CurateConfig(),
    benchmark_files: Sequence[Path] = (),
    solve_rate_fn: SolveRateFn | None = None,
    extra_settings: dict[str, Any] | None = None,
) -> tuple[CurationResult, dict[str, Any]]:
    """Curate ``input_path`` into ``output_path`` and write ``curation_report.json``
    beside it. An empty ``benchmark_files`` skips decontamination (noted in the report).
    Returns the result and the report object."""
    input_path, output_path = Path(input_path), Path(output_path)
    if input_path.resolve() == output_path.resolve():
        raise UserError(f"{output_path}: output must differ from the input")
    entries, errors = read_entries(input_path)
    index = None
    counted: list[tuple[Path, int]] = []
    note: str | None = "skipped: no benchmark files (pass --benchmarks or --data-dir)"
    if benchmark_files:
        items = []
        for path in benchmark_files:
            file_items = load_benchmark_items([Path(path)])
            counted.append((Path(path), len(file_items)))
            items.extend(file_items)
        index = build_index(items, config.decontam_ngram, config.boilerplate_max_docs, config.decontam_min_overlap)
        note = None
    result = curate_entries(entries, config, index, solve_rate_fn)
    result.parse_errors = errors
    write_jsonl(output_path, [e.row for e in result.kept])
    report = build_report(result, input_path, output_path, config, counted, note, extra_settings)
    write_json(output_path.parent / REPORT_NAME, report)
    return result, report
