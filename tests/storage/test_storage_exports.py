"""The public surface of conveyor.storage is what __all__ says, and nothing is missing."""

from __future__ import annotations

import conveyor.storage as storage
from conveyor import errors


def test_all_is_honest() -> None:
    assert len(storage.__all__) == len(set(storage.__all__))
    for name in storage.__all__:
        assert hasattr(storage, name), name
    public = {n for n in dir(storage) if not n.startswith("_")}
    modules = {
        "bounds", "checkpoint", "committer", "errors", "file_log", "format", "fsutil",
        "inspect", "log", "memory_log", "record", "segment",
    }  # fmt: skip
    assert public - modules - {"annotations", "TYPE_CHECKING"} == set(storage.__all__)


def test_errors_are_in_the_tree() -> None:
    assert issubclass(storage.CorruptRecord, errors.InternalError)
    assert issubclass(storage.LogFailed, errors.InternalError)
    assert issubclass(storage.LogClosed, errors.Unavailable)
    assert issubclass(storage.RecordTooLarge, errors.InvalidRequest)
    assert storage.CorruptRecord.retriable
