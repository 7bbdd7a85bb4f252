"""Named fault switches in the core, off by default (FoundationDB's "buggify" idea).

Each switch removes one safety rule. The simulator's tests turn one on and expect the
checkers to report a violation within a bounded number of seeds: proof that the
checkers can see what the rule prevents. Never turn one on outside a test.
"""

from __future__ import annotations

import msgspec


class Buggify(msgspec.Struct, frozen=True, kw_only=True):
    skip_epoch_check: bool = False  # rules 2, 6: ignore epochs in messages and log matching
    commit_on_leader_fsync: bool = False  # rule 3: commit once the leader alone has fsynced
    shrink_isr_silently: bool = False  # rules 1, 4: drop lagging followers without the CAS
    ignore_clock_drift: bool = False  # rule 2: trust the lease for its full TTL
    trust_unclean_restart: bool = False  # rule 7: rejoin as if nothing was lost

    def any(self) -> bool:
        return any(getattr(self, f) for f in self.__struct_fields__)

    def names(self) -> list[str]:
        return [f for f in self.__struct_fields__ if getattr(self, f)]


NONE = Buggify()
