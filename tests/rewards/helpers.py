"""Verifiers used by the pool tests (module-level so that grader processes can import them)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ringrl.rewards import Verdict


def sleepy(row: Mapping[str, Any], response: str) -> Verdict:
    time.sleep(float(row.get("sleep", 60)))
    return Verdict.of("correct")


def keyword(row: Mapping[str, Any], response: str) -> Verdict:
    return Verdict.of("correct" if row["keyword"] in response else "wrong")


def raising(row: Mapping[str, Any], response: str) -> Verdict:
    raise ValueError("boom")


def not_a_verdict(row: Mapping[str, Any], response: str) -> Any:
    return 1.0


def nan_reward(row: Mapping[str, Any], response: str) -> Verdict:
    return Verdict(float(row.get("value", "nan")), "correct")
