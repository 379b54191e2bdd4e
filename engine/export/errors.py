"""Errors of the export path. Each message says what is wrong, where, and what to do."""

from __future__ import annotations


class ExportError(RuntimeError):
    """An export that must not be used: the message names the file, the token or string, and the fix."""
