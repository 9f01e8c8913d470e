"""Reward functions from files named on the command line (``reward.function=FILE.py:NAME``).

A reward function is a plain Python function in the user's own file::

    def my_reward(prompt: str, response: str, row: dict) -> float: ...

``prompt`` is the row's question (``prompt``, ``problem``, or the last user turn of
``messages``), ``response`` the model's text, ``row`` the whole dataset row (extra fields
included). Several functions combine as a weighted sum (``reward.weights``, default 1 each).

A function marked ``batched`` scores many responses in one call (a model-based judge, a
reward model, anything with a per-call cost worth sharing)::

    def my_judge(prompts: list[str], responses: list[str], rows: list[dict]) -> list[float]: ...
    my_judge.batched = True

The pool then hands each worker one contiguous chunk of the step's responses (its time limit
is ``reward.timeout`` times the chunk's length); a call that raises, hangs or returns a list of
the wrong length gives every item of its chunk status ``error`` (or ``timeout``), and an item
whose value is not a finite number gets ``error`` alone.

The functions run in the reward pool's worker processes, never in the trainer: each item
has the pool's hard time limit (``reward.timeout``), and a function that raises, hangs, or
returns anything but a finite number gives that item status ``error`` (reward 0) with the
reason, never a crash and never a NaN in the metrics. This is a departure from the paper's
0/1 rule-based rewards, on purpose: the user's function may give partial credit.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringrl.data.rows import row_prompt
from ringrl.errors import ConfigError
from ringrl.rewards.types import Verdict

RewardFn = Callable[..., Any]  # (prompt, response, row) -> float, or lists of each -> list[float] when batched


def parse_spec(spec: str, key: str = "reward.function") -> tuple[Path, str]:
    """``FILE.py:NAME`` -> (absolute path, name); a config error naming ``key`` otherwise."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name.isidentifier():
        raise ConfigError(key, f"expected FILE.py:NAME, got {spec!r}")
    p = Path(path).expanduser().resolve()
    if p.suffix != ".py" or not p.is_file():
        raise ConfigError(key, f"{path}: no such Python file")
    return p, name


@functools.lru_cache(maxsize=64)
def load_function(path: str, name: str) -> RewardFn:
    """Import ``path`` as a module (once per process) and return its callable ``name``."""
    module_name = f"ringrl_reward_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise AttributeError(f"{path} has no function {name!r}")
    return fn


def check_functions(specs: list[str], weights: list[float] | None) -> None:
    """Validate at start: every file imports and names a callable, weights match and are finite."""
    for spec in specs:
        path, name = parse_spec(spec)
        try:
            load_function(str(path), name)
        except Exception as e:  # the user's file: any import-time error is theirs to fix
            raise ConfigError("reward.function", f"{spec}: {type(e).__name__}: {e}") from None
    if weights is not None:
        if len(weights) != len(specs):
            raise ConfigError("reward.weights", f"{len(weights)} weights for {len(specs)} functions")
        if not all(math.isfinite(w) for w in weights):
            raise ConfigError("reward.weights", "must be finite numbers")


def is_batched(fn: Callable[..., Any]) -> bool:
    """Whether a reward function takes whole lists (``fn.batched = True``)."""
    return getattr(fn, "batched", False) is True


def _bad_value(label: str, value: Any) -> str | None:
    """Why ``value`` is not a usable reward, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{label} returned {value!r}, not a finite number"[:300]
    return None


@dataclass(frozen=True)
class FileReward:
    """The weighted sum of file reward functions, as a pool verifier ``(row, response) -> Verdict``
    (and ``score_many`` for whole chunks when a function is batched).

    Picklable (paths and names only): each worker process imports the files itself."""

    functions: tuple[tuple[str, str, float], ...]  # (path, name, weight)

    @staticmethod
    def from_config(specs: list[str], weights: list[float] | None) -> FileReward:
        ws = weights if weights is not None else [1.0] * len(specs)
        return FileReward(tuple((str(p), n, float(w)) for (p, n), w in zip(map(parse_spec, specs), ws)))

    @property
    def batched(self) -> bool:
        """True when some function takes lists: the pool then sends chunks to ``score_many``."""
        return any(is_batched(load_function(path, name)) for path, name, _ in self.functions)

    def __call__(self, row: Mapping[str, Any], response: str) -> Verdict:
        return self.score_many([row], [response])[0]

    def score_many(self, rows: Sequence[Mapping[str, Any]], responses: Sequence[str]) -> list[Verdict]:
        """Verdicts for ``zip(rows, responses)``: each function's weighted value summed, or the
        first error an item met."""
        n = len(rows)
        plain = [dict(row) for row in rows]
        prompts = [row_prompt(row) for row in plain]
        totals = [0.0] * n
        errors: list[str | None] = [None] * n
        for path, name, weight in self.functions:
            label = f"{Path(path).name}:{name}"
            fn = load_function(path, name)
            values: list[Any] = []
            if is_batched(fn):
                try:
                    values = list(fn(prompts, list(responses), plain))
                except Exception as e:
                    values = [None] * n
                    errors = [err or f"{label} raised {type(e).__name__}: {e}"[:300] for err in errors]
                if len(values) != n:
                    why = f"{label} returned {len(values)} values for {n} responses"
                    errors = [err or why for err in errors]
                    continue
            else:
                for i in range(n):
                    if errors[i] is not None:
                        values.append(None)
                        continue
                    try:
                        values.append(fn(prompts[i], responses[i], plain[i]))
                    except Exception as e:
                        values.append(None)
                        errors[i] = f"{label} raised {type(e).__name__}: {e}"[:300]
            for i, value in enumerate(values):
                if errors[i] is None:
                    errors[i] = _bad_value(label, value)
                    totals[i] += 0.0 if errors[i] else weight * float(value)
        return [
            Verdict(0.0, "error", err) if err else Verdict(total, "scored", f"reward {total:g}")
            for total, err in zip(totals, errors)
        ]
