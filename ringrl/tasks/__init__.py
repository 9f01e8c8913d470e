"""Embedded synthetic verifiable tasks with a programmatic teacher.

Each task generator draws problems from a seeded RNG at a difficulty ``level`` and
writes a long step-by-step teacher trace ending in ``\\boxed{answer}``. Splits are
disjoint by construction: a problem belongs to ``test`` when a hash of its text falls
in the test bucket (1 in 8), to ``train`` otherwise, so no seed or size can make them
overlap. Rows follow DESIGN.md's format (``prompt``, ``domain``, ``answer``,
``response`` for SFT, plus ``id``, ``task``, ``level``).

    rows = make_split("math", "train", n=1000, seed=0)
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from typing import Any

from ringrl.errors import UserError
from ringrl.tasks import arithmetic, code, sorting, styles

Row = dict[str, Any]
# task name -> (domain, generator(rng, level) -> row without id, levels)
TASKS: dict[str, tuple[str, Callable[[random.Random, int], Row], tuple[int, ...]]] = {
    "arithmetic": ("math", arithmetic.generate, arithmetic.LEVELS),
    "sorting": ("logic", sorting.generate, sorting.LEVELS),
    "program": ("code", code.generate, code.LEVELS),
    "arithmetic-styles": ("math", styles.generate, styles.LEVELS),  # short or long answers (--stress)
}
DOMAIN_TASKS = {"math": ("arithmetic",), "logic": ("sorting",), "code": ("program",)}
TEST_BUCKETS = 8


def split_of(prompt: str) -> str:
    """``"test"`` for one problem in :data:`TEST_BUCKETS`, by a stable hash of its text."""
    h = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
    return "test" if h % TEST_BUCKETS == 0 else "train"


def make_split(
    domain: str, split: str, n: int, seed: int = 0, levels: tuple[int, ...] | None = None, strict: bool = True
) -> list[Row]:
    """``n`` distinct rows of ``domain`` (a domain or a task name) in ``split``.

    Levels are drawn in rotation; a level whose problems are all used (level 1 of
    arithmetic has about 150) leaves the rotation and the others fill the rest. When every
    level is used up, ``strict`` raises; otherwise the rows drawn so far are returned."""
    if split not in ("train", "test"):
        raise UserError(f"split '{split}': expected 'train' or 'test'")
    names = DOMAIN_TASKS.get(domain) or ((domain,) if domain in TASKS else None)
    if names is None:
        raise UserError(f"unknown task or domain '{domain}' (known: {', '.join([*DOMAIN_TASKS, *TASKS])})")
    rng = random.Random(f"{domain}:{split}:{seed}")
    rows: list[Row] = []
    seen: set[str] = set()
    # (task, level) slots in rotation; a slot whose problem space is used up leaves it
    for name in names:
        bad = sorted(set(levels or ()) - set(TASKS[name][2]))
        if bad:
            raise UserError(f"task '{name}' has no level {bad[0]} (levels: {', '.join(map(str, TASKS[name][2]))})")
    slots = [(name, lvl) for name in names for lvl in (levels or TASKS[name][2])]
    misses = {slot: 0 for slot in slots}
    k = 0
    while len(rows) < n:
        if not slots:
            if not strict and rows:
                return rows
            raise UserError(
                f"task '{domain}': cannot draw {n} distinct {split} problems at levels {levels} (space too small)"
            )
        name, level = slot = slots[k % len(slots)]
        dom, gen, _ = TASKS[name]
        row = gen(rng, level)
        if row["prompt"] in seen or split_of(row["prompt"]) != split:
            misses[slot] += 1
            if misses[slot] > 500:  # this level has no new problem left for this split
                slots.remove(slot)
            continue
        misses[slot] = 0
        k += 1
        seen.add(row["prompt"])
        rows.append(
            {"id": f"{name}-{split}-{seed}-{len(rows):05d}", "domain": dom, "task": name, "level": level, **row}
        )
    return rows


Levels = list[int] | dict[str, list[int]] | None


def embedded_rows(
    tasks: list[str],
    split: str,
    size: int,
    seed: int = 0,
    levels: Levels = None,
    weights: dict[str, float] | None = None,
) -> list[Row]:
    """About ``size`` rows shared across ``tasks`` (fewer when small levels run out).

    ``levels`` is one list for every task, or a mapping from a task (as named in
    ``tasks``) to its own list; a task the mapping leaves out draws every level.
    ``weights`` gives a task's relative share of ``size`` (a task left out: 1); without
    it the rows are split evenly."""
    for name, mapping in (("levels", levels), ("weights", weights)):
        unknown = sorted(set(mapping) - set(tasks)) if isinstance(mapping, dict) else []
        if unknown:
            raise UserError(f"{name}: '{unknown[0]}' is not one of the tasks ({', '.join(tasks)})")
    share = [float((weights or {}).get(t, 1.0)) for t in tasks]
    if any(w < 0 for w in share) or sum(share) <= 0:
        raise UserError(f"weights: expected shares >= 0 with a positive sum, got {weights}")
    out: list[Row] = []
    for t, w in zip(tasks, share):
        lv = levels.get(t) if isinstance(levels, dict) else levels
        n = math.ceil(size * w / sum(share))
        if n:
            out += make_split(t, split, n, seed=seed, levels=tuple(lv) if lv else None, strict=False)
    return out[:size]


def corpus(rows: list[Row]) -> list[str]:
    """Texts for tokenizer training: prompts with their instructions, and teacher traces."""
    from ringrl.data.prompts import user_message

    out = []
    for r in rows:
        out.append(user_message(r))
        if "response" in r:
            out.append(r["response"])
    return out
