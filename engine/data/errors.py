"""Errors a user can act on: the file, the line or row, the field, and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass


class DataError(ValueError):
    """A dataset problem the user can fix; the message names the file and what to do."""


@dataclass(frozen=True)
class Location:
    """Where a row lives: a file and 1-based line for line-oriented files, else a 0-based row index."""

    row: int
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}"
        return f"{self.file} row {self.row}" if self.file else f"row {self.row}"

    def short(self) -> str:
        """``line 17`` or ``row 16``: for lists where the file is already named."""
        return f"line {self.line}" if self.line is not None else f"row {self.row}"


@dataclass(frozen=True)
class RowError:
    """One problem in one row. ``kind`` is stable (for counting); ``reason`` is for people."""

    where: Location
    field: str
    kind: str
    reason: str

    def __str__(self) -> str:
        field = f"{self.field}: " if self.field else ""
        return f"{self.where}: {field}{self.reason}"

    def to_dict(self) -> dict:
        d: dict = {"line": self.where.line} if self.where.line is not None else {"row": self.where.row}
        if self.where.file:
            d["file"] = self.where.file
        d.update(field=self.field, kind=self.kind, reason=self.reason)
        return d


_TYPE_NAMES = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}


def json_type_name(value: object) -> str:
    """How a JSON value's type reads in an error message ("a string", "a list", "null")."""
    return "null" if value is None else _TYPE_NAMES.get(type(value), type(value).__name__)
