"""The prompt stream: a seeded permutation of the rows per epoch, read in order.

The position is a single integer, so a resumed run continues with exactly the prompts
an uninterrupted run would have seen.
"""

from __future__ import annotations

import random
from typing import Any

from ringrl.data.rows import load_rows
from ringrl.rl.config import RLDataConfig


class PromptStream:
    def __init__(self, rows: list[dict[str, Any]], seed: int, position: int = 0):
        self.rows = rows
        self.seed = seed
        self.position = position
        self._epoch = -1
        self._order: list[int] = []

    def _order_for(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            self._order = list(range(len(self.rows)))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(self._order)
            self._epoch = epoch
        return self._order

    def take(self, n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            epoch, i = divmod(self.position, len(self.rows))
            out.append(self.rows[self._order_for(epoch)[i]])
            self.position += 1
        return out


def load_rl_rows(cfg: RLDataConfig, custom_reward: bool = False) -> list[dict[str, Any]]:
    """The RL prompts: ``data.train`` validated row by row by the verifier registry
    (``ringrl.rewards.registry.row_problem``: a row no verifier can score is an error naming
    file, line and field; registered domains are accepted), else the embedded tasks. With
    ``reward.function`` a row needs only its prompt (the function scores it)."""
    if cfg.train:
        return load_rows(cfg.train, "prompt" if custom_reward else "rl", max_row_bytes=cfg.max_row_bytes)
    from ringrl.tasks import embedded_rows

    return embedded_rows(cfg.tasks, "train", cfg.train_size, cfg.seed, cfg.levels, cfg.weights)
