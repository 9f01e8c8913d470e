"""Where the shared benchmark files live: ``$RINGRL_DATA_DIR``, else a ``shared/data`` folder
beside the checkout (the same rule as ``ringrl eval``)."""

from __future__ import annotations

import os
from pathlib import Path

import ringrl
from ringrl.errors import UserError

DATA_DIR_ENV = "RINGRL_DATA_DIR"


def find_data_dir(start: Path | None = None) -> Path | None:
    """``$RINGRL_DATA_DIR`` when set (it must be a directory), else the first ``shared/data``
    directory found walking up from ``start`` (default: the current directory), then up from
    the ringrl package; None when there is none."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        if not Path(env).is_dir():
            raise UserError(f"${DATA_DIR_ENV}={env}: not a directory")
        return Path(env)
    origins = [Path(start) if start is not None else Path.cwd(), Path(ringrl.__file__).resolve().parent]
    for origin in origins:
        for folder in [origin.resolve(), *origin.resolve().parents]:
            candidate = folder / "shared" / "data"
            if candidate.is_dir():
                return candidate
    return None
