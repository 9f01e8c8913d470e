"""File helpers: atomic writes, JSONL reading with line numbers, atomic directories.

Nothing ringrl writes is ever left half-written: files go to a temporary name in the
same directory and are renamed into place; checkpoint directories are built under a
temporary name and renamed once complete (see :func:`atomic_dir`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ringrl.errors import DataError, UserError


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_output_file(path: str | Path, what: str = "--output") -> Path:
    """Make sure file ``path`` can be written (its directory created), before any work: one line
    naming ``what`` when it is a directory, lies under a file, or sits on a read-only place."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {p}: is a directory; give a file name")
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{what} {p}: {parent} is a file, not a directory")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{what} {p}: cannot create {p.parent} ({e.strerror or e})") from None
    if not os.access(p.parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UserError(f"{what} {p}: not writable")
    return p


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(str(p), e.lineno, None, f"invalid JSON ({e.msg})") from None
    except UnicodeDecodeError:
        raise DataError(str(p), None, None, "not UTF-8 text") from None


MAX_ROW_BYTES = 8 * 1024 * 1024  # default size limit of one data row (RINGRL_MAX_ROW_BYTES overrides it)


def max_row_bytes() -> int:
    """The row size limit of commands without a ``data.max_row_bytes`` key (``$RINGRL_MAX_ROW_BYTES``)."""
    raw = os.environ.get("RINGRL_MAX_ROW_BYTES", "")
    if not raw:
        return MAX_ROW_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"RINGRL_MAX_ROW_BYTES={raw!r}: expected a positive number of bytes")
    return int(raw)


def iter_jsonl(
    path: Path, limit: int | None = None, limit_key: str = "RINGRL_MAX_ROW_BYTES"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, row)``; a bad line raises DataError naming file and line: not UTF-8,
    not a JSON object, or longer than ``limit`` bytes (``limit_key`` names the setting; such a
    line is never read whole, so an oversize row costs no memory)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found")
    limit = limit or max_row_bytes()
    with p.open("rb") as f:
        lineno = 0
        while raw := f.readline(limit + 1):
            lineno += 1
            if len(raw) > limit and not raw.endswith(b"\n"):
                raise DataError(
                    str(p), lineno, None, f"row longer than {limit:,} bytes (raise {limit_key} to accept it)"
                )
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    str(p),
                    lineno,
                    None,
                    f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); convert the file to UTF-8",
                ) from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a UTF-8 byte order mark
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(str(p), lineno, None, f"invalid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(str(p), lineno, None, "each line must be a JSON object")
            yield lineno, row


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Build a directory under a temporary name; rename it to ``final`` only on success.

    An existing ``final`` is replaced only after the new one is complete, so an
    interrupted write never leaves a directory that later loads half-written.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
