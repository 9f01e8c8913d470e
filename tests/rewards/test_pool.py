import functools

import pytest

from ringrl.rewards import RewardPool, Verdict, register_verifier, score_batch, verifier_names

from .helpers import keyword, not_a_verdict, raising, sleepy


@pytest.fixture(scope="module")
def pool():
    with RewardPool(workers=2, timeout=1.5, code_timeout=2.0) as p:
        yield p


def test_order_mixed_domains_and_reuse(pool):
    rows = [
        {"domain": "math", "answer": "1/2"},
        {"domain": "math", "answer": "3"},
        {"domain": "science", "answer": "C"},
        {"domain": "logic", "checker": "countdown", "numbers": [1, 2, 3, 4], "target": 24},
        {"domain": "math", "answer": "10"},
    ]
    responses = ["\\boxed{0.5}", "\\boxed{4}", "\\boxed{C}", "\\boxed{1*2*3*4}", "no box"]
    want = ["correct", "wrong", "correct", "correct", "no_answer"]
    for _ in range(2):  # the second call reuses the same worker processes
        got = pool.score(rows * 5, responses * 5)
        assert [v.status for v in got] == want * 5
        assert [v.reward for v in got] == [1.0 if s == "correct" else 0.0 for s in want * 5]
    graders = {g.proc.pid for g in pool._graders}
    pool.score(rows, responses)
    assert {g.proc.pid for g in pool._graders} == graders


def test_bad_rows_and_broken_responses_never_raise(pool):
    rows = [
        {"domain": "bogus"},
        {"domain": "math"},
        {"answer": "1"},
        "not a row",
        {"domain": "math", "answer": "1"},
        {"domain": "math", "answer": "1"},
    ]
    responses = ["x", "\\boxed{1}", "\\boxed{1}", "x", None, "\\boxed{\\frac{"]
    got = pool.score(rows, responses)  # type: ignore[arg-type]
    assert [v.status for v in got] == ["error", "error", "error", "error", "no_answer", "no_answer"]
    assert "'domain'" in got[0].detail and "'answer'" in got[1].detail


def test_megabyte_response_is_decided_from_its_last_box_in_the_parent(pool):
    big = "think " * 200_000 + "\\boxed{7}" + " and more words" * 50_000
    graded = pool.stats.graded
    v = pool.score([{"domain": "math", "answer": "7"}, {"domain": "math", "answer": "8"}], [big, big])
    assert [x.status for x in v] == ["correct", "wrong"]
    assert pool.stats.graded == graded  # the fast path decided both: no grader round trip


def test_registry_custom_domains_and_time_limit(pool):
    register_verifier("kw", keyword, ("keyword",))
    register_verifier("slow", sleepy, ())
    register_verifier("raises", raising, ())
    register_verifier("bad-return", not_a_verdict, ())
    assert {"kw", "slow", "math", "code"} <= set(verifier_names())
    with pytest.raises(TypeError):
        register_verifier("lambda", lambda r, s: Verdict.of("correct"), ())
    starts = pool._starts
    got = pool.score(
        [
            {"domain": "kw", "keyword": "yes"},
            {"domain": "slow", "sleep": 3600},  # waiting for it would hit the suite's 300 s timeout
            {"domain": "kw"},
            {"domain": "raises"},
            {"domain": "bad-return"},
            {"domain": "kw", "keyword": "yes"},
        ],
        ["oh yes", "x", "x", "x", "x", "no"],
    )
    assert [v.status for v in got] == ["correct", "timeout", "error", "error", "error", "wrong"]
    assert got[1].detail == "grading took longer than 1.5s"
    assert pool._starts == starts + 1  # the stuck grader was killed and replaced, not waited for
    # the pool is healthy afterwards
    assert pool.score([{"domain": "math", "answer": "2"}], ["\\boxed{2.0}"])[0].status == "correct"


def test_score_batch_convenience_and_length_mismatch():
    v = score_batch([{"domain": "math", "answer": "x+1"}], ["\\boxed{1+x}"], workers=1)
    assert v == [Verdict(1.0, "correct", "")] or v[0].status == "correct"
    with RewardPool(workers=1) as p, pytest.raises(ValueError):
        p.score([{"domain": "math", "answer": "1"}], [])


def test_partial_of_module_function_is_a_valid_verifier(pool):
    register_verifier("kw2", functools.partial(keyword), ("keyword",))
    assert pool.score([{"domain": "kw2", "keyword": "a"}], ["a"])[0].status == "correct"


def test_pathological_latex_is_bounded(pool):
    rows = [{"domain": "math", "answer": "1"}] * 3
    responses = [
        "\\boxed{9^{9^{9^{9^{9}}}}}",
        "\\boxed{" + "(" * 300 + "1" + ")" * 300 + "}",
        "\\boxed{\\sum_{k=1}^{10^{12}} k^{k}}",
    ]
    got = pool.score(rows, responses)
    assert all(v.status in ("wrong", "timeout") for v in got), got


def test_repeated_answers_are_graded_once(pool):
    rows = [{"domain": "math", "answer": "\\frac{1}{3}+x"}] * 16
    responses = ["\\boxed{x + 1/3}"] * 8 + ["\\boxed{x + 0.3}"] * 8
    calls = []
    before = dict(vars(pool.stats))
    first = pool.score(rows, responses, progress=calls.append)
    assert [v.status for v in first] == ["correct"] * 8 + ["wrong"] * 8
    assert sum(calls) == 16
    assert pool.stats.graded - before["graded"] == 2  # one grading per distinct answer
    assert pool.stats.batch_duplicates - before["batch_duplicates"] == 14
    again = pool.score(rows, responses)
    assert again == first
    assert pool.stats.graded - before["graded"] == 2  # the second call: from the cache, no grader round trip
    assert pool.stats.cache_hits - before["cache_hits"] == 16


def test_interrupted_call_does_not_leak_into_the_next(pool):
    register_verifier("slow", sleepy, ())

    def interrupt(n):
        raise KeyboardInterrupt

    rows = [{"domain": "slow", "sleep": 0.3}, {"domain": "math", "answer": "1/3"}]
    with pytest.raises(KeyboardInterrupt):
        pool.score(rows, ["x", "\\boxed{2/6+0}"], progress=interrupt)
    # item 0 is decided in the parent; a leaked verdict of the slow grader would overwrite it
    # (it would answer at 0.3 s, while this call still waits for its own slow item)
    got = pool.score(
        [{"domain": "math", "answer": "5"}, {"domain": "math", "answer": "x^2"}, {"domain": "slow", "sleep": 0.6}],
        ["\\boxed{6}", "\\boxed{x \\cdot x}", "x"],
    )
    assert [v.status for v in got] == ["wrong", "correct", "correct"]


def test_non_finite_rewards_of_a_custom_verifier_become_errors(pool):
    from .helpers import nan_reward

    register_verifier("nan-reward", nan_reward, ())
    rows = [{"domain": "nan-reward", "value": v} for v in ("nan", "inf", "-inf", "0.5")]
    got = pool.score(rows, ["x"] * 4)
    assert [v.status for v in got] == ["error", "error", "error", "correct"]
    assert [v.reward for v in got] == [0.0, 0.0, 0.0, 0.5]
    assert "non-finite" in got[0].detail and "nan" in got[0].detail


def test_timeouts_must_be_positive_and_finite():
    for bad in (float("nan"), float("inf"), 0, -1):
        with pytest.raises(ValueError, match="positive number of seconds"):
            RewardPool(workers=1, timeout=bad)
        with pytest.raises(ValueError, match="positive number of seconds"):
            RewardPool(workers=1, code_timeout=bad)
