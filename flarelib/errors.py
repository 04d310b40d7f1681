"""The one error type for bad user input: its message names the file (or key) and the fix.

The CLI prints ``FlareInputError`` as one line, without a traceback, and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path


class FlareInputError(ValueError):
    """A bad input: missing/corrupt file, wrong shape, unknown params key, ...

    ``str(err)`` is one line: ``<where>: <problem>. Fix: <what to do>``.
    """

    def __init__(self, where: str | Path | None, problem: str, fix: str | None = None):
        self.where = str(where) if where is not None else None
        self.problem = problem
        self.fix = fix
        msg = f"{self.where}: {problem}" if self.where else problem
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)
