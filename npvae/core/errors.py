"""Errors that a user can cause, and fix.

The command line turns these into a one-line message and exit code 2 (``--verbose`` shows the
traceback). Each subclasses ``ValueError`` so that library callers may catch the usual type.
"""


class NpvaeError(Exception):
    """Base class: something the user can fix (a bad file, a bad flag, missing data)."""


class DataError(NpvaeError, ValueError):
    """A data file is missing, truncated or corrupt, or a download failed."""


class CheckpointError(NpvaeError, ValueError):
    """A checkpoint is missing, corrupt, unsafe, or from an incompatible model or format."""


class TooLargeError(NpvaeError, MemoryError):
    """A request (a model, a batch of samples) too large for this machine's memory."""
