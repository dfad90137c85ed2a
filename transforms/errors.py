"""The one error base of sigforge: every refusal a command reports as one line (exit 2) carries a ``code``.

The code names the kind of refusal (``config``, ``stage``, ``locked``, ``dataset``...), so tests and scripts
check what went wrong without matching the wording of the message, which is written for people. Each class has
its code; a raise site may name a narrower kind:

- ``ConfigError`` (``config``): ``unknown_key`` (only misspelled or misplaced keys), ``placeholder`` (a runner
  profile value still ``CHANGE_ME``);
- ``StageError`` (``stage``): ``missing_stage`` (an earlier stage has not run), ``output_exists`` (no
  ``--overwrite``), ``not_writable`` (``--overwrite`` cannot write; nothing deleted), ``count_mismatch`` (a stage
  read or wrote other counts than it should: lost or repeated elements), ``non_finite``, ``degenerate`` (a
  statistic not positive), ``collapsed`` (normalized train examples constant);
- ``DatasetLocked`` (``locked``): ``lock_lost`` (this run no longer holds the lock it took);
- ``DatasetError`` (``dataset``): ``missing_shard``, ``count_mismatch`` (data tables vs shards),
  ``audit_failed``; its subclasses ``FeatureSpecError`` (``feature_spec``) and ``CorruptShardError``
  (``corrupt_shard``); ``RunError`` (``run``).
"""

from __future__ import annotations


class SigforgeError(Exception):
    """A refusal with a stable ``code``; the message says what is wrong and how to fix it."""

    code = "error"

    def __init__(self, message: str = "", code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
