"""The one error base of sigforge: every refusal a command reports as one line (exit 2) carries a ``code``.

The code names the kind of refusal (``config``, ``stage``, ``locked``, ``dataset``...), so tests and scripts
check what went wrong without matching the wording of the message, which is written for people.
"""

from __future__ import annotations


class SigforgeError(Exception):
    """A refusal with a stable ``code``; the message says what is wrong and how to fix it."""

    code = "error"

    def __init__(self, message: str = "", code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
