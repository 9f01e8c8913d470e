"""Decontamination against benchmark files by word n-gram overlap.

Benchmark questions and training questions are normalised the same way
(:func:`~ringrl.curate.text.normalize_text`) and cut into word ``n``-grams (default
13, the common practice since GPT-3). A single shared 13-gram is too weak for math:
competition problems share stock phrases ("... where m and n are relatively prime
positive integers. Find m+n."), which flagged 314 of the 8,179 MATH/AIME training
problems against MATH-500 and AIME. So a row is contaminated when the n-grams it
shares with one benchmark question make up at least ``min_overlap`` (default 0.5) of
the smaller of the two n-gram sets (the overlap coefficient). A benchmark question
with a prefix or suffix added, or with a number changed, shares far more than half.

A benchmark question shorter than ``n`` words is matched as a whole: the row is
contaminated when it contains that question as a contiguous run of words.

N-grams found in more than ``max_docs`` benchmark questions are boilerplate (for
instance the instruction line every LeetCode statement starts with): they are not
indexed and do not count on either side of the ratio.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ringrl.curate.text import normalize_text, word_ngrams
from ringrl.curate.types import Entry, Removal, StageResult
from ringrl.data.rows import row_prompt
from ringrl.errors import UserError
from ringrl.utils.io import iter_jsonl

BENCHMARK_TEXT_FIELDS = ("question", "problem", "prompt", "text")


@dataclass(frozen=True)
class BenchmarkItem:
    """One benchmark question: the file it came from, its id and its text."""

    source: str
    id: str
    text: str


@dataclass
class ContaminationIndex:
    """Benchmark n-grams (long questions) and whole short questions, by word count."""

    n: int
    min_overlap: float = 0.5
    items: list[BenchmarkItem] = field(default_factory=list)
    item_sizes: list[int] = field(default_factory=list)
    ngrams: dict[str, list[int]] = field(default_factory=dict)
    boilerplate: set[str] = field(default_factory=set)
    short: dict[int, dict[str, BenchmarkItem]] = field(default_factory=dict)

    def match(self, text: str) -> tuple[BenchmarkItem, str] | None:
        """The benchmark item ``text`` is contaminated by and a short description of the
        overlap, or None."""
        words = normalize_text(text).split()
        grams = word_ngrams(words, self.n) - self.boilerplate if len(words) >= self.n else set()
        shared: Counter[int] = Counter()
        for gram in grams:
            for k in self.ngrams.get(gram, ()):
                shared[k] += 1
        for k, count in shared.most_common():
            ratio = count / min(len(grams), self.item_sizes[k])
            if ratio >= self.min_overlap:
                return self.items[k], f"{count} shared {self.n}-grams ({ratio:.0%})"
        for length, table in self.short.items():
            for i in range(len(words) - length + 1):
                item = table.get(" ".join(words[i : i + length]))
                if item is not None:
                    return item, "contains the whole question"
        return None


def build_index(
    items: Sequence[BenchmarkItem], n: int = 13, max_docs: int = 10, min_overlap: float = 0.5
) -> ContaminationIndex:
    """Index benchmark questions: the word ``n``-grams of questions of at least ``n``
    words (n-grams in more than ``max_docs`` questions set aside as boilerplate), and
    shorter questions whole. Questions with no words are skipped."""
    index = ContaminationIndex(n=n, min_overlap=min_overlap)
    postings: dict[str, list[int]] = {}
    long_items: list[tuple[int, set[str]]] = []
    for item in items:
        words = normalize_text(item.text).split()
        if not words:
            continue
        if len(words) < n:
            index.short.setdefault(len(words), {}).setdefault(" ".join(words), item)
            continue
        k = len(index.items)
        index.items.append(item)
        grams = word_ngrams(words, n)
        long_items.append((k, grams))
        for gram in grams:
            postings.setdefault(gram, []).append(k)
    index.boilerplate = {g for g, ks in postings.items() if len(ks) > max_docs}
    index.ngrams = {g: ks for g, ks in postings.items() if len(ks) <= max_docs}
    index.item_sizes = [max(1, len(grams - index.boilerplate)) for _, grams in long_items]
    return index


def benchmark_text(row: dict[str, Any]) -> str | None:
    """The question of a benchmark row: the first string field among
    :data:`BENCHMARK_TEXT_FIELDS` (question, problem, prompt, text)."""
    for key in BENCHMARK_TEXT_FIELDS:
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def drop_contaminated(entries: Sequence[Entry], index: ContaminationIndex) -> StageResult:
    """Drop rows whose question overlaps a benchmark question (see the module docstring)."""
    kept: list[Entry] = []
    removed: list[Removal] = []
    for entry in entries:
        hit = index.match(row_prompt(entry.row))
        if hit is None:
            kept.append(entry)
            continue
        item, how = hit
        removed.append(Removal(entry.line, "contaminated", f"overlaps {item.source}:{item.id}: {how}"))
    return StageResult(kept, removed)


def benchmark_files(data_dir: Path | None, names: Sequence[str] | None) -> list[Path]:
    """Resolve ``--benchmarks``: each name is a benchmark name ``ringrl eval`` takes (``gsm8k``,
    ``math500``, ...), a path to a JSONL file or a file stem in ``data_dir`` (``math500_test``
    or ``math500_test.jsonl``). With no names, every ``*.jsonl`` in ``data_dir`` whose name
    does not contain ``train``."""
    from ringrl.eval.benchmarks import ALIASES, BENCHMARKS

    if not names:
        if data_dir is None:
            return []
        return sorted(p for p in Path(data_dir).glob("*.jsonl") if "train" not in p.stem)
    files = []
    for name in names:
        path = Path(name)
        if path.suffix == ".jsonl" and path.is_file():
            files.append(path)
            continue
        if data_dir is None:
            raise UserError(f"benchmark {name!r}: not a file and no data directory found (pass --data-dir)")
        spec = BENCHMARKS.get(ALIASES.get(name.lower(), name.lower()))
        stem = spec.file if spec is not None else name  # a name eval takes: its file in the data directory
        candidate = Path(data_dir) / (stem if stem.endswith(".jsonl") else f"{stem}.jsonl")
        if not candidate.is_file():
            known = ", ".join(sorted(p.stem for p in Path(data_dir).glob("*.jsonl"))) or "none"
            raise UserError(f"benchmark {name!r}: no file {candidate} (known: {known})")
        files.append(candidate)
    return files


def load_benchmark_items(files: Sequence[Path]) -> list[BenchmarkItem]:
    """Questions of every row of ``files`` (rows without a question field are skipped)."""
    items = []
    for path in files:
        for lineno, row in iter_jsonl(path):
            text = benchmark_text(row)
            if text is not None:
                items.append(BenchmarkItem(path.stem, str(row.get("id", f"line{lineno}")), text))
    return items
