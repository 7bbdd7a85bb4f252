"""Bounds of the storage layer, unit last in the name.

The bounds every layer shares (``segment_bytes_max``, ``record_bytes_max``,
``fsync_interval_ms_default``, ...) live in :mod:`conveyor.limits`; the ones here only
matter inside :mod:`conveyor.storage`. Relations are asserted at the bottom.
"""

from __future__ import annotations

from conveyor import limits

KiB = limits.KiB
MiB = limits.MiB

# Appends ----------------------------------------------------------------------
# One append_batch is one write(); it is bounded in records and in bytes so that one
# caller cannot hold the log's lock (and memory) for an unbounded time.
append_batch_records_max = limits.group_commit_records_max
append_batch_bytes_max = 256 * MiB
segment_bytes_min = 4 * KiB  # the smallest segment_bytes_max a log accepts (tests use it)

# Reads ------------------------------------------------------------------------
scan_chunk_bytes = 1 * MiB  # one pread (and one lock hold) of scan() reads about this much
# read_many() reads records this close together with one pread, the frames between them
# too (copying 32 KiB from the page cache costs about what another pread does)
read_gap_bytes = 32 * KiB
recovery_read_bytes = 4 * MiB  # the scan of a segment on open reads this much at a time
sealed_fds_open_max = 8  # file descriptors of sealed segments a log keeps open (LRU)

# Group commit -----------------------------------------------------------------
# an event loop fsyncs a round of its own appends itself when they are at most this many
# bytes (one request at a time, a few dozen small ones); larger rounds go to the committer
loop_sync_bytes_max = 64 * KiB
committer_threads_max = 4  # worker threads of the shared committer, started on demand
fsync_interval_ms_min = 1
fsync_interval_ms_max = 60_000

# Checkpoints --------------------------------------------------------------------
checkpoints_kept = 2  # the newest and one to fall back on
checkpoint_bytes_max = 16 * 1024 * MiB  # a larger length in a header means the file is damaged

# Inspection ---------------------------------------------------------------------
inspect_preview_bytes = 32  # payload bytes shown per record

assert append_batch_bytes_max >= limits.record_bytes_max
assert segment_bytes_min <= limits.segment_bytes_max
assert scan_chunk_bytes <= recovery_read_bytes
assert sealed_fds_open_max >= 1
assert committer_threads_max >= 1
assert fsync_interval_ms_min <= limits.fsync_interval_ms_default <= fsync_interval_ms_max
assert checkpoints_kept >= 2  # fallback needs an older one
