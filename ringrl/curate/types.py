"""Typed records passed between curation stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One parsed input row and the line it came from (1-based)."""

    line: int
    row: dict[str, Any]


@dataclass(frozen=True)
class Removal:
    """A row dropped by a filter, with a one-line reason."""

    line: int
    filter: str
    reason: str


@dataclass
class StageResult:
    """What one filter kept and what it removed, in input order."""

    kept: list[Entry]
    removed: list[Removal] = field(default_factory=list)
