import random

import pytest

from ringrl.algorithms.microbatch import balance_across_ranks, pack_by_tokens, split_by_tokens


def test_split_by_tokens_by_hand():
    # longest first: 8 | 5, 3 (2 * 5 = 10) | 2
    assert split_by_tokens([5, 3, 8, 2], 10) == [[2], [0, 1], [3]]
    assert split_by_tokens([12, 1], 10) == [[0], [1]]  # too long: alone
    assert split_by_tokens([], 10) == []


def test_split_by_tokens_random_invariants():
    rng = random.Random(0)
    for _ in range(30):
        lengths = [rng.randint(1, 20) for _ in range(rng.randint(1, 15))]
        cap = rng.randint(20, 60)
        mbs = split_by_tokens(lengths, cap)
        assert sorted(i for mb in mbs for i in mb) == list(range(len(lengths)))
        assert all(len(mb) * max(lengths[i] for i in mb) <= cap for mb in mbs)


def test_balance_across_ranks_by_hand():
    # 8 -> r0; 5 -> r1; 3 -> r1 (8 vs 8); 2 -> r0 (tie, lowest rank); 2 -> r1
    assert balance_across_ranks([5, 3, 8, 2, 2], 2) == [[2, 3], [0, 1, 4]]
    assert balance_across_ranks([4, 4], 3) == [[0], [1], []]


def test_pack_by_tokens_first_fit_longest_first():
    # longest first: 7 opens pack 0 (room 3), 5 opens pack 1 (room 5), 4 -> pack 1 (room 1),
    # 3 -> pack 0 (room 0), 2 opens pack 2 (room 8), 1 -> pack 1 (room 0)
    lengths = [3, 7, 2, 5, 1, 4]
    assert pack_by_tokens(lengths, 10) == [[1, 0], [3, 5, 4], [2]]


def test_pack_by_tokens_covers_every_index_within_the_limit():

    rng = random.Random(0)
    for _ in range(50):
        lengths = [rng.randint(1, 30) for _ in range(rng.randint(1, 40))]
        packs = pack_by_tokens(lengths, 40)
        assert sorted(i for p in packs for i in p) == list(range(len(lengths)))
        assert all(sum(lengths[i] for i in p) <= 40 for p in packs)
    assert pack_by_tokens([50, 3], 40) == [[0], [1]]  # too long: a pack of its own
    with pytest.raises(ValueError):
        pack_by_tokens([1], 0)
