"""The replication core's bounds and timings, units last in the name, relations asserted.

Times are milliseconds of the replica's own clock. The defaults suit a LAN cluster; the
simulator draws its own (smaller) values from the same relations.
"""

from __future__ import annotations

from typing import Final

import msgspec

KiB: Final = 1024
MiB: Final = 1024 * KiB

min_insync_default: Final = 2
clock_drift_ppm_max_default: Final = 10_000  # 1 %: far above what NTP-synced clocks drift


class ReplicaSettings(msgspec.Struct, frozen=True, kw_only=True):
    min_insync: int = min_insync_default
    fetch_wait_ms_max: int = 500  # how long a leader holds a fetch with nothing to send
    fetch_timeout_ms: int = 2_000  # a follower fetches again when no answer came
    replica_lag_ms_max: int = 10_000  # an ISR member not caught up for this long leaves it
    config_retry_ms: int = 2_000  # re-send a configuration change not yet answered
    client_timeout_ms: int = 10_000  # a client append not committed by then: unknown outcome
    fetch_records_max: int = 1_024
    fetch_bytes_max: int = 4 * MiB
    requests_pending_max: int = 65_536
    clock_drift_ppm_max: int = clock_drift_ppm_max_default  # vs the coordinator's clock
    lease_margin_ms: int = 50  # give up leadership this long before the bound says

    def check(self) -> None:
        assert self.min_insync >= 1
        assert 0 < self.fetch_wait_ms_max < self.fetch_timeout_ms
        assert self.fetch_timeout_ms < self.replica_lag_ms_max
        assert self.config_retry_ms > 0 and self.client_timeout_ms > 0
        assert self.fetch_records_max >= 1 and self.fetch_bytes_max >= 1
        assert self.requests_pending_max >= 1
        assert 0 <= self.clock_drift_ppm_max < 100_000  # more than 10 % is a broken clock
        assert self.lease_margin_ms >= 0

    def lease_valid_ms(self, ttl_ms: int) -> int:
        """How long after sending a keep-alive a leader may still act on its lease.

        The coordinator counts ``ttl_ms`` on its own clock from when it *received* the
        keep-alive, which is after the replica sent it. If the replica's clock may run
        slow and the coordinator's fast by up to ``clock_drift_ppm_max`` each, then
        ``ttl * (1 - d) / (1 + d)`` of the replica's milliseconds are surely fewer than
        ``ttl`` of the coordinator's. The margin covers the tick granularity.
        """
        d = self.clock_drift_ppm_max
        return (ttl_ms * (1_000_000 - d)) // (1_000_000 + d) - self.lease_margin_ms


ReplicaSettings().check()
