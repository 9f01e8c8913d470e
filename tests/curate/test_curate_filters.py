"""Curation filters on hand-made rows: each cleansing rule, duplicates, decontamination,
difficulty, and the file-level run (unparseable lines, report, CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ringrl.cli import main
from ringrl.curate import (
    REPORT_NAME,
    BenchmarkItem,
    CurateConfig,
    Entry,
    NearDupConfig,
    build_index,
    cleansing_reason,
    curate_entries,
    curate_file,
    drop_by_solve_rate,
    drop_contaminated,
    drop_exact_duplicates,
    drop_near_duplicates,
    jaccard,
    normalize_text,
    word_ngrams,
)
from ringrl.curate.cleansing import (
    invalid_characters,
    multiple_choice,
    no_answer,
    several_subquestions,
    true_false_yes_no,
)

LONG = (
    "A farmer has a rectangular field whose length is twice its width. He walks around the whole "
    "field once and covers 600 meters. What is the area of the field in square meters?"
)


def entries(*texts: str, answer: str = "1") -> list[Entry]:
    return [Entry(i + 1, {"problem": t, "answer": answer}) for i, t in enumerate(texts)]


# --- cleansing rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        {"problem": "What is 2+2?"},
        {"problem": "What is 2+2?", "answer": ""},
        {"problem": "What is 2+2?", "answer": "  $ $ "},
        {"problem": "What is 2+2?", "answer": "\\boxed{}"},
        {"problem": "What is 2+2?", "answer": None},
        {"problem": "Write f.", "domain": "code", "tests": []},
        {"problem": "Write f.", "domain": "code"},
    ],
)
def test_no_answer_drops_missing_or_empty(row):
    assert no_answer(row) is not None


@pytest.mark.parametrize(
    "row",
    [
        {"problem": "What is 2+2?", "answer": "4"},
        {"problem": "What is 2-2?", "answer": 0},
        {"problem": "Empty set?", "answer": "\\emptyset"},
        {"problem": "Write f.", "domain": "code", "tests": "assert f() == 1"},
        {"problem": "Write f.", "tests": [{"input": "1", "output": "2"}]},
    ],
)
def test_no_answer_keeps_usable_rows(row):
    assert no_answer(row) is None


@pytest.mark.parametrize(
    "text",
    [
        "Compute 2+2\x00.",
        "Compute 2+2\x1b[0m.",
        "Compute 2\ufffd2.",
        "See the figure ![triangle](tri.png). Find x.",
        'Find the area. <img src="a.gif">',
        "The figure is in diagram_3.PNG; find the angle.",
        "Find x. \\includegraphics{fig}",
    ],
)
def test_invalid_characters_and_images(text):
    assert invalid_characters({"problem": text, "answer": "1"}) is not None


def test_invalid_characters_keeps_tabs_newlines_unicode_and_asymptote():
    row = {"problem": "Let\tx = 3.\nFind x² + π — “nice”. [asy] draw((0,0)--(1,1)); [/asy]", "answer": "9"}
    assert invalid_characters(row) is None
    assert invalid_characters({"problem": "ok", "answer": "bad\x07"}) is not None


@pytest.mark.parametrize(
    "row",
    [
        {"problem": "Which is prime?\n(A) 4 (B) 6 (C) 7 (D) 9", "answer": "7"},
        {"problem": "Which is prime?\nA. 4\nB. 6\nC. 7\nD. 9", "answer": "C"},
        {"problem": "Area is $\\textbf{(A)}\\ 1 \\qquad \\textbf{(B)}\\ 2 \\qquad \\textbf{(C)}\\ 3$", "answer": "2"},
        {"problem": "Pick one: (A) red or (B) blue.", "answer": "(B)"},
        {"problem": "Pick one: (A) red or (B) blue.", "answer": "$\\text{(A)}$"},
    ],
)
def test_multiple_choice(row):
    assert multiple_choice(row) is not None


@pytest.mark.parametrize(
    "row",
    [
        {"problem": "Let $f(A) = 2$ and $f(B) = 3$ and $f(C)=4$. Find $f(A)+f(B)$.", "answer": "5"},
        {"problem": "Points A, B and C form a triangle. Find angle A.", "answer": "60"},
        {"problem": "What is the constant?", "answer": "C"},
        {"problem": "Is point (A) or (B) closer?", "answer": "7"},
    ],
)
def test_multiple_choice_keeps_letters_that_are_not_options(row):
    assert multiple_choice(row) is None


@pytest.mark.parametrize(
    "row",
    [
        {"problem": "Is 7 prime?", "answer": "Yes"},
        {"problem": "Is 8 prime?", "answer": "\\text{no}"},
        {"problem": "Every prime is odd.", "answer": "False."},
        {"problem": "True or false: every prime is odd.", "answer": "x"},
        {"problem": "Is 91 prime? Answer yes or no.", "answer": "x"},
    ],
)
def test_true_false_yes_no(row):
    assert true_false_yes_no(row) is not None


def test_true_false_keeps_mentions_and_code():
    mention = {"problem": "She got 90% of the true/false questions right. How many points?", "answer": "41"}
    code = {"problem": "Return true or false.", "domain": "code", "tests": "assert f(1)"}
    assert true_false_yes_no(mention) is None
    assert true_false_yes_no(code) is None


@pytest.mark.parametrize(
    "text",
    [
        "Let $f(x)=x^2$. (a) Find $f(2)$. (b) Find $f(3)$.",
        "(i) What is 2+2?\n(ii) What is 3+3?",
        "Answer both.\n1. What is 2+2?\n2. Compute 3+3.",
        "a) Find x.\nb) Find y.",
        "What is 2+2? What is 3+3?",
    ],
)
def test_several_subquestions(text):
    assert several_subquestions({"problem": text, "answer": "1"}) is not None


@pytest.mark.parametrize(
    "text",
    [
        "Find $f(a)+f(b)$ where $f(x)=x^2$, $a=1$, $b=2$.",
        "The function has properties:\n(i) $f(0)=0$.\n(ii) $f(1)=1$.\nFind $f(2)$.",
        "Consider the list:\n1. apples\n2. pears\nHow many fruits are there?",
        'Alice asks "why?" and Bob asks "how?". What is 3+4?',
        "What is $x$ if $x + ? = 3$ and $? = 1$?",
        "How many ways can we pick 2 of 5? That is, what is $\\binom52$?",
    ],
)
def test_several_subquestions_keeps_single_questions(text):
    assert several_subquestions({"problem": text, "answer": "1"}) is None


def test_code_rows_may_have_a_follow_up_question():
    row = {"problem": "Is it sorted? Return it.\nFollow-up: can you do it in O(n)?", "domain": "code", "tests": "x"}
    assert several_subquestions(row) is None


def test_cleansing_reason_names_first_rule():
    assert cleansing_reason({"problem": "", "answer": "1"})[0] == "empty_prompt"
    assert cleansing_reason({"problem": "(A) 1 (B) 2 (C) 3", "answer": ""})[0] == "no_answer"
    assert cleansing_reason({"problem": LONG, "answer": "20000"}) is None


# --- duplicates ----------------------------------------------------------------------


def test_normalize_text_and_ngrams():
    assert normalize_text("  What IS 2+3?\n\tNow!  ") == "what is 2 3 now"
    assert word_ngrams(["a", "b", "c"], 2) == {"a b", "b c"}
    assert word_ngrams(["a"], 5) == {"a"}
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)


def test_exact_duplicates_keep_first():
    result = drop_exact_duplicates(entries("Q one?", "Q two?", "Q one?  ", "Q two?"))
    assert [e.line for e in result.kept] == [1, 2]
    assert [(r.line, r.filter) for r in result.removed] == [(3, "exact_duplicate"), (4, "exact_duplicate")]
    assert "line 1" in result.removed[0].reason


def test_near_duplicate_differing_only_in_case_and_punctuation():
    variant = LONG.upper().replace(",", "").replace(".", " ;").replace("?", "!!")
    result = drop_near_duplicates(entries(LONG, "Something else entirely, about primes below fifty.", variant))
    assert [e.line for e in result.kept] == [1, 2]
    assert result.removed[0].line == 3 and result.removed[0].filter == "near_duplicate"
    assert "1.00 with line 1" in result.removed[0].reason


def test_near_duplicate_threshold_and_answers():
    edited = LONG.replace("covers 600 meters", "covers exactly 600 meters in total")
    sim = jaccard(*(word_ngrams(normalize_text(t).split(), 5) for t in (LONG, edited)))
    assert 0.5 < sim < 0.95
    loose = drop_near_duplicates(entries(LONG, edited), NearDupConfig(threshold=sim - 0.01))
    strict = drop_near_duplicates(entries(LONG, edited), NearDupConfig(threshold=sim + 0.01))
    assert len(loose.kept) == 1 and len(strict.kept) == 2
    # same text, different reference answers: a different problem, kept by default
    rows = [Entry(1, {"problem": LONG, "answer": "20000"}), Entry(2, {"problem": LONG + " ", "answer": "7"})]
    assert len(drop_near_duplicates(rows).kept) == 2
    assert len(drop_near_duplicates(rows, NearDupConfig(same_answer=False)).kept) == 1


# --- decontamination -----------------------------------------------------------------

BENCH = [
    BenchmarkItem("fakebench", "fb-1", LONG),
    BenchmarkItem("fakebench", "fb-2", "Find the sum of all integer bases $b>9$ for which $17_b$ divides $97_b$."),
    BenchmarkItem("fakebench", "fb-3", "What is the remainder when $2^{100}$ is divided by 7?"),  # 10 words < n
]


def test_benchmark_question_with_short_prefix_is_caught():
    index = build_index(BENCH, n=13)
    rows = entries(
        "Solve this: " + LONG,
        "Problem 3. " + BENCH[1].text.lower(),
        "A farmer has a square field. He walks around it once and covers 400 meters. Find its side.",
        "Quick one: what is the remainder when 2^100 is divided by 7? Explain.",
        "What is the remainder when $2^{100}$ is divided by 9?",
    )
    result = drop_contaminated(rows, index)
    assert [e.line for e in result.kept] == [3, 5]
    assert [r.line for r in result.removed] == [1, 2, 4]
    assert [r.reason.split(":")[1] for r in result.removed] == ["fb-1", "fb-2", "fb-3"]
    assert "whole question" in result.removed[2].reason


def test_shared_stock_phrase_is_not_contamination():
    stock = "where m and n are relatively prime positive integers. Find m+n."
    bench = [
        BenchmarkItem("b", str(i), f"Problem number {i} about {w} has answer m/n, {stock}")
        for i, w in enumerate(["circles", "dice", "cards"])
    ]
    bench.append(BenchmarkItem("b", "long", LONG + " The probability is m/n, " + stock))
    row = "A bag holds 3 red and 5 blue marbles; two are drawn. The probability is m/n, " + stock
    index = build_index(bench, n=13, max_docs=2)
    assert drop_contaminated(entries(row), index).removed == []
    assert len(drop_contaminated(entries(LONG), index).removed) == 1


def test_find_data_dir_searches_upward(tmp_path, monkeypatch):
    from ringrl.curate import find_data_dir

    monkeypatch.delenv("RINGRL_DATA_DIR", raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    deep = tmp_path / "checkout" / "sub"
    deep.mkdir(parents=True)
    assert find_data_dir(deep) == (tmp_path / "shared" / "data").resolve()


# --- difficulty ----------------------------------------------------------------------


def test_solve_rate_drops_always_and_never_and_keeps_rate():
    rows = entries("q1", "q2", "q3")
    result = drop_by_solve_rate(rows, lambda rs: [0.0, 0.25, 1.0])
    assert [e.line for e in result.kept] == [2]
    assert result.kept[0].row["solve_rate"] == 0.25
    assert "solve_rate" not in rows[1].row  # input rows are not mutated
    assert [(r.line, r.filter) for r in result.removed] == [(1, "too_hard"), (3, "too_easy")]
    with pytest.raises(ValueError):
        drop_by_solve_rate(rows, lambda rs: [0.5])


def test_curate_entries_order_and_first_usable_occurrence_kept():
    rows = [
        Entry(1, {"problem": LONG, "answer": ""}),  # no answer: dropped by cleansing
        Entry(2, {"problem": LONG, "answer": "20000"}),  # first usable copy: kept
        Entry(3, {"problem": LONG, "answer": "20000"}),
        Entry(4, {"problem": "Is 7 prime?", "answer": "yes"}),
    ]
    result = curate_entries(rows, CurateConfig(), solve_rate_fn=lambda rs: [0.5] * len(rs))
    assert [e.line for e in result.kept] == [2]
    assert result.counts()["no_answer"] == 1 and result.counts()["exact_duplicate"] == 1
    assert result.counts()["true_false_yes_no"] == 1


# --- files and CLI -------------------------------------------------------------------


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_curate_file_reports_unparseable_lines_and_continues(tmp_path):
    src = write_lines(
        tmp_path / "in.jsonl",
        [
            json.dumps({"id": "a", "problem": LONG, "answer": "20000"}),
            "{not json",
            "[1, 2]",
            "",
            json.dumps({"id": "b", "problem": "Compute 17 * 23.", "answer": "391"}),
        ],
    )
    out = tmp_path / "out" / "curated.jsonl"
    result, report = curate_file(src, out, CurateConfig())
    assert [e.line for e in result.kept] == [1, 5]
    assert [(e.line, e.error.split(" ")[0]) for e in result.parse_errors] == [(2, "invalid"), (3, "expected")]
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in written] == ["a", "b"]
    saved = json.loads((out.parent / REPORT_NAME).read_text())
    assert saved == report
    assert saved["unparseable"] == 2 and saved["rows_read"] == 2 and saved["rows_kept"] == 2
    assert saved["decontamination"].startswith("skipped")


def test_cli_end_to_end_with_fake_benchmark_dir(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_lines(data / "fakebench_test.jsonl", [json.dumps({"id": "fb-1", "question": LONG})])
    write_lines(data / "fake_train.jsonl", [json.dumps({"id": "t", "problem": "Compute 17 * 23.", "answer": "1"})])
    src = write_lines(
        tmp_path / "in.jsonl",
        [
            json.dumps({"problem": "Compute 17 * 23.", "answer": "391"}),
            json.dumps({"problem": "compute 17*23!", "answer": "391"}),
            json.dumps({"problem": "Warm-up. " + LONG, "answer": "20000"}),
            json.dumps({"problem": "Which? (A) 1 (B) 2 (C) 3 (D) 4", "answer": "B"}),
            "oops",
        ],
    )
    out = tmp_path / "out.jsonl"
    code = main(["curate", str(src), "--output", str(out), "--data-dir", str(data)])
    captured = capsys.readouterr()
    assert code == 0
    assert f"{src}:5: skipped" in captured.err
    assert "near_duplicate" in captured.out and "contaminated" in captured.out
    report = json.loads((tmp_path / REPORT_NAME).read_text())
    assert report["removed_by_filter"]["near_duplicate"] == 1
    assert report["removed_by_filter"]["contaminated"] == 1
    assert report["removed_by_filter"]["multiple_choice"] == 1
    assert [b["file"] for b in report["benchmarks"]] == [str(data / "fakebench_test.jsonl")]  # *train* skipped
    assert [json.loads(x)["problem"] for x in out.read_text().splitlines()] == ["Compute 17 * 23."]


def test_cli_errors_are_one_line(tmp_path, capsys):
    src = write_lines(tmp_path / "in.jsonl", [json.dumps({"problem": "Compute 1+1.", "answer": "2"})])
    assert (
        main(["curate", str(src), "-o", str(tmp_path / "o.jsonl"), "--data-dir", str(tmp_path), "--benchmarks", "nope"])
        == 2
    )
    assert "benchmark 'nope'" in capsys.readouterr().err
    assert main(["curate", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl"), "--no-decontam"]) == 2
    assert (
        main(["curate", str(src), "-o", str(tmp_path / "o.jsonl"), "--no-decontam", "--near-dup-threshold", "1.5"]) == 2
    )


def test_cli_model_without_engine_is_a_clear_error(tmp_path, capsys):
    src = write_lines(tmp_path / "in.jsonl", [json.dumps({"problem": "Compute 1+1.", "answer": "2"})])
    assert main(["curate", str(src), "-o", str(tmp_path / "o.jsonl"), "--no-decontam", "--model", "m"]) == 2
    assert "--model" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
