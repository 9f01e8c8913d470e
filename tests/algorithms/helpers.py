"""Tiny builders shared by the algorithm tests."""

from ringrl.algorithms.types import Sample, ScoredGroup


class IdentityOrder:
    """An 'rng' whose permutation keeps the pool order (carry first, then groups)."""

    def permutation(self, n):
        return range(n)


def group(gid, lengths, rewards=None, adv=None, age=0):
    rewards = rewards or [float(i % 2) for i in range(len(lengths))]
    adv = adv or [0.0] * len(lengths)
    return ScoredGroup(
        gid,
        [
            Sample(gid, i, [1, 2], list(range(3, 3 + n)), reward=r, advantage=a, age=age)
            for i, (n, r, a) in enumerate(zip(lengths, rewards, adv))
        ],
    )
