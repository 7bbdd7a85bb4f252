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

# Preallocation (fsync="always" only) ------------------------------------------------
# The active segment's file is extended with written zeros this far past the end of the
# write that reached its end, so that a round's sync does not change the file's size and
# can be an fdatasync. Measured on ext4 for a 1.1 KiB append: fsync that grows the file
# ~200 us; fdatasync inside written zeros ~135 us (-33%; -42..-47% for 4-64 KiB);
# inside posix_fallocate'd space ~150 us for 1.1 KiB but no gain from 4 KiB up (ext4
# journals the conversion of each "unwritten" block at its first write), hence zeros.
# A chunk costs writing its zeros and one full fsync that journals the new length, and
# as much disk per partition while the segment is active. That fsync holds up the
# requests of its round: measured one append + sync at a time (1.1 KiB, 6,000 in a row),
# a 1 MiB chunk made p99.9 3.1 ms (~0.4 ms of zeros, ~2 ms of fsync), a 256 KiB chunk
# 1.55 ms (0.12 + 0.7), with the same mean; at 1,000 msg/s end to end the 1 MiB stall
# delayed three or four messages by 3-5 ms each, once per ~900 messages. Hence 256 KiB.
# Zeros pay only while rounds are small: appends/s with 256 KiB chunks against none were
# 1.56x at 1 KiB a round, 1.30x at 16 KiB, 1.02x at 64 KiB and 0.88x at 128 KiB (the
# zeros double what reaches the disk; 1 MiB chunks: 1.60, 1.23, 1.07, 0.89). So a log
# preallocates while the rounds that synced its last segment_preallocate_bytes of
# appends averaged at most preallocate_round_bytes_max.
segment_preallocate_bytes = 256 * KiB
preallocate_round_bytes_max = 64 * KiB
zero_write_bytes = 1 * MiB  # the largest buffer of zeros one pwrite of a chunk writes

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
assert segment_bytes_min <= segment_preallocate_bytes <= limits.segment_bytes_max
assert 0 < preallocate_round_bytes_max < segment_preallocate_bytes
assert 0 < zero_write_bytes <= append_batch_bytes_max
assert checkpoints_kept >= 2  # fallback needs an older one
