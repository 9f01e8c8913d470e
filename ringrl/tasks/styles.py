"""Arithmetic whose correct answers may be short or long (domain ``math``): the stress task.

The problems are those of :mod:`ringrl.tasks.arithmetic`. The teacher answers half of them
directly (``The answer is \\boxed{42}.``, a few tokens) and works the other half out column
by column (the long trace, tens to hundreds of tokens), chosen by a hash of the problem, so
the same problem always gets the same style and the SFT model learns both. Both styles are
correct; RL is then free to move the response length either way, which is what
``ringrl experiment c3po-vs-grpo --stress`` needs to show how GRPO's per-response
normalisation and C3PO's fixed token budget react when lengths drift.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from ringrl.tasks import arithmetic

LEVELS = arithmetic.LEVELS


def is_short(prompt: str) -> bool:
    """The teacher's style for ``prompt``: direct answer for half of the problems (stable hash)."""
    return hashlib.sha256(b"style:" + prompt.encode()).digest()[0] % 2 == 0


def generate(rng: random.Random, level: int) -> dict[str, Any]:
    row = arithmetic.generate(rng, level)
    if is_short(row["prompt"]):
        row["response"] = f"The answer is \\boxed{{{row['answer']}}}."
    return row
