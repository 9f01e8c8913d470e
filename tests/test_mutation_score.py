"""``benchmarks/mutation_score.py``'s tally: a name listed as equivalent is left out of the
score only if that mutant survived; a listed name that was killed or that mutmut does not have
(mutant numbers shift when a function changes) is a warning, never a silent exclusion."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def score(ringrl_util):
    return ringrl_util.load_script("mutation_score")


def test_listed_equivalents_count_only_when_they_survived(score):
    a = "ringrl.eval.metrics.x_f__mutmut_"
    statuses = {
        a + "1": "killed",
        a + "2": "survived",  # listed: equivalent
        a + "3": "killed",  # listed, but killed: counts as killed, with a warning
        a + "4": "survived",  # not listed: a survivor
        a + "5": "timeout",
        a + "6": "not checked",  # listed, not run: neither equivalent nor a warning
        a + "7": "no tests",  # listed: it survived (no test covers it)
    }
    listed = {a + "2", a + "3", a + "6", a + "7", a + "99"}
    stats, survivors, warnings = score.tally(statuses, listed)
    c = stats["ringrl.eval.metrics"]
    assert (c["killed"], c["survived"], c["equivalent"], c["not checked"]) == (3, 1, 2, 1)
    assert survivors == [a + "4: survived"]
    assert len(warnings) == 2
    assert any(a + "3" in w and "killed" in w for w in warnings)
    assert any(a + "99" in w and "no such mutant" in w for w in warnings)


def test_modules_are_grouped_by_the_configured_packages(score):
    statuses = {
        "ringrl.curate.dedup.x_jaccard__mutmut_1": "killed",
        "ringrl.curate.text.x_word_ngrams__mutmut_2": "survived",
        "ringrl.algorithms.moe.x__flat__mutmut_12": "survived",
    }
    stats, survivors, warnings = score.tally(statuses, set())
    assert stats["ringrl.curate"]["killed"] == 1 and stats["ringrl.curate"]["survived"] == 1
    assert stats["ringrl.algorithms"]["survived"] == 1 and not warnings and len(survivors) == 2
