"""The algorithms' thresholds at, just below and just above their values:
C3PO's "the cumulative count first reaches Phi" (Eq. 3), the carry's ``max_age``, and
DAPO's group filter (a group is informative when its rewards are not all equal)."""

from __future__ import annotations

import math

import pytest

from ringrl.algorithms.c3po import form_c3po_batch, select_budget
from ringrl.algorithms.config import FormerConfig
from ringrl.algorithms.dapo import form_dapo_batch, informative_groups

from .helpers import IdentityOrder, group

# lengths 3, 2, 4 in this order: the cumulative counts are 3, 5, 9


@pytest.mark.parametrize(
    "phi, taken, cut",
    [
        (4, [3, 1, 0], 1),  # Phi just below 5: the second response is cut to 1 token
        (5, [3, 2, 0], 0),  # Phi = 5: first reached at the end of the second, nothing cut
        (6, [3, 2, 1], 3),  # Phi just above 5: a third response enters, cut to 1
        (8, [3, 2, 3], 1),  # Phi just below the pool
        (9, [3, 2, 4], 0),  # Phi = the pool: everything, no shortfall
        (10, [3, 2, 4], 0),  # Phi just above the pool: a shortfall of 1
    ],
)
def test_c3po_first_reaches_phi(phi: int, taken: list[int], cut: int) -> None:
    assert select_budget([3, 2, 4], phi) == taken
    fb = form_c3po_batch([group(0, [3, 2, 4])], [], FormerConfig(budget_tokens=phi, leftover="carry"), IdentityOrder())
    n_used = max(i + 1 for i, k in enumerate(taken) if k)
    assert [s.n_tokens for s in fb.selected] == taken[:n_used]
    assert [s.index for s in fb.leftover] == list(range(n_used, 3))  # not selected: carried
    assert all(s.token_weight == 1 / phi for s in fb.selected)
    assert fb.stats["tokens"] == min(phi, 9) == fb.n_tokens
    assert fb.stats["cut_tokens"] == cut
    assert fb.stats["shortfall_tokens"] == max(0, phi - 9)
    assert fb.stats["responses"] == n_used and fb.stats["leftover_responses"] == 3 - n_used


def test_c3po_zero_length_responses_at_and_after_phi() -> None:
    """Empty responses are never selected; once Phi is reached they are leftovers like any other,
    and in a shortfall the whole pool (empty ones included) is used up."""
    fb = form_c3po_batch(
        [group(0, [3, 0, 2, 0, 4])], [], FormerConfig(budget_tokens=5, leftover="carry"), IdentityOrder()
    )
    assert [(s.sample.index, s.n_tokens) for s in fb.selected] == [(0, 3), (2, 2)]
    assert [s.index for s in fb.leftover] == [3, 4]
    assert fb.stats["pool_responses"] == 5 and fb.stats["pool_tokens"] == 9
    short = form_c3po_batch([group(0, [3, 0])], [], FormerConfig(budget_tokens=5, leftover="carry"), IdentityOrder())
    assert [s.sample.index for s in short.selected] == [0] and short.leftover == []
    assert short.stats["shortfall_tokens"] == 2 and short.stats["dropped_responses"] == 0


@pytest.mark.parametrize("age, kept", [(0, True), (1, True), (2, False)], ids=["below", "at", "above"])
def test_carry_max_age(age: int, kept: bool) -> None:
    """A leftover of age a goes on with age a + 1 while a + 1 <= max_age (here 2)."""
    carried = group(9, [4], age=age).samples
    fb = form_c3po_batch(
        [group(0, [5])], carried, FormerConfig(budget_tokens=5, leftover="carry", max_age=2), IdentityOrder()
    )
    # Phi = 4 + 1: the carried response is first and whole, the new one cut; nothing left over
    assert [s.sample.group_id for s in fb.selected] == [9, 0] and fb.leftover == []
    fb = form_c3po_batch(
        [group(0, [5])], carried, FormerConfig(budget_tokens=5, leftover="carry", max_age=2), _Reversed()
    )
    assert [s.sample.group_id for s in fb.selected] == [0]  # the new one fills Phi first
    assert [(s.group_id, s.age) for s in fb.leftover] == ([(9, age + 1)] if kept else [])
    assert fb.stats["dropped_responses"] == (0 if kept else 1)
    assert fb.stats["carried_in"] == 1 and fb.stats["carried_trained"] == 0


class _Reversed:
    def permutation(self, n: int) -> list[int]:
        return list(reversed(range(n)))


def test_leftover_drop_keeps_nothing_whatever_the_age() -> None:
    fb = form_c3po_batch(
        [group(0, [3, 3])], [], FormerConfig(budget_tokens=3, leftover="drop", max_age=5), IdentityOrder()
    )
    assert fb.leftover == [] and fb.stats["dropped_responses"] == 1


@pytest.mark.parametrize(
    "rewards, informative",
    [
        ([1.0], False),  # one sample: no comparison, dropped
        ([], False),
        ([0.5, 0.5], False),  # all equal
        ([0.5, math.nextafter(0.5, 1.0)], True),  # the smallest difference is informative
        ([0.5, math.nextafter(0.5, 0.0)], True),
        ([1.0, 1.0, 0.0], True),  # one differs
        ([0.0, 0.0, 0.0, 0.0], False),
    ],
)
def test_dapo_group_filter(rewards: list[float], informative: bool) -> None:
    g = group(0, [2] * len(rewards), rewards=rewards) if rewards else group(0, [])
    kept, dropped = informative_groups([g])
    assert (kept, dropped) == (([g], []) if informative else ([], [g]))
    fb = form_dapo_batch([g], [], FormerConfig(), None)
    assert fb.stats["dropped_groups"] == (0 if informative else 1)
    assert fb.stats["dropped_responses"] == (0 if informative else len(rewards))
    assert fb.stats["tokens"] == (2 * len(rewards) if informative else 0)
