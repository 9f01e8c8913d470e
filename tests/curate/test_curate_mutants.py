"""Curation rules on their exact outputs: every rule's reason string, the code-row
and wrapper handling, Unicode non-character bounds, the solve-rate filter's checks,
benchmark item ids, the stable hash and MinHash against brute force, and LSH
selectivity counted in Jaccard calls. Written to kill the mutants benchmarks/mutation.sh
found surviving in ringrl/curate/ (see docs/testing.md)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import ringrl.curate.dedup as dedup
from ringrl.curate.cleansing import (
    empty_prompt,
    invalid_characters,
    multiple_choice,
    no_answer,
    several_subquestions,
    true_false_yes_no,
)
from ringrl.curate.data_dir import find_data_dir
from ringrl.curate.decontam import benchmark_text, load_benchmark_items
from ringrl.curate.dedup import MinHasher, NearDupConfig, drop_near_duplicates
from ringrl.curate.difficulty import drop_by_solve_rate
from ringrl.curate.text import stable_hash64
from ringrl.curate.types import Entry, Removal

P = "What is x?"


# --- cleansing: reasons ---------------------------------------------------------------


def test_empty_prompt_reason() -> None:
    assert empty_prompt({"prompt": "  \n"}) == "no question text (prompt/problem/question)"
    assert empty_prompt({"problem": "x"}) is None


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"prompt": P, "domain": "code"}, "code row without tests"),
        ({"prompt": P, "domain": "code", "answer": "5"}, "code row without tests"),  # code: tests decide
        ({"prompt": P, "domain": "code", "tests": "  "}, "code row without tests"),
        ({"prompt": P, "domain": "code", "tests": []}, "code row without tests"),
        ({"prompt": P, "domain": "code", "tests": ["assert f() == 1"]}, None),
        ({"prompt": P, "domain": "code", "tests": {"input": "1"}}, None),
        ({"prompt": P, "domain": "code", "test_code": "assert f() == 1"}, None),  # the other field name
        ({"prompt": P, "tests": "assert f() == 1"}, None),  # tests and no answer: a code row
        ({"prompt": P, "tests": "assert f() == 1", "answer": None}, None),
        ({"prompt": P, "tests": "", "answer": "5"}, None),  # has an answer: not a code row
        ({"prompt": P}, "missing answer"),
        ({"prompt": P, "answer": None}, "answer of type NoneType"),
        ({"prompt": P, "answer": [1, 2]}, "answer of type list"),
        ({"prompt": P, "answer": "$ $"}, "empty answer"),
        ({"prompt": P, "answer": "\\boxed{$ $}"}, "empty answer"),
        ({"prompt": P, "answer": "\\boxed{\\text{\\textbf{ }}}"}, "empty answer"),  # three wrappers
        ({"prompt": P, "answer": "\\boxed{\\text{\\textbf{\\mathrm{}}}}"}, None),  # a fourth is kept as text
        ({"prompt": P, "answer": "X"}, None),
        ({"prompt": P, "answer": "\\boxed{X}"}, None),
        ({"prompt": P, "answer": 0}, None),
        ({"prompt": P, "answer": False}, None),
    ],
)
def test_no_answer_reasons(row: dict, reason: str | None) -> None:
    assert no_answer(row) == reason


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"prompt": "a\ufffdb", "answer": "1"}, "replacement character U+FFFD in question"),
        ({"prompt": P, "answer": "1\ufffd"}, "replacement character U+FFFD in answer"),
        ({"prompt": "x\t\x07", "answer": "1"}, "invalid character U+0007 in question"),  # after an allowed tab
        ({"prompt": P, "answer": "1\x1b"}, "invalid character U+001B in answer"),
        ({"prompt": "a\ud800", "answer": "1"}, "invalid character U+D800 in question"),  # lone surrogate
        ({"prompt": "a\ufdd0", "answer": "1"}, "invalid character U+FDD0 in question"),  # first non-character
        ({"prompt": "a\ufdef", "answer": "1"}, "invalid character U+FDEF in question"),  # last of the block
        ({"prompt": "a\ufdcf", "answer": "1"}, None),  # just below the block (an assigned letter)
        ({"prompt": "a\ufdf0", "answer": "1"}, None),  # just above
        ({"prompt": "a\ufffe", "answer": "1"}, "invalid character U+FFFE in question"),
        ({"prompt": "a\uffff", "answer": "1"}, "invalid character U+FFFF in question"),
        ({"prompt": "a\U0001fffe", "answer": "1"}, "invalid character U+1FFFE in question"),
        ({"prompt": "a\ufffc", "answer": "1"}, None),  # U+FFFC is a symbol, not a non-character
        ({"prompt": "see figure.png", "answer": "1"}, "image reference 'figure.png' in question"),
        ({"prompt": P, "answer": "![x](y)"}, "image reference '![x](' in answer"),
        (
            {"prompt": "see a/very/long/path/to/the/figure_1.png", "answer": "1"},
            "image reference 'a/very/long/path/to/the/figure' in question",  # the first 30 characters
        ),
        ({"prompt": "a\tb\nc\r", "answer": "1"}, None),
    ],
)
def test_invalid_character_reasons(row: dict, reason: str | None) -> None:
    assert invalid_characters(row) == reason


def test_multiple_choice_and_true_false_reasons() -> None:
    assert multiple_choice({"prompt": "Pick: (A) 1 (B) 2 (C) 3", "answer": "A"}) == "options A, B, C ((A) style)"
    assert (
        multiple_choice({"prompt": "Pick:\nA. 1\nB. 2\nC. 3\nD. 4", "answer": "5"}) == "options A, B, C, D (A. style)"
    )
    assert multiple_choice({"prompt": "Is (A) or (B) right?", "answer": "\\text{B}"}) == "answer is option letter 'B'"
    assert true_false_yes_no({"prompt": "TRUE OR FALSE: 2 is prime.", "answer": "5"}) == "question asks 'true or false'"
    assert true_false_yes_no({"prompt": P, "answer": True}) == "answer is 'true'"
    assert true_false_yes_no({"prompt": P, "answer": "\\text{Yes\n}"}) == "answer is 'yes'"


@pytest.mark.parametrize(
    "prompt, reason",
    [
        ("(a) What is x? (b) What is y?", "2 sub-questions marked a, b"),
        ("(i) What is x? (ii) What is y?", "2 sub-questions marked i, ii"),
        ("(a) x is 5? (b) y is 6?", "2 sub-questions marked a, b"),  # questions by their question mark
        ("Here:\na) Find x.\nb) Find y.", "2 sub-questions marked a, b"),
        ("1. Find x.\n2. Find y.\n3. Find z.", "3 sub-questions marked 1, 2, 3"),
        ("Why is x odd? Why is y even?", "2 question sentences"),
    ],
)
def test_several_subquestions_reasons(prompt: str, reason: str) -> None:
    assert several_subquestions({"prompt": prompt, "answer": "1"}) == reason


# --- difficulty ---------------------------------------------------------------------------


def test_solve_rate_filter_exact_outputs() -> None:
    entries = [Entry(1, {"q": 1}), Entry(2, {"q": 2}), Entry(3, {"q": 3})]
    result = drop_by_solve_rate(entries, lambda rows: [0.0, 1 / 3, 1.0])
    assert result.removed == [
        Removal(1, "too_hard", "never solved (solve rate 0)"),
        Removal(3, "too_easy", "always solved (solve rate 1)"),
    ]
    assert result.kept == [Entry(2, {"q": 2, "solve_rate": 0.333333})]


def test_solve_rate_filter_rejects_bad_rates() -> None:
    e = [Entry(7, {})]
    with pytest.raises(ValueError, match=r"^solve_rate_fn returned 1\.5 for line 7; rates must be in \[0, 1\]$"):
        drop_by_solve_rate(e, lambda rows: [1.5])
    with pytest.raises(ValueError, match=r"returned nan for line 7"):
        drop_by_solve_rate(e, lambda rows: [float("nan")])
    with pytest.raises(ValueError, match=r"^solve_rate_fn returned 2 rates for 1 rows$"):
        drop_by_solve_rate(e, lambda rows: [0.5, 0.5])


def test_solve_rate_fn_is_not_called_without_rows() -> None:
    def never(rows):
        raise AssertionError("called with no rows")

    assert drop_by_solve_rate([], never).kept == []


# --- benchmark items, data dir -------------------------------------------------------------


def test_benchmark_items_keep_file_stem_and_id(tmp_path: Path) -> None:
    f = tmp_path / "aime2024.jsonl"
    f.write_text(json.dumps({"id": 17, "problem": "Find x."}) + "\n" + json.dumps({"question": "Find y."}) + "\n")
    items = load_benchmark_items([f])
    assert [(i.source, i.id, i.text) for i in items] == [
        ("aime2024", "17", "Find x."),
        ("aime2024", "line2", "Find y."),
    ]
    assert benchmark_text({"question": 5, "problem": "Find z."}) == "Find z."
    assert benchmark_text({"question": "  ", "text": "t"}) == "t"


def test_find_data_dir_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert find_data_dir() == (tmp_path / "shared" / "data").resolve()


# --- hashing and MinHash --------------------------------------------------------------------


def test_stable_hash64_is_blake2b_little_endian() -> None:
    import hashlib

    for text in ("abc", "what is 2 3", "é"):
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
        assert stable_hash64(text) == int.from_bytes(digest, "little") < 2**64


def test_minhash_signature_is_the_brute_force_minimum() -> None:
    h = MinHasher(num_perm=7, seed=3)
    assert h._a.dtype == np.uint64 and h._b.dtype == np.uint64
    assert all(1 <= int(a) < dedup._PRIME for a in h._a) and all(0 <= int(b) < dedup._PRIME for b in h._b)
    again = MinHasher(num_perm=7, seed=3)
    assert h._a.tolist() == again._a.tolist() and h._b.tolist() == again._b.tolist()
    assert MinHasher(num_perm=7, seed=4)._a.tolist() != h._a.tolist()
    shingles = {"a b c", "b c d", "x y z"}
    sig = h.signature(shingles)
    assert sig.shape == (7,) and sig.dtype == np.uint64
    p = dedup._PRIME
    want = [min((int(a) * (stable_hash64(s) % p) + int(b)) % p for s in shingles) for a, b in zip(h._a, h._b)]
    assert sig.tolist() == want
    empty = h.signature(set())
    assert empty.shape == (7,) and empty.dtype == np.uint64 and empty.tolist() == [p] * 7


def test_lsh_compares_only_candidate_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """60 unrelated questions and 3 re-typed copies: the exact Jaccard runs on the 3 copies'
    pairs only, not on all ~2000 pairs (MinHash picks the candidates)."""
    calls: list[int] = []
    real = dedup.jaccard

    def counting(a, b):
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(dedup, "jaccard", counting)
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    texts = [" ".join(rng.choice(vocab) for _ in range(30)) for _ in range(60)]
    copies = [texts[i].upper() + " !" for i in (5, 17, 42)]
    result = drop_near_duplicates([Entry(i + 1, {"prompt": t}) for i, t in enumerate(texts + copies)])
    assert [r.line for r in result.removed] == [61, 62, 63]
    assert len(calls) == 3
    calls.clear()
    result = drop_near_duplicates(
        [Entry(i + 1, {"prompt": t}) for i, t in enumerate(texts + copies)], NearDupConfig(seed=1)
    )
    assert [r.line for r in result.removed] == [61, 62, 63] and len(calls) == 3


def test_minhash_is_seeded_from_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reproducible runs: the hash functions come from ``NearDupConfig.seed``, never from fresh entropy."""
    seen: list[tuple[int, object]] = []
    real = dedup.MinHasher

    def spy(num_perm, seed=0):
        seen.append((num_perm, seed))
        return real(num_perm, seed)

    monkeypatch.setattr(dedup, "MinHasher", spy)
    drop_near_duplicates([Entry(1, {"prompt": "a b c d e f"})], NearDupConfig(seed=7, bands=4, rows_per_band=3))
    assert seen == [(12, 7)]


@pytest.mark.parametrize(
    "prompt, reason",
    [
        ("(a) Let x = 1. (b) What is y? (c) What is z?", "2 sub-questions marked b, c"),
        ("Note (c) below.\n1. Find x.\n2. Find y.", "2 sub-questions marked 1, 2"),  # a lone (c) is not a list
        ("1. Find a.\n2. Find b.\n3. Find c.\n4. Find d.\n5. Find e.", "5 sub-questions marked 1, 2, 3, 4"),
        ("Why is x odd? $y$ That is, why?", None),  # a restatement after math is not a second question
    ],
)
def test_several_subquestions_parts_and_restatements(prompt: str, reason: str | None) -> None:
    assert several_subquestions({"prompt": prompt, "answer": "1"}) == reason


# --- decontamination: defaults, files --------------------------------------------------------


def test_build_index_defaults_and_empty_questions() -> None:
    from ringrl.curate.decontam import BenchmarkItem, build_index

    q13 = " ".join(f"q{i}" for i in range(13))  # 13 words: one 13-gram at the default n
    index = build_index([BenchmarkItem("b", "empty", " ?! "), BenchmarkItem("b", "q", q13)])
    assert index.match(f"solve {q13} now") == (BenchmarkItem("b", "q", q13), "1 shared 13-grams (100%)")
    stock = " ".join(f"s{i}" for i in range(13))
    for copies, boilerplate in ((10, False), (11, True)):  # the default max_docs is 10
        items = [BenchmarkItem("b", str(i), f"{stock} tail{i}") for i in range(copies)]
        assert (stock in build_index(items).boilerplate) == boilerplate


@pytest.mark.parametrize("name", ["math-500", "MATH-500", "Math-500"])
def test_benchmark_files_takes_the_eval_aliases_in_any_case(tmp_path: Path, name: str) -> None:
    """``ringrl eval``'s aliases (``math-500`` for ``math500``, ``aime24`` for ``aime2024``) name the
    same files, in any letter case, as the benchmark names do."""
    from ringrl.curate.decontam import benchmark_files

    for file in ("math500_test.jsonl", "aime2024.jsonl", "mbpp_sanitized.jsonl"):
        (tmp_path / file).write_text("{}\n")
    assert benchmark_files(tmp_path, [name, "AIME24", "mbpp-sanitized"]) == [
        tmp_path / "math500_test.jsonl",
        tmp_path / "aime2024.jsonl",
        tmp_path / "mbpp_sanitized.jsonl",
    ]


def test_benchmark_files_every_way_to_name_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ringrl.curate.decontam import benchmark_files
    from ringrl.errors import UserError

    data = tmp_path / "data"
    data.mkdir()
    for name in ("aime.jsonl", "gsm8k_test.jsonl", "math_train.jsonl"):
        (data / name).write_text("{}\n")
    elsewhere = tmp_path / "mine.jsonl"
    elsewhere.write_text("{}\n")
    monkeypatch.chdir(tmp_path)  # "aime.jsonl" is not a file here: it names a file in the data directory
    assert benchmark_files(data, None) == [data / "aime.jsonl", data / "gsm8k_test.jsonl"]  # no *train*
    assert benchmark_files(None, None) == [] and benchmark_files(None, []) == []
    assert benchmark_files(data, [str(elsewhere), "aime", "gsm8k_test.jsonl"]) == [
        elsewhere,
        data / "aime.jsonl",
        data / "gsm8k_test.jsonl",
    ]
    assert benchmark_files(data, ["aime.jsonl"]) == [data / "aime.jsonl"]
    with pytest.raises(UserError) as e:
        benchmark_files(data, ["nope"])
    assert str(e.value) == f"benchmark 'nope': no file {data / 'nope.jsonl'} (known: aime, gsm8k_test, math_train)"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as e:
        benchmark_files(empty, ["x"])
    assert str(e.value).endswith("(known: none)")
    with pytest.raises(UserError) as e:
        benchmark_files(None, ["aime"])
    assert str(e.value) == "benchmark 'aime': not a file and no data directory found (pass --data-dir)"
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(UserError, match="no file"):
        benchmark_files(data, [str(notes)])  # an existing file that is not JSONL is not a benchmark


# --- the run: config, parsing, report ---------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"near_dup": NearDupConfig(threshold=0.0)}, "near-duplicate threshold must be in (0, 1], got 0.0"),
        ({"near_dup": NearDupConfig(threshold=1.01)}, "near-duplicate threshold must be in (0, 1], got 1.01"),
        ({"near_dup": NearDupConfig(ngram=0)}, "shingle size must be at least 1, got 0"),
        ({"decontam_min_overlap": 0.0}, "decontamination overlap must be in (0, 1], got 0.0"),
        ({"decontam_min_overlap": 1.5}, "decontamination overlap must be in (0, 1], got 1.5"),
        ({"decontam_ngram": 0}, "decontamination n-gram must be at least 1, got 0"),
    ],
)
def test_curate_config_rejects_out_of_range(kwargs: dict, message: str) -> None:
    from ringrl.curate.core import CurateConfig
    from ringrl.errors import UserError

    with pytest.raises(UserError) as e:
        CurateConfig(**kwargs)
    assert str(e.value) == message


def test_curate_config_accepts_the_bounds() -> None:
    from ringrl.curate.core import CurateConfig

    CurateConfig(near_dup=NearDupConfig(threshold=1.0, ngram=1), decontam_min_overlap=1.0, decontam_ngram=1)


def test_counts_list_every_filter_and_unknown_ones() -> None:
    from ringrl.curate.core import FILTERS, CurationResult

    result = CurationResult([], [Removal(1, "no_answer", ""), Removal(2, "no_answer", ""), Removal(3, "custom", "")])
    counts = result.counts()
    assert counts == {**dict.fromkeys(FILTERS, 0), "no_answer": 2, "custom": 1}


def test_read_entries_records_every_bad_line_and_goes_on(tmp_path: Path) -> None:
    from ringrl.curate.core import ParseError, read_entries
    from ringrl.errors import UserError

    f = tmp_path / "in.jsonl"
    f.write_bytes(b'{"a": 1}\n\xff\xfe\n[1, 2]\n\n{"a": \n{"b": 2}\n')
    entries, errors = read_entries(f)
    assert entries == [Entry(1, {"a": 1}), Entry(6, {"b": 2})]
    assert errors == [
        ParseError(2, "not UTF-8 (invalid start byte at byte 0)"),
        ParseError(3, "expected a JSON object, got list"),
        ParseError(5, "invalid JSON (Expecting value at column 1)"),  # the line break ends it,
    ]
    with pytest.raises(UserError) as e:
        read_entries(tmp_path / "missing.jsonl")
    assert str(e.value) == f"{tmp_path / 'missing.jsonl'}: file not found"


def test_curate_file_report_and_settings(tmp_path: Path) -> None:
    from ringrl.curate.core import CurateConfig, curate_file
    from ringrl.errors import UserError

    bench = tmp_path / "bench.jsonl"
    q = " ".join(f"b{i}" for i in range(20))
    bench.write_text(json.dumps({"id": "1", "problem": q}) + "\n")
    half = " ".join(q.split()[:14]) + " " + " ".join(f"z{i}" for i in range(20))  # 2 of 8 13-grams: 25%
    src = tmp_path / "in.jsonl"
    rows = [
        {"prompt": "What is 1+1?", "answer": "2"},
        {"prompt": half, "answer": "3"},
        {"prompt": "Find y.", "answer": "4"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    config = CurateConfig(decontam_min_overlap=0.25, boilerplate_max_docs=7)
    result, report = curate_file(
        src, out, config, [bench], solve_rate_fn=lambda rs: [0.5, 1.0][: len(rs)], extra_settings={"model": "m"}
    )
    assert report["input"] == str(src) and report["output"] == str(out)
    assert report["settings"] == {
        "near_dup_threshold": 0.8,
        "shingle_words": 5,
        "minhash_bands": 20,
        "minhash_rows_per_band": 6,
        "decontam_ngram": 13,
        "decontam_min_overlap": 0.25,
        "boilerplate_max_docs": 7,
        "near_dup_same_answer": True,
        "model": "m",
    }
    assert report["benchmarks"] == [{"file": str(bench), "questions": 1}]
    assert report["decontamination"] == "done"
    assert report["removed"] == [
        {"line": 2, "filter": "contaminated", "reason": "overlaps bench:1: 2 shared 13-grams (25%)"},
        {"line": 3, "filter": "too_easy", "reason": "always solved (solve rate 1)"},
    ]
    assert report["parse_errors"] == [] and report["rows_read"] == 3 and report["rows_kept"] == 1
    assert json.loads((tmp_path / "curation_report.json").read_text()) == report
    assert [json.loads(line) for line in out.read_text().splitlines()] == [{**rows[0], "solve_rate": 0.5}]
    with pytest.raises(UserError) as e:
        curate_file(src, src)
    assert str(e.value) == f"{src}: output must differ from the input"


def test_benchmark_file_named_by_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ringrl.curate.decontam import benchmark_files

    (tmp_path / "data").mkdir()
    (tmp_path / "mine.jsonl").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    assert benchmark_files(tmp_path / "data", ["mine.jsonl"]) == [Path("mine.jsonl")]  # not looked up in data/


def test_curate_entries_uses_the_configured_near_duplicate_settings() -> None:
    from ringrl.curate.core import CurateConfig, curate_entries

    a = " ".join(f"w{i}" for i in range(8))
    b = " ".join(f"w{i}" for i in range(7))  # Jaccard 3/4 with a: kept at the default 0.8
    entries = [Entry(1, {"prompt": a, "answer": "1"}), Entry(2, {"prompt": b, "answer": "1"})]
    assert [e.line for e in curate_entries(entries).kept] == [1, 2]
    loose = CurateConfig(near_dup=NearDupConfig(threshold=0.75))
    assert [e.line for e in curate_entries(entries, loose).kept] == [1]


def test_question_sentences_end_only_before_space_a_bracket_or_the_end() -> None:
    """A question mark ends a question only before white space, ``)``, ``]`` or the end of the
    text (the regex ``[^.?!]*\\?(?=\\s|$|[)\\]])`` is the oracle, on an alphabet with letters
    and other brackets after the question mark)."""
    import random
    import re

    from ringrl.curate.cleansing import question_sentences

    regex = re.compile(r"[^.?!]*\?(?=\s|$|[)\]])")
    rng = random.Random(1)
    alphabet = "aXx ?.!)](}>[\n\t\u00a0\u2003"  # Unicode spaces: str.isspace stands for the regex's \s
    for _ in range(5_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        assert question_sentences(text) == regex.findall(text), repr(text)
    assert question_sentences("Is it?X or Y? (Why?) [How?]") == ["X or Y?", " (Why?", ") [How?"]
    assert question_sentences("Is it?X") == [] and question_sentences("Is it?}") == []


def test_a_skipped_oversize_row_is_never_held_whole(tmp_path: Path) -> None:
    """Skipping a 32 MB row over the limit reads it a chunk at a time: the peak memory traced
    while reading the file stays under a quarter of the row (reading it whole takes about twice it)."""
    import json
    import tracemalloc

    from ringrl.curate.core import read_entries

    p = tmp_path / "in.jsonl"
    row = json.dumps({"prompt": "What is two plus two?", "answer": "4"})
    p.write_text(row + "\n" + json.dumps({"prompt": "x" * 32_000_000}) + "\n" + row + "\n")
    tracemalloc.start()
    try:
        entries, errors = read_entries(p, limit=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [e.line for e in entries] == [1, 3]
    assert [(e.line, e.error) for e in errors] == [(2, "row longer than 1,000 bytes (raise RINGRL_MAX_ROW_BYTES)")]
    assert peak < 8_000_000, peak


def test_a_file_without_one_json_object_names_what_curate_reads(tmp_path: Path) -> None:
    from ringrl.curate.core import read_entries
    from ringrl.errors import UserError

    p = tmp_path / "latin1.jsonl"
    p.write_bytes('{"prompt": "caf\u00e9"}\n[1, 2]\n'.encode("latin-1"))
    with pytest.raises(UserError) as e:
        read_entries(p)
    assert str(e.value) == (
        f"{p}: no line is a JSON object (2 bad, line 1: not UTF-8 (invalid continuation byte at byte 15)); "
        "curate reads JSONL, Parquet (.parquet) or a datasets folder"
    )
