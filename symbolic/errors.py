"""The one error type users see: it names the field at fault and what is allowed."""

from __future__ import annotations

__all__ = ["SymbolicError"]


class SymbolicError(ValueError):
    """Bad input: ``field`` names what was wrong, the message says what is allowed.

    The command line prints it as one line (``error: FIELD: MESSAGE``) and exits with status 2.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
