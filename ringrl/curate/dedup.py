"""Exact and near de-duplication; the first occurrence of a duplicate is kept.

Exact duplicates: the same question text after stripping outer white space.

Near duplicates: texts are normalised (:func:`~ringrl.curate.text.normalize_text`:
case, white space and punctuation) and cut into word ``ngram``-shingles; two rows are
near duplicates when the Jaccard similarity of their shingle sets is at least
``threshold`` and, with ``same_answer`` (default), their reference answers do not
differ. Templated variants ("... the word RADII" / "... the word MADAM", Jaccard 0.8)
have different answers and are different problems for RL; a re-typed copy of the same
problem has the same answer. Rows without an ``answer`` (code) are compared on text only. Candidates come from MinHash signatures (``bands * rows_per_band``
permutations) bucketed by LSH bands; every candidate pair is then checked with the
exact Jaccard, so MinHash only decides which pairs are compared, never the verdict.
With 20 bands of 6 rows a pair at Jaccard 0.8 becomes a candidate with probability
1 - (1 - 0.8**6)**20 > 0.997.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ringrl.curate.text import normalize_text, stable_hash64, word_ngrams
from ringrl.curate.types import Entry, Removal, StageResult
from ringrl.data.rows import row_prompt

_PRIME = (1 << 31) - 1  # permutations h(x) = (a x + b) mod p on 31-bit shingle hashes


@dataclass(frozen=True)
class NearDupConfig:
    """Settings of near-duplicate detection."""

    threshold: float = 0.8
    """Jaccard similarity of shingle sets at or above which a later row is dropped."""
    ngram: int = 5
    """Shingle size in words (after normalisation)."""
    bands: int = 20
    """LSH bands."""
    rows_per_band: int = 6
    """MinHash values per band; ``bands * rows_per_band`` permutations in all."""
    seed: int = 0
    """Seed of the MinHash permutations."""
    same_answer: bool = True
    """Only call rows near duplicates when their answers do not differ (normalised)."""


def drop_exact_duplicates(entries: Sequence[Entry]) -> StageResult:
    """Drop rows whose stripped question equals an earlier row's; keep the first."""
    first: dict[str, int] = {}
    kept: list[Entry] = []
    removed: list[Removal] = []
    for entry in entries:
        key = row_prompt(entry.row).strip()
        if key in first:
            removed.append(Removal(entry.line, "exact_duplicate", f"same question as line {first[key]}"))
        else:
            first[key] = entry.line
            kept.append(entry)
    return StageResult(kept, removed)


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


@dataclass
class MinHasher:
    """MinHash signatures of shingle sets with fixed random permutations."""

    num_perm: int
    seed: int = 0
    _a: np.ndarray = field(init=False, repr=False)
    _b: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._a = rng.integers(1, _PRIME, size=self.num_perm, dtype=np.uint64)
        self._b = rng.integers(0, _PRIME, size=self.num_perm, dtype=np.uint64)

    def signature(self, shingles: set[str]) -> np.ndarray:
        """``[num_perm]`` minimum permuted hash per permutation (all ``p`` for an empty set)."""
        if not shingles:
            return np.full(self.num_perm, _PRIME, dtype=np.uint64)
        x = np.fromiter((stable_hash64(s) % _PRIME for s in shingles), dtype=np.uint64, count=len(shingles))
        permuted = (x[:, None] * self._a[None, :] + self._b[None, :]) % _PRIME  # [S, P], < 2**62 before mod
        return permuted.min(axis=0)


def _answer_key(row: dict[str, Any]) -> str | None:
    answer = row.get("answer")
    if answer is None or isinstance(answer, (dict, list)):
        return None
    return normalize_text(str(answer)) or None


def drop_near_duplicates(entries: Sequence[Entry], config: NearDupConfig = NearDupConfig()) -> StageResult:
    """Drop rows whose normalised question is within ``config.threshold`` Jaccard of an
    earlier kept row (compared on word ``config.ngram``-shingles); keep the first."""
    hasher = MinHasher(config.bands * config.rows_per_band, config.seed)
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(config.bands)]
    kept_shingles: list[set[str]] = []
    kept_answers: list[str | None] = []
    kept: list[Entry] = []
    removed: list[Removal] = []
    for entry in entries:
        shingles = word_ngrams(normalize_text(row_prompt(entry.row)).split(), config.ngram)
        answer = _answer_key(entry.row) if config.same_answer else None
        sig = hasher.signature(shingles)
        keys = [sig[i * config.rows_per_band : (i + 1) * config.rows_per_band].tobytes() for i in range(config.bands)]
        candidates = sorted({k for band, key in zip(buckets, keys) for k in band.get(key, ())})
        match = next(
            (
                (k, s)
                for k in candidates
                if (answer is None or kept_answers[k] is None or kept_answers[k] == answer)
                and (s := jaccard(shingles, kept_shingles[k])) >= config.threshold
            ),
            None,
        )
        if match is not None:
            k, sim = match
            removed.append(Removal(entry.line, "near_duplicate", f"Jaccard {sim:.2f} with line {kept[k].line}"))
            continue
        index = len(kept)
        kept.append(entry)
        kept_shingles.append(shingles)
        kept_answers.append(answer)
        for band, key in zip(buckets, keys):
            band.setdefault(key, []).append(index)
    return StageResult(kept, removed)
