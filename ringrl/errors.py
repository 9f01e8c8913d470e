"""User-facing errors.

Anything the user can fix (a bad config key, a malformed data row, a missing file)
raises :class:`UserError` with one line that names the file, line, field or config
key. The CLI prints that line and exits with code 2; no traceback is shown.
"""

from __future__ import annotations


class UserError(Exception):
    """An error in the user's input; the message is one line meant for the user."""

    exit_code = 2


class ConfigError(UserError):
    """A config key that does not exist or a value that is out of range."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config key '{key}': {message}")
        self.key, self.message = key, message


class DataError(UserError):
    """A malformed dataset row, named by file, line and field."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str):
        where = str(path) if line is None else f"{path}:{line}"
        what = f" field '{field}'" if field else ""
        super().__init__(f"{where}:{what} {message}")
        self.path, self.line, self.field = path, line, field
