"""Where the shared benchmark files live: a ``shared/data`` folder beside the checkout."""

from __future__ import annotations

from pathlib import Path

import ringrl


def find_data_dir(start: Path | None = None) -> Path | None:
    """The first ``shared/data`` directory found walking up from ``start`` (default: the
    current directory), then up from the ringrl package; None when there is none."""
    origins = [Path(start) if start is not None else Path.cwd(), Path(ringrl.__file__).resolve().parent]
    for origin in origins:
        for folder in [origin.resolve(), *origin.resolve().parents]:
            candidate = folder / "shared" / "data"
            if candidate.is_dir():
                return candidate
    return None
