"""Every curation threshold at, just below and just above its value (docs/curate.md):
near duplicates at Jaccard >= 0.8, contamination at overlap >= 0.5 of the smaller n-gram
set, questions shorter than n matched whole, boilerplate above ``max_docs`` questions.

Texts are made of distinct words so that the shingle counts, and so the similarities,
are exact fractions computed by hand."""

from __future__ import annotations

import math

import pytest

from ringrl.curate.decontam import BenchmarkItem, build_index, drop_contaminated
from ringrl.curate.dedup import NearDupConfig, drop_near_duplicates, jaccard
from ringrl.curate.text import normalize_text, word_ngrams
from ringrl.curate.types import Entry

W = [f"w{i}" for i in range(40)]  # distinct words


def words(*idx: int) -> str:
    return " ".join(W[i] for i in idx)


def rows(*texts: str) -> list[Entry]:
    return [Entry(i + 1, {"prompt": t}) for i, t in enumerate(texts)]


def shingles(text: str, n: int = 5) -> set[str]:
    return word_ngrams(normalize_text(text).split(), n)


# --- near duplicates: Jaccard >= threshold --------------------------------------------

A8 = words(*range(8))  # 4 five-word shingles
A9 = words(*range(9))  # the same 4 plus 1: Jaccard 4/5 = 0.8 exactly
A7 = words(*range(7))  # 3 of A8's 4: Jaccard 3/4 = 0.75
A10 = words(*range(10))  # Jaccard with A9: 5/6


def test_hand_computed_similarities() -> None:
    assert jaccard(shingles(A8), shingles(A9)) == 0.8 == 4 / 5
    assert jaccard(shingles(A7), shingles(A8)) == 0.75
    assert jaccard(shingles(A9), shingles(A10)) == 5 / 6
    assert jaccard(set(), set()) == 0.0 and jaccard({"a"}, set()) == 0.0 and jaccard({"a"}, {"a"}) == 1.0


@pytest.mark.parametrize(
    "threshold, dropped",
    [(0.8, True), (math.nextafter(0.8, 0.0), True), (math.nextafter(0.8, 1.0), False)],
    ids=["at", "threshold-just-below", "threshold-just-above"],
)
def test_near_duplicate_exactly_at_the_threshold(threshold: float, dropped: bool) -> None:
    result = drop_near_duplicates(rows(A8, A9), NearDupConfig(threshold=threshold))
    assert [e.line for e in result.kept] == ([1] if dropped else [1, 2])
    if dropped:
        assert result.removed[0].reason == "Jaccard 0.80 with line 1"


def test_near_duplicate_similarity_just_below_and_above_the_default() -> None:
    assert NearDupConfig().threshold == 0.8
    assert len(drop_near_duplicates(rows(A8, A9)).kept) == 1  # 0.8: at the default, dropped
    assert len(drop_near_duplicates(rows(A8, A7)).kept) == 2  # 0.75: below, kept
    assert len(drop_near_duplicates(rows(A9, A10)).kept) == 1  # 0.83: above, dropped


def test_near_duplicate_answers_decide_only_when_both_rows_have_one() -> None:
    same = [Entry(1, {"prompt": A8, "answer": "12"}), Entry(2, {"prompt": A9, "answer": " 12 "})]
    other = [Entry(1, {"prompt": A8, "answer": "12"}), Entry(2, {"prompt": A9, "answer": "13"})]
    one_missing = [Entry(1, {"prompt": A8, "answer": "12"}), Entry(2, {"prompt": A9})]
    assert len(drop_near_duplicates(same).kept) == 1
    assert len(drop_near_duplicates(other).kept) == 2
    assert len(drop_near_duplicates(other, NearDupConfig(same_answer=False)).kept) == 1
    assert len(drop_near_duplicates(one_missing).kept) == 1


def test_near_duplicate_compares_with_every_kept_row_and_names_the_right_line() -> None:
    far = words(*range(20, 30))
    result = drop_near_duplicates(rows(far, A8, A9, far + " " + W[39]))
    assert [e.line for e in result.kept] == [1, 2]
    assert [(r.line, r.reason) for r in result.removed] == [
        (3, "Jaccard 0.80 with line 2"),
        (4, "Jaccard 0.86 with line 1"),  # 6 of 7 shingles
    ]


# --- decontamination: overlap >= min_overlap of the smaller n-gram set ----------------

BENCH6 = BenchmarkItem("bench", "q1", words(0, 1, 2, 3, 4, 5))  # 4 trigrams


@pytest.mark.parametrize(
    "text, ratio",
    [
        (words(0, 1, 2, 3, 30, 31, 32, 33), 2 / 4),  # 2 shared of min(6, 4)
        (words(0, 1, 2, 30, 31, 32, 33), 1 / 4),
        (words(0, 1, 2, 3, 4, 30, 31, 32), 3 / 4),
        (words(1, 2, 3, 4), 2 / 2),  # the row's own set is the smaller one
    ],
)
@pytest.mark.parametrize("min_overlap", [0.5, math.nextafter(0.5, 0.0), math.nextafter(0.5, 1.0)])
def test_contamination_at_below_and_above_the_overlap(text: str, ratio: float, min_overlap: float) -> None:
    index = build_index([BENCH6], n=3, min_overlap=min_overlap)
    hit = index.match(text)
    assert (hit is not None) == (ratio >= min_overlap), (ratio, min_overlap)
    if hit is not None:
        assert hit[0] == BENCH6 and hit[1].endswith(f"shared 3-grams ({ratio:.0%})")


def test_overlap_divides_by_the_smaller_set() -> None:
    long_q = BenchmarkItem("bench", "long", words(*range(12)))  # 10 trigrams
    row = words(0, 1, 2, 3, 35)  # 3 trigrams, 2 shared: 2/3 of the row's, 2/10 of the question's
    assert build_index([long_q], n=3).match(row) is not None
    assert build_index([long_q], n=3, min_overlap=0.7).match(row) is None


def test_question_shorter_than_n_is_matched_whole_and_n_words_by_ngrams() -> None:
    short = BenchmarkItem("bench", "short", words(0, 1))  # 2 words < n = 3
    exact_n = BenchmarkItem("bench", "three", words(10, 11, 12))  # 3 words = n: one trigram
    index = build_index([short, exact_n], n=3)
    assert index.match(words(20, 0, 1, 21)) == (short, "contains the whole question")
    assert index.match(words(0, 20, 1)) is None  # not contiguous
    assert index.match(words(0, 1)) == (short, "contains the whole question")  # the row is the question
    assert index.match(words(20, 10, 11, 12, 21)) == (exact_n, "1 shared 3-grams (100%)")
    assert index.match(words(10, 11)) is None  # a row shorter than n has no trigram


@pytest.mark.parametrize("copies, boilerplate", [(2, False), (3, True)], ids=["at-max-docs", "above-max-docs"])
def test_boilerplate_above_max_docs_questions(copies: int, boilerplate: bool) -> None:
    stock = words(30, 31, 32)
    items = [BenchmarkItem("bench", str(i), f"{words(3 * i, 3 * i + 1, 3 * i + 2)} {stock}") for i in range(copies)]
    index = build_index(items, n=3, max_docs=2)
    assert (normalize_text(stock) in index.boilerplate) == boilerplate
    assert (normalize_text(stock) in index.ngrams) != boilerplate
    hit = index.match(stock)  # the row is the stock phrase alone: all of its one trigram shared
    assert (hit is None) == boilerplate


def test_drop_contaminated_reports_source_and_id() -> None:
    index = build_index([BENCH6], n=3)
    result = drop_contaminated(rows(words(0, 1, 2, 3, 4, 5), words(30, 31, 32, 33)), index)
    assert [e.line for e in result.kept] == [2]
    assert [(r.line, r.filter, r.reason) for r in result.removed] == [
        (1, "contaminated", "overlaps bench:q1: 4 shared 3-grams (100%)")
    ]
