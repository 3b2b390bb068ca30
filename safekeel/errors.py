"""Errors a user can fix. The CLI turns every `SafekeelError` into one clear line and exit code 2."""

from __future__ import annotations


class SafekeelError(Exception):
    """A problem with the user's input or environment (not a bug in safekeel)."""

    exit_code = 2


class DataError(SafekeelError):
    """Bad data in a user file: always names the file, the 1-based line (or row) and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str):
        self.path, self.line, self.field, self.message = str(path), line, field, message
        where = self.path if line is None else f"{self.path}:{line}"
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {message}")


class ConfigError(SafekeelError):
    """Unknown key, wrong type or missing value in a YAML config or a --key value override."""
