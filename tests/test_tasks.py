"""Embedded tasks: teacher answers checked by independent computation; splits disjoint; seeded."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ringrl.data.rows import check_row
from ringrl.errors import UserError
from ringrl.tasks import make_split, split_of


def boxed(text: str) -> str:
    m = re.findall(r"\\boxed\{([^{}]*)\}", text)
    assert m, text[-200:]
    return m[-1]


def test_arithmetic_answers_equal_python_eval():
    rows = make_split("math", "train", 60, seed=3)
    for r in rows:
        m = re.fullmatch(r"What is ([0-9+\- ]+)\?", r["prompt"])
        assert m, r["prompt"]
        expr = m.group(1)
        assert re.fullmatch(r"\d+( [+-] \d+)+", expr)
        value = eval(expr)
        assert r["answer"] == str(value) == boxed(r["response"])
        # every intermediate result stays non-negative and the trace states each one
        acc = int(expr.split()[0])
        for op, b in zip(expr.split()[1::2], expr.split()[2::2]):
            acc = acc + int(b) if op == "+" else acc - int(b)
            assert acc >= 0
            assert f"= {acc}." in r["response"]
        assert r["domain"] == "math" and check_row(r, "sft") is None and check_row(r, "rl") is None


def test_arithmetic_levels_follow_their_spec_and_grow():
    from ringrl.tasks.arithmetic import _SPEC

    rows = make_split("arithmetic", "train", 30, seed=0)
    ops = {lvl: {len(re.findall(r" [+-] ", r["prompt"])) for r in rows if r["level"] == lvl} for lvl in (1, 2, 3)}
    assert ops == {lvl: {_SPEC[lvl][0]} for lvl in (1, 2, 3)}
    for r in rows:  # the operands after the first have the level's width
        _, lo, hi = _SPEC[r["level"]]
        assert all(lo <= len(b) <= hi for b in re.findall(r"[+-] (\d+)", r["prompt"]))
    mean_len = {lvl: sum(len(r["response"]) for r in rows if r["level"] == lvl) / 10 for lvl in (1, 2, 3)}
    assert mean_len[1] < mean_len[2] < mean_len[3]


def test_sorting_answers_are_sorted_inputs():
    rows = make_split("logic", "train", 45, seed=1)
    for r in rows:
        m = re.fullmatch(r"Sort these numbers from smallest to largest: ([0-9, ]+)\.", r["prompt"])
        assert m, r["prompt"]
        nums = [int(x) for x in m.group(1).split(", ")]
        assert len(nums) == {1: 3, 2: 3, 3: 4, 4: 5}[r["level"]]
        expected = ", ".join(map(str, sorted(nums)))
        assert r["answer"] == expected == boxed(r["response"])
        assert r["domain"] == "logic" and check_row(r, "rl") is None


def test_code_programs_print_the_expected_output():
    rows = make_split("code", "train", 8, seed=2)
    for r in rows:
        code = re.findall(r"```python\n(.*?)\n```", r["response"], re.S)
        assert len(code) == 1
        out = subprocess.run([sys.executable, "-c", code[0]], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == r["tests"][0]["output"] == r["answer"]
        assert r["tests"][0]["input"] == "" and check_row(r, "rl") is None


def test_code_answers_by_independent_computation():
    for r in make_split("code", "test", 40, seed=0):
        p, want = r["prompt"], int(r["answer"])
        if m := re.search(r"sum of the digits of (\d+)", p):
            assert want == sum(int(d) for d in m.group(1))
        elif m := re.search(r"digits of (\d+) in reverse", p):
            assert want == int(m.group(1)[::-1])
        elif m := re.search(r"sum of all integers from (\d+) to (\d+)", p):
            a, b = int(m.group(1)), int(m.group(2))
            assert want == (a + b) * (b - a + 1) // 2
        elif m := re.search(r"from 1 to (\d+) are divisible by (\d+)", p):
            assert want == len([i for i in range(1, int(m.group(1)) + 1) if i % int(m.group(2)) == 0])
        else:
            pytest.fail(f"unexpected code prompt: {p}")


@pytest.mark.parametrize("domain", ["math", "logic", "code"])
def test_splits_disjoint_and_deterministic(domain):
    train = make_split(domain, "train", 300, seed=0)
    test = make_split(domain, "test", 40, seed=0)
    train_p, test_p = {r["prompt"] for r in train}, {r["prompt"] for r in test}
    assert len(train_p) == 300 and len(test_p) == 40  # distinct within a split
    assert not train_p & test_p
    # disjoint for any seed: the split is a function of the problem text
    other_test = make_split(domain, "test", 40, seed=7)
    assert not train_p & {r["prompt"] for r in other_test}
    assert all(split_of(p) == "train" for p in train_p) and all(split_of(p) == "test" for p in test_p)
    # deterministic by seed, different across seeds
    assert make_split(domain, "train", 300, seed=0) == train
    assert [r["prompt"] for r in make_split(domain, "train", 50, seed=1)] != [r["prompt"] for r in train[:50]]
    assert len({r["id"] for r in train}) == 300


def test_bad_split_and_domain_are_user_errors():
    with pytest.raises(UserError, match="split"):
        make_split("math", "valid", 3)
    with pytest.raises(UserError, match="unknown task or domain 'chess'"):
        make_split("chess", "train", 3)


def test_embedded_rows_per_task_levels():
    from ringrl.tasks import embedded_rows

    rows = embedded_rows(["math", "logic", "code"], "train", 300, levels={"math": [1, 2], "logic": [1]})
    levels = {d: {r["level"] for r in rows if r["domain"] == d} for d in ("math", "logic", "code")}
    assert levels == {"math": {1, 2}, "logic": {1}, "code": {1, 2, 3}}  # code is left out: every level
    assert {r["level"] for r in embedded_rows(["math", "logic"], "train", 40, levels=[2])} == {2}
    with pytest.raises(UserError, match="'science' is not one of the tasks"):
        embedded_rows(["math"], "train", 10, levels={"science": [1]})
    with pytest.raises(UserError, match="no level 7"):
        make_split("logic", "train", 5, levels=(7,))


def test_embedded_rows_weights_share_the_size():
    from ringrl.tasks import embedded_rows

    rows = embedded_rows(["math", "logic", "code"], "train", 600, levels=[2], weights={"math": 4})
    counts = {d: sum(r["domain"] == d for r in rows) for d in ("math", "logic", "code")}
    assert counts == {"math": 400, "logic": 100, "code": 100}  # 4 : 1 : 1 of 600
    assert len(embedded_rows(["math", "logic"], "train", 50, weights={"logic": 0})) == 50
    assert {r["domain"] for r in embedded_rows(["math", "logic"], "train", 50, weights={"logic": 0})} == {"math"}
    with pytest.raises(UserError, match="weights: 'code' is not one of the tasks"):
        embedded_rows(["math"], "train", 10, weights={"code": 1})
    with pytest.raises(UserError, match="weights"):
        embedded_rows(["math"], "train", 10, weights={"math": 0})
