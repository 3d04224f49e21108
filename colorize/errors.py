"""The one error type for expected failures.

Anything a user can cause (bad input, a missing file, a bot wall, a tampered shard) raises
`ColorizeError`; the CLI prints it on one line as ``error: <what> — <how to fix>`` and exits 1.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ColorizeError(Exception):
    """An expected failure: says what went wrong and how to fix it."""

    def __init__(self, what: str, fix: str = "", exit_code: int = 1) -> None:
        self.what = what
        self.fix = fix
        self.exit_code = exit_code
        super().__init__(self.line())

    def line(self) -> str:
        """The single line the CLI prints (without the ``error:`` prefix)."""
        what = " ".join(self.what.split())
        fix = " ".join(self.fix.split())
        return f"{what} — {fix}" if fix else what


class UsageError(ColorizeError):
    """A mistake in how a command was called (exit code 2, like click's own usage errors)."""

    def __init__(self, what: str, fix: str = "") -> None:
        super().__init__(what, fix, exit_code=2)
