"""The verdict record every verifier returns."""

from __future__ import annotations

from dataclasses import dataclass

# Statuses shared by every domain; code adds CODE_STATUSES.
STATUSES = ("correct", "wrong", "no_answer", "timeout", "error", "scored")  # scored: a reward.function's value
CODE_STATUSES = ("runtime_error", "compile_error", "memory_limit", "output_limit", "unsupported_language")


@dataclass(frozen=True)
class Verdict:
    """One graded response.

    ``reward`` is 1.0 only for ``status == "correct"``, else 0.0: the paper's sparse
    rule-based reward, no format reward and no partial credit.
    """

    reward: float
    status: str
    detail: str = ""

    @staticmethod
    def of(status: str, detail: str = "") -> Verdict:
        return Verdict(1.0 if status == "correct" else 0.0, status, detail[:300])
