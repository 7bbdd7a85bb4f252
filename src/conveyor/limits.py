"""Every bound Conveyor enforces, in one place, with its unit last in the name.

Defaults follow Amazon SQS where SQS has one; where Conveyor differs, the reason
stands beside the value. Relations between bounds are asserted at the bottom so a
change that breaks one fails at import time, not in production.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
MINUTE_S = 60
HOUR_S = 60 * MINUTE_S
DAY_S = 24 * HOUR_S

# --- queues -------------------------------------------------------------------
queue_name_length_max = 80  # SQS: 1..80 of [A-Za-z0-9_-], ".fifo" counts toward it
queues_per_node_max = 100_000
queue_tags_max = 50

message_size_bytes_min = 1 * KiB  # the smallest MaximumMessageSize a queue may set
message_size_bytes_max = 1 * MiB  # the largest message any queue accepts
message_size_bytes_default = 256 * KiB

retention_s_min = 60
retention_s_max = 14 * DAY_S
retention_s_default = 4 * DAY_S

visibility_timeout_s_min = 0
visibility_timeout_s_max = 12 * HOUR_S
visibility_timeout_s_default = 30

delay_s_min = 0
delay_s_max = 15 * MINUTE_S  # SQS's cap, kept so SQS clients see the same bounds
delay_s_default = 0

receive_wait_s_min = 0
receive_wait_s_max = 20  # SQS long poll maximum
receive_wait_s_default = 0

max_receive_count_min = 1
max_receive_count_max = 1000

# Depth limits: 0 means "unbounded" (SQS has no depth limit; Conveyor offers one
# for backpressure).
queue_depth_messages_max = 1 << 40
queue_depth_bytes_max = 1 << 50

partitions_min = 1
partitions_max = 256
partitions_default = 1

dedup_window_s = 5 * MINUTE_S  # FIFO deduplication interval (SQS: 5 minutes)
dedup_id_length_max = 128
group_id_length_max = 128
receive_attempt_window_s = 5 * MINUTE_S
purge_interval_s = 60  # SQS allows one PurgeQueue per 60 s

# --- messages ----------------------------------------------------------------
message_attributes_max = 10
attribute_name_length_max = 256
attribute_type_length_max = 256
batch_entries_max = 10  # SQS batch size; the native protocol allows more
native_batch_entries_max = 1000
receive_messages_max = 10  # SQS ReceiveMessage MaxNumberOfMessages
native_receive_messages_max = 1000
batch_request_bytes_max = 1 * MiB  # SQS: the sum of a batch's payloads

# --- storage -----------------------------------------------------------------
segment_bytes_max = 64 * MiB  # a segment is sealed and a new one started past this
record_bytes_max = message_size_bytes_max + 256 * KiB  # body + attributes + header
group_commit_records_max = 65_536
fsync_interval_ms_default = 50  # for fsync="interval"
checkpoint_interval_records = 100_000  # records between partition checkpoints
compaction_live_ratio_max = 0.25  # a sealed segment with less live data is rewritten

# --- server --------------------------------------------------------------------
busy_poll_us_max = 10_000  # the longest an idle event loop may spin before it sleeps

# --- receipt handles ----------------------------------------------------------
receipt_handle_mac_bytes = 16

# --- relations ------------------------------------------------------------------
assert message_size_bytes_min <= message_size_bytes_default <= message_size_bytes_max
assert retention_s_min <= retention_s_default <= retention_s_max
assert visibility_timeout_s_min <= visibility_timeout_s_default <= visibility_timeout_s_max
assert delay_s_min <= delay_s_default <= delay_s_max
assert receive_wait_s_min <= receive_wait_s_default <= receive_wait_s_max
assert record_bytes_max > message_size_bytes_max
assert segment_bytes_max > 2 * record_bytes_max
assert batch_entries_max <= native_batch_entries_max
assert receive_messages_max <= native_receive_messages_max
assert 0 < compaction_live_ratio_max < 1
