"""Verifier registry by domain, and the one row validator for it.

A dataset row's ``domain`` picks the verifier. :func:`row_problem` is the only check of
whether a row can be scored: RL data loading (``ringrl.data.rows.check_row`` for RL rows),
``ringrl verify`` and the pool all call it, so a row no verifier can score (``domain:
general`` with no verifier registered, an empty ``answer``, ``tests: []``, an unknown domain)
is an error naming its field at load, and a domain added with :func:`register_verifier` is
accepted everywhere at once. Built-in: ``math``, ``science``,
``logic`` (graded in pool worker processes) and ``code`` (graded in the sandbox).
New domains are added with :func:`register_verifier` without touching the trainer;
the function runs in a worker process, so it must be picklable (a module-level
function or a ``functools.partial`` of one), and must return a :class:`Verdict`
(an exception or another return value becomes status ``error``).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ringrl.rewards.grading import grade_math, grade_science
from ringrl.rewards.logic import CHECKER_FIELDS, checker_names, grade_logic
from ringrl.rewards.types import Verdict

VerifierFn = Callable[[Mapping[str, Any], str], Verdict]


@dataclass(frozen=True)
class VerifierSpec:
    """A registered verifier: ``fn(row, response) -> Verdict`` and the row fields it needs."""

    domain: str
    fn: VerifierFn | None  # None: the code sandbox
    required_fields: tuple[str, ...]
    boxed_only: bool = False  # built-in: only the last \boxed{} of the response matters


_REGISTRY: dict[str, VerifierSpec] = {}


def register_verifier(domain: str, fn: VerifierFn, required_fields: tuple[str, ...]) -> None:
    """Register (or replace) the verifier of ``domain``."""
    if not isinstance(domain, str) or not domain:
        raise TypeError("domain must be a non-empty string")
    if not callable(fn):
        raise TypeError("fn must be callable: fn(row, response) -> Verdict")
    try:
        pickle.dumps(fn)
    except Exception as e:
        raise TypeError(f"verifier for {domain!r} must be picklable (a module-level function): {e}") from None
    _REGISTRY[domain] = VerifierSpec(domain, fn, tuple(required_fields))


def verifier_names() -> list[str]:
    """Registered domains, sorted."""
    return sorted(_REGISTRY)


def get_spec(domain: str) -> VerifierSpec | None:
    return _REGISTRY.get(domain)


def row_problem(row: Any) -> tuple[str, str] | None:
    """``(field, message)`` for the first reason ``row`` cannot be verified, else None."""
    if not isinstance(row, Mapping):
        return "domain", "row must be an object"
    domain = row.get("domain")
    if domain is None:
        return "domain", f"missing (one of {', '.join(verifier_names())})"
    spec = _REGISTRY.get(domain) if isinstance(domain, str) else None
    if spec is None:
        known = ", ".join(verifier_names())
        if domain == "general":
            return "domain", f"no verifier for domain 'general' (one of {known}; add one with register_verifier)"
        return "domain", f"unknown domain {domain!r} (one of {known})"
    if domain == "code":
        return _code_problem(row)
    fields = spec.required_fields
    if domain == "logic":
        checker = row.get("checker") or "exact"
        if checker not in checker_names():
            return "checker", f"unknown logic checker {checker!r} (one of {', '.join(checker_names())})"
        fields = CHECKER_FIELDS.get(checker, fields)
    for f in fields:
        if f not in row or row[f] is None:
            need = "the reference answer" if f == "answer" else f"'{f}'"
            return f, f"missing ({domain} rows need {need})"
        if isinstance(row[f], str) and not row[f].strip():
            return f, "must not be empty"
    if domain in ("math", "science") or (domain == "logic" and "answer" in fields):
        a = row["answer"]
        if isinstance(a, bool) or not isinstance(a, (str, int, float)) or (isinstance(a, str) and not a.strip()):
            return "answer", "must be a non-empty string or a number"
    if domain == "logic" and row.get("checker") == "countdown":
        nums, target = row["numbers"], row["target"]
        if not isinstance(nums, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in nums):
            return "numbers", "must be a list of integers"
        if not isinstance(target, int) or isinstance(target, bool):
            return "target", "must be an integer"
    return None


def _code_problem(row: Mapping[str, Any]) -> tuple[str, str] | None:
    field = "tests" if "tests" in row else "test_code"
    tests = row.get("tests", row.get("test_code"))
    if tests is None:
        return "tests", "missing (code rows need stdin/stdout pairs or assert-style test code)"
    if isinstance(tests, list):
        if not tests:
            return field, "must not be empty"
        for i, t in enumerate(tests):
            if not isinstance(t, Mapping) or "input" not in t or "output" not in t:
                return field, f"item {i} must be an object with 'input' and 'output'"
    elif not isinstance(tests, str) or not tests.strip():
        return field, "must be a list of {input, output} or a non-empty string of test code"
    ep = row.get("entry_point")
    if ep is not None and (not isinstance(ep, str) or not ep.isidentifier()):
        return "entry_point", "must be a function name"
    return None


_REGISTRY["math"] = VerifierSpec("math", grade_math, ("answer",), boxed_only=True)
_REGISTRY["science"] = VerifierSpec("science", grade_science, ("answer",), boxed_only=True)
_REGISTRY["logic"] = VerifierSpec("logic", grade_logic, ("answer",), boxed_only=True)
_REGISTRY["code"] = VerifierSpec("code", None, ("tests",))
