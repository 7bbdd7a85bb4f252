"""Errors of the storage layer, placed in Conveyor's one error tree.

::

    ConveyorError
    ├── InvalidRequest
    │   └── RecordTooLarge        a payload above limits.record_bytes_max; nothing written
    ├── Unavailable               (retriable)
    │   ├── LogClosed             the log was closed
    │   └── LogTruncated          the record waited for was removed by truncate()/reset()
    └── InternalError             (retriable)
        └── StorageError          an I/O error; the log is unchanged
            ├── CorruptRecord     a stored record fails its checksum or framing
            └── LogFailed         an fsync or a write failed and could not be undone:
                                  the log refuses further writes until it is reopened

These keep the wire ``code`` of the class they derive from: a client sees
``InternalError`` or ``Unavailable``, which is all it can act on.
"""

from __future__ import annotations

from conveyor import errors


class RecordTooLarge(errors.InvalidRequest):
    """The payload is larger than ``limits.record_bytes_max``."""


class LogClosed(errors.Unavailable):
    """The log is closed."""


class LogTruncated(errors.Unavailable):
    """A waited-for record was removed by ``truncate`` or ``reset`` before it was durable."""


class StorageError(errors.InternalError):
    """An I/O error in the storage layer."""


class CorruptRecord(StorageError):
    """A stored record does not match its checksum or its framing."""


class LogFailed(StorageError):
    """An fsync or write failed; what is on disk is unknown, so the log stops writing.

    After a failed fsync the kernel may have dropped the dirty pages, and a later fsync
    can succeed without them, so retrying is not safe: reopen the log (recovery checks
    every record of the active segment) or fail over to another replica."""
