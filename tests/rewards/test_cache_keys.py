"""The verdict cache is keyed by everything a verdict depends on (issue 17).

Each pair of rows differs in ONE field only and needs different verdicts for the same boxed
answer; both the within-batch deduplication and the cross-call cache must keep them apart.
Counters, not time, show what was graded and what came from the cache.
"""

import pytest

from ringrl.rewards import RewardPool
from ringrl.rewards.pool import _cache_key

LOGIC = {"domain": "logic", "answer": "10", "numbers": [1, 2, 3, 4], "target": 10}
# (field, row A, row B, boxed answer, verdict of A, verdict of B)
PAIRS = [
    (
        "numbers",
        dict(LOGIC, checker="countdown"),
        dict(LOGIC, checker="countdown", numbers=[1, 2, 3, 5]),
        "1+2+3+4",
        "correct",
        "wrong",
    ),
    (
        "target",
        dict(LOGIC, checker="countdown"),
        dict(LOGIC, checker="countdown", target=11),
        "1+2+3+4",
        "correct",
        "wrong",
    ),
    ("checker", dict(LOGIC, checker="countdown"), dict(LOGIC, checker="exact"), "1+2+3+4", "correct", "wrong"),
    ("answer (logic)", dict(LOGIC, answer="Alice Bob"), dict(LOGIC, answer="Bob"), "alice  bob", "correct", "wrong"),
    (
        "answer (math)",
        {"domain": "math", "answer": "x^2"},
        {"domain": "math", "answer": "x^3"},
        "x \\cdot x",
        "correct",
        "wrong",
    ),
    (
        "domain",
        {"domain": "science", "answer": "9.81"},
        {"domain": "math", "answer": "9.81"},
        "9.8",
        "correct",
        "wrong",
    ),
]


@pytest.fixture(scope="module")
def pool():
    with RewardPool(workers=1, timeout=30.0) as p:
        yield p


@pytest.mark.parametrize("pair", PAIRS, ids=[p[0] for p in PAIRS])
def test_rows_differing_in_one_field_do_not_share_a_verdict(pool, pair):
    _, a, b, pred, want_a, want_b = pair
    box = "\\boxed{" + pred + "}"
    for order in ((a, b), (b, a)):  # within one batch, each order
        got = pool.score(list(order) * 2, [box] * 4)
        want = [want_a, want_b] if order[0] is a else [want_b, want_a]
        assert [v.status for v in got] == want * 2, got
    for row, want in ((a, want_a), (b, want_b)):  # across calls: a cached verdict of the other row must not leak
        assert pool.score([row], [box])[0].status == want


def test_key_covers_every_field_but_id_and_response():
    """A registered logic checker may read any field: each one must change the key."""
    row = {"domain": "logic", "checker": "divisible-by", "modulus": 5, "answer": "x", "id": 1, "response": "r"}
    key = _cache_key("logic", row, "35")
    for field, other in (("modulus", 7), ("checker", "exact"), ("answer", "y"), ("extra", 1), ("domain", "math")):
        assert _cache_key("logic", dict(row, **{field: other}), "35") != key, field
    assert _cache_key("logic", dict(row, id=2, response="s"), "35") == key
    assert _cache_key("logic", row, "36") != key and _cache_key("math", row, "35") != key
    assert _cache_key("logic", dict(row, modulus=float("nan")), "35") is not None
    assert _cache_key("logic", {1: "non-string key", "a": 1}, "35") is None  # not canonical: not cached


def test_counters_show_dedup_then_cache(pool):
    row = {"domain": "math", "answer": "\\frac{2}{7}+y"}
    before = dict(vars(pool.stats))
    pool.score([row] * 6, ["\\boxed{y + 2/7}"] * 3 + ["\\boxed{y+0.28}"] * 3)
    assert pool.stats.graded - before["graded"] == 2
    assert pool.stats.batch_duplicates - before["batch_duplicates"] == 4
    pool.score([dict(row, id="other", response="ignored")], ["\\boxed{y + 2/7}"])  # id/response are not part of the key
    assert pool.stats.cache_hits - before["cache_hits"] == 1
    assert pool.stats.graded - before["graded"] == 2
