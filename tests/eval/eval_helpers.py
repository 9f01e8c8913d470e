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


def real_data_dir() -> Path:
    """The shared benchmark folder, found the way the CLI finds it (``$RINGRL_DATA_DIR``, else
    ``shared/data`` in an ancestor of the working directory or of the package).

    Skips (with where it looked) only when no data folder exists at all; a folder that was
    found or named but lacks the benchmark files fails the test: that is a broken setup, not
    a missing feature.
    """
    import pytest

    from ringrl.eval.benchmarks import BENCHMARKS, DATA_DIR_ENV, resolve_data_dir

    root, how = resolve_data_dir()
    if root is None:
        pytest.skip(f"no benchmark data: {how}; set ${DATA_DIR_ENV} to the shared/data folder")
    missing = [b.file for b in BENCHMARKS.values() if not (root / b.file).is_file()]
    if missing:
        pytest.fail(f"data folder {root} ({how}) lacks {', '.join(missing)}")
    return root
