"""Token-count micro-batching and data-parallel balancing, as pure index arithmetic.

Both only regroup responses: the per-token weights (the global denominator) were fixed
by the batch former, so every split, on one process or across ranks, sums to the same
gradient. Each rank divides by the same global denominator (C3PO: Phi), never by its
own token count.
"""

from __future__ import annotations

from collections.abc import Sequence


def split_by_tokens(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Micro-batches of indices whose padded size (count * longest) is <= ``max_tokens``.

    Responses stay whole. Sorted longest first (less padding); ties by index. A single
    sequence longer than ``max_tokens`` forms a micro-batch of its own (the trainer
    should reject such a config at start: max_tokens >= prompt + max new tokens).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) + 1) * longest > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pack_by_tokens(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Packs of indices whose *summed* length is <= ``max_tokens`` (first fit, longest first).

    For a packed loss pass: the sequences of a pack are laid end to end in one row with
    no padding, so a pack costs its real tokens. Responses stay whole; a sequence longer
    than ``max_tokens`` forms a pack of its own. Deterministic (ties by index).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    packs: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        k = next((k for k, r in enumerate(room) if lengths[i] <= r), None)
        if k is None:
            packs.append([i])
            room.append(max_tokens - lengths[i])
        else:
            packs[k].append(i)
            room[k] -= lengths[i]
    return packs


def balance_across_ranks(lengths: Sequence[int], world_size: int) -> list[list[int]]:
    """Greedy longest-first: each index goes to the rank with the fewest tokens so far.

    Returns ``world_size`` lists of indices (some empty when there are fewer responses
    than ranks: such a rank still runs its backward on a zero loss so that collectives
    match). Ties go to the lowest rank; deterministic.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    ranks: list[list[int]] = [[] for _ in range(world_size)]
    load = [0] * world_size
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        r = min(range(world_size), key=lambda r: (load[r], r))
        ranks[r].append(i)
        load[r] += lengths[i]
    return ranks
