"""Benchmark registry: field mapping, data-directory lookup, user files, bad names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import FIXTURES, real_data_dir

from ringrl.data.prompts import MATH_SUFFIX, user_message
from ringrl.errors import DataError, UserError
from ringrl.eval import benchmarks as bm
from ringrl.eval.benchmarks import BENCHMARKS, load_benchmark, parse_benchmark_list, resolve_data_dir

# One hand-written row per file, with the fields SOURCES.md documents (not copies of the data).
FAKE_ROWS = {
    "gsm8k_test.jsonl": {
        "id": "gsm8k-test-0000",
        "question": "Tom has 2 apples and buys 3. How many?",
        "answer": "5",
        "solution": "2+3=5\n#### 5",
    },
    "math500_test.jsonl": {
        "id": "test/algebra/1.json",
        "problem": "Solve $x+1=3$.",
        "answer": "2",
        "solution": "x=2",
        "subject": "Algebra",
        "level": 1,
    },
    "aime2024.jsonl": {
        "id": "aime2024-I-01",
        "problem": "Find 1+1.",
        "answer": "2",
        "year": 2024,
        "contest": "AIME I",
        "problem_number": 1,
        "solution": "",
        "url": "",
    },
    "aime2025.jsonl": {
        "id": "aime2025-I-01",
        "problem": "Find 2+2.",
        "answer": "4",
        "year": 2025,
        "contest": "AIME I",
        "problem_number": 1,
    },
    "humaneval.jsonl": {
        "id": "HumanEval/0",
        "prompt": 'def add(a, b):\n    """Add."""\n',
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
        "entry_point": "add",
    },
    "mbpp_sanitized.jsonl": {
        "id": "mbpp-11",
        "task_id": 11,
        "split": "test",
        "prompt": "Write a function to add two numbers.",
        "code": "def add(a, b):\n  return a + b",
        "test_imports": ["import math"],
        "test_setup_code": "",
        "test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"],
        "challenge_test_list": [],
    },
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    for name, row in FAKE_ROWS.items():
        (tmp_path / name).write_text(json.dumps(row) + "\n")
    return tmp_path


def test_every_benchmark_maps_to_valid_rows(data_dir: Path) -> None:
    for name in BENCHMARKS:
        b = load_benchmark(name, data_dir)
        assert len(b.rows) == 1 and b.source == str(data_dir / BENCHMARKS[name].file)
    gsm = load_benchmark("gsm8k", data_dir).rows[0]
    assert gsm == {
        "id": "gsm8k-test-0000",
        "prompt": FAKE_ROWS["gsm8k_test.jsonl"]["question"],
        "domain": "math",
        "answer": "5",
    }
    assert user_message(gsm).endswith(MATH_SUFFIX)
    he = load_benchmark("humaneval", data_dir).rows[0]
    assert (he["domain"], he["entry_point"], he["tests"]) == ("code", "add", FAKE_ROWS["humaneval.jsonl"]["test"])
    assert he["prompt"] == FAKE_ROWS["humaneval.jsonl"]["prompt"]  # the verifier prepends it to a bare completion
    mbpp = load_benchmark("mbpp", data_dir).rows[0]
    assert mbpp["tests"] == "import math\nassert add(1, 2) == 3\nassert add(2, 2) == 4\n"
    assert "entry_point" not in mbpp  # plain asserts, no check(candidate)
    message = user_message(mbpp)
    assert "assert add(1, 2) == 3" in message and "```python" in message  # the function name is shown


def test_aliases_and_limit(data_dir: Path) -> None:
    (data_dir / "aime2024.jsonl").write_text(
        "".join(json.dumps({**FAKE_ROWS["aime2024.jsonl"], "id": f"a{i}"}) + "\n" for i in range(5))
    )
    assert load_benchmark("AIME24", data_dir, limit=2).ids() == ["a0", "a1"]


def test_unknown_benchmark_lists_known_ones() -> None:
    with pytest.raises(
        UserError, match="unknown benchmark 'gsm9k'; known: gsm8k, math500, aime2024, aime2025, humaneval, mbpp"
    ):
        load_benchmark("gsm9k")


def test_missing_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=f"{tmp_path}/math500_test.jsonl not found.*--data-dir"):
        load_benchmark("math500", tmp_path)


def test_no_data_dir_names_the_places_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(bm.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(bm, "data_dir_candidates", lambda cwd=None: [tmp_path / "x" / "shared" / "data"])
    with pytest.raises(UserError, match=f"no data directory.*{tmp_path}/x/shared/data.*pass --data-dir"):
        load_benchmark("gsm8k")


def test_lookup_finds_shared_data_beside_the_checkout(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(bm.DATA_DIR_ENV, raising=False)
    checkout = tmp_path / "work" / "repo" / "sub"
    checkout.mkdir(parents=True)
    shared = tmp_path / "work" / "shared" / "data"
    shared.mkdir(parents=True)
    assert shared in bm.data_dir_candidates(checkout)
    assert resolve_data_dir(cwd=checkout) == (shared, "found beside the project")
    monkeypatch.setenv(bm.DATA_DIR_ENV, str(data_dir))
    assert resolve_data_dir(cwd=checkout)[0] == data_dir
    assert resolve_data_dir("given", cwd=checkout) == (Path("given"), "--data-dir")


def test_user_file(tmp_path: Path) -> None:
    b = load_benchmark(f"toy={FIXTURES / 'toy_math.jsonl'}")
    assert b.name == "toy" and b.ids() == ["toy-1", "toy-2", "toy-3", "toy-4"]
    no_ids = tmp_path / "mine.jsonl"
    no_ids.write_text('{"prompt": "1+1?", "domain": "math", "answer": "2"}\n' * 2)
    assert load_benchmark(str(no_ids)).ids() == ["mine-0", "mine-1"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "1+1?", "domain": "math"}\n')
    with pytest.raises(DataError, match="bad.jsonl:1: field 'answer'"):
        load_benchmark(f"bad={bad}")
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": 1, "prompt": "q", "domain": "math", "answer": "2"}\n' * 2)
    with pytest.raises(DataError, match="duplicate id '1'"):
        load_benchmark(f"dup={dup}")


def test_parse_benchmark_list() -> None:
    assert parse_benchmark_list(["gsm8k,math500", "my=a.jsonl", "gsm8k"]) == ["gsm8k", "math500", "my=a.jsonl"]
    with pytest.raises(UserError, match="no benchmarks"):
        parse_benchmark_list([" , "])


def test_synthetic_split() -> None:
    from ringrl import tasks

    b = load_benchmark("synthetic-math", limit=5)
    assert len(b.rows) == 5 and len(set(b.ids())) == 5
    assert load_benchmark("synthetic-math", limit=5).rows == b.rows  # a fixed test split
    with pytest.raises(UserError, match="synthetic-nosuchdomain"):
        load_benchmark("synthetic-nosuchdomain", limit=2)
    one = load_benchmark("synthetic-math-l1")  # level 1 only; its space is small, so fewer than 200
    assert 0 < len(one.rows) < 200 and {r["level"] for r in one.rows} == {1}
    assert all(tasks.split_of(r["prompt"]) == "test" for r in one.rows)
    with pytest.raises(UserError, match="no level 9"):
        load_benchmark("synthetic-math-l9")


def test_real_files_load_with_documented_counts() -> None:
    real_data_dir()  # the data the CLI would find, or a skip saying where it looked
    counts = {"gsm8k": 1319, "math500": 500, "aime2024": 30, "aime2025": 30, "humaneval": 164, "mbpp": 427}
    for name, n in counts.items():
        assert len(load_benchmark(name).rows) == n, name
