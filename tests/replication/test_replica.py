"""Hand-written scenarios for the replication core (no randomness, no simulator)."""

from __future__ import annotations

import pytest
from replica_harness import PARTITION, SETTINGS, TTL_MS, Cluster

from conveyor import errors
from conveyor.coordination import PartitionConfig
from conveyor.replication import (
    EPOCH_START,
    Buggify,
    FetchRequest,
    FetchResponse,
    FetchStatus,
    Message,
    PartitionApplier,
    Replica,
    ReplicaSettings,
    ReplicationInvariantError,
    ReplyError,
    Role,
    Send,
    is_control,
)
from conveyor.replication.records import epoch_start
from conveyor.replication.state import reply_error


def roles(c: Cluster) -> dict[str, Role]:
    return {name: node.replica.role for name, node in c.node.items()}


# --- normal replication --------------------------------------------------------------------


def test_election_writes_an_epoch_marker_and_serves_once_it_is_durable() -> None:
    c = Cluster()
    c.grant_leases()
    config = c.elect()
    assert (config.leader, config.epoch, config.isr) == ("n1", 1, ("n1", "n2", "n3"))
    leader = c.node["n1"].replica
    assert leader.role is Role.LEADER
    assert leader.records() == [epoch_start(0, 0, 1)]
    assert not leader.is_serving  # the marker is not durable yet
    request = c.write("n1", b"early")
    reply = c.reply("n1", request)
    assert reply is not None and reply.error is ReplyError.NOT_LEADER
    c.sync("n1")
    assert leader.is_serving
    assert roles(c) == {"n1": Role.LEADER, "n2": Role.FOLLOWER, "n3": Role.FOLLOWER}


def test_normal_replication_commits_when_every_isr_member_persisted() -> None:
    c = Cluster()
    leader = c.bootstrap()
    request = c.write(leader, b"hello")
    c.settle(sync=("n1", "n2"))  # n3 appends but never fsyncs
    assert c.node["n3"].replica.log_end == 2
    assert c.reply(leader, request) is None  # n3 is in the ISR and has not persisted
    assert c.node[leader].replica.commit == 1  # only the marker
    c.settle()
    reply = c.reply(leader, request)
    assert reply is not None and reply.ok and reply.offset == 1
    for node in c.node.values():
        assert node.replica.commit == 2
        assert node.payloads == [b"hello"]  # the marker is not applied
        assert node.disk == c.node[leader].disk


def test_apply_covers_every_committed_offset_control_records_included() -> None:
    c = Cluster()
    leader = c.bootstrap()
    for i in range(3):
        c.write(leader, b"m%d" % i)
    c.settle()
    applied = c.node["n2"].applied
    assert [r.offset for r in applied] == [0, 1, 2, 3]
    assert [is_control(r.type) for r in applied] == [True, False, False, False]
    assert applied[0].type == EPOCH_START


def test_partition_applier_feeds_the_real_partition_state() -> None:
    from conveyor.partition import records as R
    from conveyor.partition.state import PartitionState

    c = Cluster()
    leader = c.bootstrap()
    for i in range(3):
        rtype, payload = R.encode(R.Append(message_id=f"m{i}", body_bytes=1, body=b"x"))
        c.run(c.node[leader], c.node[leader].replica.append(100 + i, [(rtype, 5, payload)], 5))
    c.settle()
    states = []
    for node in c.node.values():
        applier = PartitionApplier(PartitionState(fifo=False))
        for r in node.applied:
            applier.apply(r.offset, r.type, r.ts_ms, r.payload)
        states.append(applier)
    assert states[0].state.next_offset == 4
    assert len({s.digest() for s in states}) == 1
    assert states[0].state.live_offsets() == [1, 2, 3]


def test_fetches_are_held_until_there_is_news_and_answered_at_the_deadline() -> None:
    c = Cluster()
    leader = c.bootstrap()
    assert c.inbox == []  # followers' fetches are parked at the leader
    c.advance(SETTINGS.fetch_wait_ms_max, step_ms=SETTINGS.fetch_wait_ms_max, live=False)
    answers = [m for _, _, m in c.inbox]
    assert len(answers) == 2  # empty answers: heartbeats
    c.settle()
    c.write(leader, b"x")
    assert len(c.inbox) == 2  # the append answers both parked fetches at once


# --- min_insync and the commit rule -------------------------------------------------------------


def test_below_min_insync_writes_are_refused_with_a_retriable_error() -> None:
    c = Cluster()
    c.grant_leases()
    config = c.config()
    single = config.replace(leader=None, isr=("n1",))
    assert c.coord.cas_partition(config.version, single).ok
    c.down.update({"n2", "n3"})  # nobody can catch up and join
    c.elect()
    c.settle()
    assert c.config().isr == ("n1",)
    request = c.write("n1", b"x")
    reply = c.reply("n1", request)
    assert reply is not None and reply.error is ReplyError.NOT_ENOUGH_REPLICAS
    err = reply_error(reply)
    assert isinstance(err, errors.Unavailable) and err.retriable
    assert c.node["n1"].replica.log_end == 1  # nothing written


def test_leader_alone_never_commits_with_min_insync_two() -> None:
    c = Cluster()
    leader = c.bootstrap()
    request = c.write(leader, b"x")
    c.sync(leader)
    c.deliver(keep=lambda s, t, m: False)  # followers hear nothing
    assert c.reply(leader, request) is None
    assert c.node[leader].replica.commit == 1


def test_buggify_commit_on_leader_fsync_commits_alone() -> None:
    c = Cluster(buggify=Buggify(commit_on_leader_fsync=True))
    leader = c.bootstrap()
    request = c.write(leader, b"x")
    c.sync(leader)
    reply = c.reply(leader, request)
    assert reply is not None and reply.ok  # the fault: acknowledged on one disk


# --- follower failure: ISR shrink through the coordinator -----------------------------------------


def test_follower_crash_shrinks_the_isr_by_compare_and_set_and_writes_go_on() -> None:
    c = Cluster()
    leader = c.bootstrap()
    c.node["n3"].crash()
    version = c.config().version
    request = c.write(leader, b"during")
    c.settle()
    assert c.reply(leader, request) is None  # n3 is still in the ISR: no commit
    c.advance(SETTINGS.replica_lag_ms_max + 200)
    proposals = c.node[leader].proposals
    assert proposals and proposals[-1].expected_version == version
    assert proposals[-1].config.isr == ("n1", "n2")
    assert c.config().isr == ("n1", "n2")
    c.settle()
    reply = c.reply(leader, request)
    assert reply is not None and reply.ok


def test_isr_member_is_not_dropped_without_the_coordinator() -> None:
    c = Cluster()
    leader = c.bootstrap()
    c.hold_proposals = True  # the coordinator does not answer
    c.node["n3"].crash()
    request = c.write(leader, b"x")
    c.advance(SETTINGS.replica_lag_ms_max + 500)
    c.settle()
    assert c.node[leader].proposals  # it asked...
    assert c.config().isr == ("n1", "n2", "n3")  # ...nothing changed...
    assert c.reply(leader, request) is None  # ...so it still waits for n3 (rule 4)
    assert len(c.node[leader].proposals) >= 2  # and it retries the same change
    assert {p.expected_version for p in c.node[leader].proposals} == {c.config().version}


def test_pending_isr_expansion_counts_the_joining_member() -> None:
    """While an expansion may still apply, commits wait for the joining replica too."""
    c = Cluster()
    leader = c.bootstrap()
    c.node["n3"].crash()
    c.advance(SETTINGS.replica_lag_ms_max + 200)
    c.settle()
    assert c.config().isr == ("n1", "n2")
    c.hold_proposals = True
    c.node["n3"].restart()
    c.settle()
    proposal = c.node[leader].proposals[-1]
    assert proposal.config.isr == ("n1", "n2", "n3")
    request = c.write(leader, b"x")
    c.settle(sync=("n1", "n2"))  # the joiner does not persist it
    assert c.reply(leader, request) is None
    c.settle()
    reply = c.reply(leader, request)
    assert reply is not None and reply.ok
    c.answer_proposal(c.node[leader], proposal)
    assert c.config().isr == ("n1", "n2", "n3")


# --- leader failover and divergent suffixes ----------------------------------------------------------


def test_leader_failover_elects_from_the_isr_and_truncates_the_old_suffix() -> None:
    c = Cluster()
    leader = c.bootstrap()
    assert leader == "n1"
    committed = c.write(leader, b"committed")
    c.settle()
    assert c.reply(leader, committed) is not None
    # n1 appends two records nobody else receives, and fsyncs them
    c.write(leader, b"lost-1")
    c.write(leader, b"lost-2")
    c.sync(leader)
    c.inbox.clear()
    c.down.add("n1")  # it is cut off; its lease runs out
    c.advance(TTL_MS + 100, renew=False)
    c.renew("n2", "n3")
    config = c.elect(controller="n2")
    assert config.leader == "n2" and config.epoch == 2
    assert "n1" not in config.isr  # dead ISR members leave with the election
    c.settle()
    new = c.write("n2", b"after")
    c.settle()
    assert c.reply("n2", new) is not None
    # n1 comes back: its log diverges after offset 1 (epoch 1 records n2 never had)
    c.down.discard("n1")
    c.grant_leases("n1")
    c.broadcast_config("n1")
    assert c.node["n1"].replica.role is Role.CATCHING_UP
    c.settle()
    n1, n2 = c.node["n1"], c.node["n2"]
    assert n1.disk == n2.disk
    assert [r.payload for r in n2.disk if r.type == 1] == [b"committed", b"after"]
    assert n1.replica.history() == ((1, 0), (2, 2))
    c.advance(100)
    c.settle()
    assert c.config().isr == ("n1", "n2", "n3")  # caught up: expanded by CAS


def test_divergence_is_found_by_epoch_history_not_commit_point() -> None:
    """A follower far ahead of its commit point keeps what matches the leader (rule 6)."""
    c = Cluster()
    leader = c.bootstrap()
    for i in range(3):
        c.write(leader, b"r%d" % i)
    # n2 gets and persists everything, but never hears the commit point
    c.settle(keep=lambda s, t, m: not (isinstance(m, FetchResponse) and t == "n3"))
    n2 = c.node["n2"].replica
    assert n2.log_end == 4
    c.down.update({"n1"})
    c.advance(TTL_MS + 100, renew=False)
    c.renew("n2", "n3")
    config = c.elect(controller="n2")
    assert config.leader == "n2"
    c.settle()
    # n3 had only the marker; n2 kept all of epoch 1 (nothing was truncated)
    assert [r.payload for r in c.node["n3"].disk if r.type == 1] == [b"r0", b"r1", b"r2"]
    assert n2.history() == ((1, 0), (2, 4))


def test_truncating_below_the_commit_point_is_an_invariant_violation() -> None:
    replica = Replica("n2", PARTITION, settings=SETTINGS)
    replica._commit = replica._applied = 0
    out: list = []
    replica._log = [epoch_start(0, 0, 1)]
    replica._history.append(1, 0)
    replica._commit = replica._applied = 1
    with pytest.raises(ReplicationInvariantError):
        replica._truncate(0, out)


# --- stale epochs ---------------------------------------------------------------------------------------


def fetch(replica: str, epoch: int, offset: int = 1, last_epoch: int = 1) -> FetchRequest:
    return FetchRequest(
        partition=PARTITION,
        epoch=epoch,
        replica=replica,
        incarnation=9,
        fetch_id=1,
        fetch_offset=offset,
        last_epoch=last_epoch,
        durable_end=offset,
        commit=0,
    )


def test_leader_rejects_a_fetch_from_an_older_epoch() -> None:
    c = Cluster()
    leader = c.bootstrap()
    replica = c.node[leader].replica
    out = replica.on_message("n2", fetch("n2", epoch=0), c.now)
    answers = [e.message for e in out if isinstance(e, Send)]
    assert len(answers) == 1 and isinstance(answers[0], FetchResponse)
    assert answers[0].status is FetchStatus.STALE_EPOCH and answers[0].epoch == 1


def test_leader_that_sees_a_newer_epoch_stops_leading() -> None:
    c = Cluster()
    leader = c.bootstrap()
    replica = c.node[leader].replica
    out = replica.on_message("n2", fetch("n2", epoch=5), c.now)
    assert replica.role is Role.FENCED
    assert not [e for e in out if isinstance(e, Send)]


def test_follower_ignores_answers_from_a_deposed_leader() -> None:
    c = Cluster()
    c.bootstrap()
    n2 = c.node["n2"].replica
    stale = FetchResponse(
        partition=PARTITION,
        epoch=0,
        leader="n3",
        incarnation=n2.incarnation,
        fetch_id=99,
        fetch_offset=n2.log_end,
        last_epoch=n2.last_epoch,
        status=FetchStatus.OK,
        records=(epoch_start(n2.log_end, 0, 7),),
        commit=0,
        log_end=n2.log_end + 1,
    )
    before = n2.log_end
    n2.on_message("n3", stale, c.now)
    assert n2.log_end == before


def test_stale_epoch_answer_makes_a_follower_wait_for_the_coordinator() -> None:
    c = Cluster()
    c.bootstrap()
    n2 = c.node["n2"].replica
    answer = FetchResponse(
        partition=PARTITION,
        epoch=4,
        leader="n1",
        incarnation=n2.incarnation,
        fetch_id=1,
        fetch_offset=0,
        last_epoch=0,
        status=FetchStatus.STALE_EPOCH,
    )
    n2.on_message("n1", answer, c.now)
    assert n2.role is Role.FENCED and "epoch 4" in n2.fence_reason
    config = c.config()
    newer = config.replace(epoch=4)
    assert c.coord.cas_partition(config.version, newer).ok
    c.broadcast_config("n2")
    assert n2.role is Role.FOLLOWER


# --- leases (rule 2) ----------------------------------------------------------------------------------


def test_leader_fences_itself_before_its_lease_can_expire_at_the_coordinator() -> None:
    settings = ReplicaSettings(
        fetch_wait_ms_max=100,
        fetch_timeout_ms=300,
        replica_lag_ms_max=1_000,
        clock_drift_ppm_max=20_000,
        lease_margin_ms=10,
    )
    c = Cluster(settings=settings)
    leader = c.bootstrap()
    replica = c.node[leader].replica
    valid = settings.lease_valid_ms(TTL_MS)
    assert valid < TTL_MS * 0.97  # 2 % drift each way and the margin
    assert replica.lease_deadline == valid
    c.advance(valid - 50, renew=False)
    assert replica.role is Role.LEADER
    c.advance(50, step_ms=50, renew=False)
    assert replica.role is Role.FENCED and replica.fence_reason == "lease expired"
    expires_at = c.coord.lease_expires_at(c.node[leader].lease_id or 0)
    assert expires_at is not None and c.now < expires_at  # the coordinator still has it
    # renewed in time: the same process resumes the same epoch, without a new marker
    c.renew(leader)
    assert replica.role is Role.LEADER and replica.epoch == 1
    assert replica.history() == ((1, 0),)


def test_buggify_ignore_clock_drift_trusts_the_whole_ttl() -> None:
    c = Cluster(buggify=Buggify(ignore_clock_drift=True))
    leader = c.bootstrap()
    assert c.node[leader].replica.lease_deadline == TTL_MS


def test_lost_lease_fences_and_a_new_lease_cannot_lead_the_old_epoch() -> None:
    c = Cluster()
    leader = c.bootstrap()
    node = c.node[leader]
    c.advance(TTL_MS + 10, renew=False)
    c.renew(leader)  # the coordinator expired it: lost
    assert node.replica.role is Role.FENCED
    c.grant_leases(leader)
    assert node.replica.role is Role.FENCED  # elected under the old lease
    c.renew("n2", "n3")
    config = c.elect(controller="n2")
    assert config.epoch == 2
    c.settle()
    assert {r.role for r in (c.node[n].replica for n in c.node)} >= {Role.LEADER}


# --- restarts (rule 7) ------------------------------------------------------------------------------------


def test_restarted_leader_never_leads_its_old_epoch_again() -> None:
    c = Cluster()
    leader = c.bootstrap()
    c.write(leader, b"x")
    c.node[leader].crash(keep_unsynced=True)
    c.node[leader].restart()
    c.grant_leases(leader)
    replica = c.node[leader].replica
    assert replica.role is Role.FENCED
    assert "lease" in replica.fence_reason or "epoch" in replica.fence_reason
    # even with the lease id it was elected under, its log already holds epoch 1
    stale = c.config()
    replica._lease_id = stale.leader_lease
    replica.on_config(stale.replace(version=stale.version + 100), c.now)
    assert replica.role is Role.FENCED and "not newer" in replica.fence_reason


def test_unclean_restart_refuses_leadership_leaves_the_isr_and_rejoins_caught_up() -> None:
    c = Cluster()
    leader = c.bootstrap()
    for i in range(3):
        c.write(leader, b"r%d" % i)
    c.settle()
    n3 = c.node["n3"]
    n3.disk = n3.disk[:2]  # its disk lied: acknowledged records are gone
    n3.synced = 2
    n3.crash()
    n3.restart(unclean=True)
    c.grant_leases("n3")
    assert n3.replica.role is Role.CATCHING_UP and n3.replica.unclean
    c.settle()
    c.advance(100)
    c.settle()
    # the leader removed it from the ISR on seeing it unclean, then re-added it caught up
    shrinks = [p for p in c.node[leader].proposals if "n3" not in p.config.isr]
    assert shrinks
    assert not n3.replica.unclean
    assert c.config().isr == ("n1", "n2", "n3")
    assert n3.disk == c.node[leader].disk


def test_unclean_replica_named_leader_steps_down_through_the_coordinator() -> None:
    c = Cluster()
    c.bootstrap()
    n1 = c.node["n1"]
    n1.crash()
    n1.restart(unclean=True)
    c.grant_leases("n1")
    config = c.config()
    forced = config.replace(
        leader="n1", leader_lease=n1.lease_id or 0, epoch=config.epoch + 1, isr=config.replicas
    )
    assert c.coord.cas_partition(config.version, forced).ok
    c.broadcast_config()
    step_down = n1.proposals[-1]
    assert step_down.config.leader is None and "n1" not in step_down.config.isr
    assert c.config().leader is None and c.config().epoch == forced.epoch + 1
    assert n1.replica.role is not Role.LEADER


def test_new_empty_replica_catches_up_before_joining_the_isr() -> None:
    c = Cluster()
    c.down.add("n3")
    c.grant_leases("n1", "n2")
    config = c.config()
    two = config.replace(isr=("n1", "n2"))
    assert c.coord.cas_partition(config.version, two).ok
    assert c.elect().leader == "n1"
    c.settle()
    for i in range(20):
        c.write("n1", b"r%d" % i)
    c.settle()
    n3 = c.node["n3"]
    n3.restart()
    assert n3.replica.role is Role.CATCHING_UP
    request = c.write("n1", b"while catching up")
    c.settle(sync=("n1", "n2"))  # n3 is not in the ISR: it does not hold commits back
    reply = c.reply("n1", request)
    assert reply is not None and reply.ok
    c.settle()
    c.advance(100)
    assert c.config().isr == ("n1", "n2", "n3")
    assert n3.replica.role is Role.FOLLOWER
    assert n3.disk == c.node["n1"].disk


# --- misc ----------------------------------------------------------------------------------------------


def test_not_a_replica_is_fenced() -> None:
    replica = Replica("n9", PARTITION, settings=SETTINGS)
    config = PartitionConfig(partition=PARTITION, replicas=("n1",), isr=("n1",), version=1)
    replica.on_config(config, 0)
    assert replica.role is Role.FENCED


def test_persistence_completion_of_a_truncated_log_is_ignored() -> None:
    replica = Replica("n2", PARTITION, settings=SETTINGS, recovered=[epoch_start(0, 0, 1)])
    out: list = []
    replica._truncate(0, out)
    assert replica.on_persisted(1, 0, 0) == []
    assert replica.durable_end == 0


def test_apply_effects_cover_the_commit_point_once() -> None:
    c = Cluster()
    leader = c.bootstrap()
    c.write(leader, b"a")
    c.settle()
    c.write(leader, b"b")
    c.settle()
    assert c.node["n3"].payloads == [b"a", b"b"]


def test_message_codec_round_trips() -> None:
    from conveyor.replication import decode, encode

    messages: list[Message] = [
        fetch("n2", epoch=3),
        FetchResponse(
            partition=PARTITION,
            epoch=3,
            leader="n1",
            incarnation=2,
            fetch_id=7,
            fetch_offset=4,
            last_epoch=2,
            status=FetchStatus.DIVERGING,
            commit=3,
            log_end=9,
            history=((1, 0), (3, 5)),
        ),
    ]
    for message in messages:
        assert decode(encode(message)) == message


def test_committed_records_leave_memory_and_are_read_back_for_a_new_follower() -> None:
    c = Cluster()
    leader = c.bootstrap()
    for i in range(10):
        c.write(leader, f"m{i}".encode())
    c.settle()
    core = c.node[leader].replica
    assert core.commit == 11
    core.forget_below(100)  # only committed records may go: capped at the commit point
    assert core.memory_base == 11
    assert [r.offset for r in core.records(0, 11)] == list(range(11))  # read from "disk"
    # n3 loses its disk and comes back empty: it catches up from the leader's storage
    n3 = c.node["n3"]
    n3.crash()
    n3.disk.clear()
    n3.synced = 0
    n3.restart()
    c.settle()
    c.write(leader, b"after")
    c.settle()
    assert n3.disk == c.node[leader].disk
    assert n3.replica.commit == c.node[leader].replica.commit == 12


def test_a_replica_can_start_from_a_window_of_its_log() -> None:
    from conveyor.replication import EpochHistory, LogRecord, Replica

    disk = [epoch_start(0, 1, 1)] + [LogRecord(i, 1, 1, f"m{i}".encode()) for i in range(1, 8)]
    history = EpochHistory.from_records(disk)
    core = Replica(
        "n1",
        PARTITION,
        settings=SETTINGS,
        recovered=disk[5:],
        recovered_base=5,
        history=history,
        read_old=lambda start, end: disk[start:end],
        applied=5,
    )
    assert core.log_end == 8 and core.memory_base == 5 and core.commit == 5
    assert core.records(3, 6) == disk[3:6]
    assert core.history() == history.entries()
