"""Helpers for the evaluation tests: a fake grader, a scripted generator, data lookups."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class FakeVerdict:
    reward: float
    status: str
    detail: str = ""


class BoxedGrader:
    """Exact-match grader on the last ``\\boxed{...}``: correct, wrong or no_answer."""

    def __init__(self) -> None:
        self.calls = 0

    def score(self, rows: list[dict[str, Any]], responses: list[str]) -> list[FakeVerdict]:
        self.calls += 1
        out = []
        for row, text in zip(rows, responses):
            found = re.findall(r"\\boxed\{([^{}]*)\}", text)
            if not found:
                out.append(FakeVerdict(0.0, "no_answer"))
            elif found[-1].strip() == str(row["answer"]):
                out.append(FakeVerdict(1.0, "correct"))
            else:
                out.append(FakeVerdict(0.0, "wrong", f"got {found[-1]!r}"))
        return out


@dataclass(frozen=True)
class Out:
    """A generator output with token ids, like the rollout engine's Completion."""

    text: str
    token_ids: list[int]


class ScriptedGenerator:
    """Returns fixed responses per prompt: ``script`` maps a substring of the prompt to its n outputs."""

    def __init__(self, script: dict[str, list[str]]):
        self.script = script
        self.prompts: list[str] = []
        self.calls: list[dict[str, Any]] = []

    def generate(self, prompts, n, *, temperature, top_p, max_new_tokens, seed):
        self.calls.append(dict(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed))
        self.prompts.extend(prompts)
        out = []
        for p in prompts:
            key = next(k for k in self.script if k in p)
            texts = self.script[key]
            assert len(texts) == n
            out.append([Out(t, list(range(len(t.split())))) for t in texts])
        return out


class PlainTokenizer:
    """No chat template: prompts are the user message plus a newline."""

    chat_template = None


def real_data_dir() -> Path | None:
    """The shared benchmark folder when this checkout has one beside it."""
    from ringrl.eval.benchmarks import resolve_data_dir

    root, _ = resolve_data_dir()
    return root if root is not None and (root / "humaneval.jsonl").is_file() else None


def reward_pool_cls() -> Any:
    """``ringrl.rewards.RewardPool`` when the rewards package provides it, else None."""
    try:
        from ringrl.rewards import RewardPool  # type: ignore[attr-defined]
    except ImportError:
        return None
    return RewardPool
