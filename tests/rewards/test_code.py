"""Code verifier: correct, wrong, partial, syntax error, missing code, HumanEval-style rows."""

import shutil

import pytest

from ringrl.rewards import RewardPool

from .nsprobe import namespaces_unsupported


@pytest.fixture(scope="module")
def pool():
    # honest programs only: where namespaces are unsupported they may run with rlimits only
    with RewardPool(workers=2, code_timeout=3.0, unsafe_no_sandbox=namespaces_unsupported() is not None) as p:
        yield p


def py(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```\n"


SQUARE = {
    "domain": "code",
    "tests": [
        {"input": "3\n", "output": "9\n"},
        {"input": "4", "output": "16"},
        {"input": "-5", "output": "  25  \n\n"},
    ],
}
ADD_TESTS = {"domain": "code", "test_code": "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"}
HUMANEVAL = {
    "domain": "code",
    "prompt": 'def inc(x: int) -> int:\n    """Add one."""\n',
    "entry_point": "inc",
    "tests": "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-3) == -2\n",
}


def statuses(pool, rows, responses):
    return [(v.reward, v.status) for v in pool.score(rows, responses)]


def test_stdio_correct_wrong_partial(pool):
    got = statuses(
        pool,
        [SQUARE] * 4,
        [
            py("print(int(input()) ** 2)"),
            py("print(int(input()) * 2)"),  # wrong on every case but... 2*2? no case has x=2
            py("x = int(input())\nprint(x * x if x > 0 else 0)"),  # partial: passes 2 of 3
            py("import sys\nx = int(sys.stdin.read())\nprint(x*x)\nsys.exit(0)"),  # exit 0 after answering is fine
        ],
    )
    assert got == [(1.0, "correct"), (0.0, "wrong"), (0.0, "wrong"), (1.0, "correct")]


def test_unit_mode_correct_wrong_partial(pool):
    got = statuses(
        pool,
        [ADD_TESTS] * 3,
        [
            py("def add(a, b):\n    return a + b"),
            py("def add(a, b):\n    return a - b"),
            py("def add(a, b):\n    return abs(a + b) if a > 0 else 1"),  # passes the first assert only
        ],
    )
    assert got == [(1.0, "correct"), (0.0, "wrong"), (0.0, "wrong")]


def test_humaneval_style(pool):
    got = statuses(
        pool,
        [HUMANEVAL] * 4,
        [
            "    return x + 1\n",  # continuation of the prompt, no fence
            py("def inc(x):\n    return x + 1"),
            py("    return x + 2"),  # a body only: prompt + block
            py("def other(x):\n    return x + 1"),
        ],
    )
    assert got[:2] == [(1.0, "correct"), (1.0, "correct")]
    assert got[2] == (0.0, "wrong")
    assert got[3][0] == 0.0


def test_syntax_error_missing_code_language_runtime_error(pool):
    got = pool.score(
        [SQUARE, ADD_TESTS, SQUARE, SQUARE, ADD_TESTS, ADD_TESTS],
        [
            py("print(int(input()) ** 2"),
            py("def add(a, b)\n    return a + b"),
            "I would print the square.",
            "```java\nclass A {}\n```",
            py("def add(a, b):\n    return a + c"),
            py(""),
        ],
    )
    assert [v.status for v in got] == [
        "compile_error",
        "compile_error",
        "no_answer",
        "unsupported_language",
        "runtime_error",
        "no_answer",
    ]
    assert all(v.reward == 0.0 for v in got)
    assert "NameError" in got[4].detail


def test_bad_code_rows(pool):
    got = pool.score(
        [{"domain": "code"}, {"domain": "code", "tests": [{"input": "1"}]}, {"domain": "code", "tests": []}],
        [py("print(1)")] * 3,
    )
    assert [v.status for v in got] == ["error"] * 3
    assert "'tests'" in got[0].detail and "item 0" in got[1].detail


def test_common_library_use_still_works_under_the_audit_hook(pool):
    code = (
        "from collections import namedtuple, Counter\nimport typing, enum, dataclasses, re, math, heapq, functools, itertools\n"
        "P = namedtuple('P', 'a b')\nT = typing.TypeVar('T')\nclass C(enum.Enum):\n    A = 1\n"
        "@dataclasses.dataclass\nclass D:\n    x: int\n@functools.lru_cache(None)\ndef sq(x):\n    return x * x\n"
        "def add(a, b):\n    try:\n        return sum(Counter([a, b]).elements()) if a != b else 2 * a\n    except Exception as e:\n        raise\n"
    )
    assert pool.score([ADD_TESTS], [py(code)])[0].status == "correct"


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_cpp_stdio(pool):
    ok = "```cpp\n#include <iostream>\nint main() { long long x; std::cin >> x; std::cout << x * x << '\\n'; }\n```"
    wrong = '```c++\n#include <cstdio>\nint main() { puts("9"); }\n```'
    broken = "```cpp\nint main( { return 0; }\n```"
    mem = "```cpp\n#include <vector>\nint main() { std::vector<long> v; while (true) v.push_back(1); }\n```"
    got = pool.score([SQUARE] * 4 + [ADD_TESTS], [ok, wrong, broken, mem, ok])
    assert [v.status for v in got] == ["correct", "wrong", "compile_error", "memory_limit", "unsupported_language"]


def test_candidates_returning_library_objects_pass_the_guard(pool):
    row = {
        "domain": "code",
        "prompt": "def f(s):\n",
        "entry_point": "f",
        "tests": "from collections import Counter, namedtuple\nfrom fractions import Fraction\n"
        "def check(candidate):\n    assert candidate('aab') == Counter({'a': 2, 'b': 1})\n"
        "    assert candidate('') == Counter()\n",
    }
    code = "from collections import Counter\nclass Mine(Counter):\n    pass\ndef f(s):\n    return Mine(s)\n"
    assert pool.score([row], [py(code)])[0].status == "correct"
    nt = {"domain": "code", "test_code": "assert g(1) == (1, 2)\nassert g(1).b == 2\nassert g(2) != (1, 2)\n"}
    code = "from collections import namedtuple\nP = namedtuple('P', 'a b')\ndef g(x):\n    return P(x, x + 1)\n"
    assert pool.score([nt], [py(code)])[0].status == "correct"


def test_candidate_returning_a_fraction_is_not_mistaken_for_a_hack(pool):
    row = {"domain": "code", "test_code": "from fractions import Fraction\nassert h(1, 3) == Fraction(1, 3)\n"}
    code = "from fractions import Fraction\ndef h(a, b):\n    return Fraction(a, b)\n"
    assert pool.score([row], [py(code)])[0].status == "correct"
