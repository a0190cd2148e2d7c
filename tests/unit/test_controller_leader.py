"""Leader election's pure part: given a Lease, the time and an identity, what one replica does.

Semantics from client-go tools/leaderelection/leaderelection.go (tryAcquireOrRenew)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.controller.leader import (
    Action,
    LeaseState,
    decide,
    micro_time,
    parse_time,
    released,
)

NOW = 1_790_000_000.25
DURATION = 15


def held(holder: str | None, renewed: float | None, *, duration: int | None = DURATION,
         transitions: int = 3) -> LeaseState:
    return LeaseState(holder=holder, duration=duration, renew_time=renewed,
                      acquire_time=renewed, transitions=transitions)


def test_no_lease_creates_one_held_by_us() -> None:
    election = decide(None, NOW, "a", DURATION)
    assert election.action is Action.CREATE and election.leading
    assert election.spec == {"holderIdentity": "a", "leaseDurationSeconds": 15,
                             "acquireTime": micro_time(NOW), "renewTime": micro_time(NOW),
                             "leaseTransitions": 0}


def test_our_lease_is_renewed_keeping_the_term() -> None:
    lease = held("a", NOW - 5)
    election = decide(lease, NOW, "a", DURATION)
    assert election.action is Action.RENEW
    assert election.spec is not None
    assert election.spec["renewTime"] == micro_time(NOW)
    assert election.spec["acquireTime"] == micro_time(NOW - 5)
    assert election.spec["leaseTransitions"] == 3


def test_a_fresh_lease_of_another_holder_means_standby() -> None:
    election = decide(held("b", NOW - 14.9), NOW, "a", DURATION)
    assert election.action is Action.STANDBY and not election.leading and election.spec is None


def test_an_expired_lease_is_taken_over_as_a_new_term() -> None:
    election = decide(held("b", NOW - 15.1), NOW, "a", DURATION)
    assert election.action is Action.ACQUIRE and election.spec is not None
    assert election.spec["holderIdentity"] == "a"
    assert election.spec["acquireTime"] == micro_time(NOW)
    assert election.spec["leaseTransitions"] == 4


def test_the_lease_duration_written_by_the_holder_counts() -> None:
    # b renewed 20 s ago with a 30 s Lease: still b's, whatever our own duration.
    assert decide(held("b", NOW - 20, duration=30), NOW, "a", DURATION).action is Action.STANDBY
    # A Lease that does not say how long: ours is assumed.
    assert decide(held("b", NOW - 20, duration=None), NOW, "a", DURATION).action is \
        Action.ACQUIRE


def test_a_released_lease_is_free_at_once() -> None:
    spec = released(held("a", NOW - 1), "a", NOW)
    assert spec is not None and spec["holderIdentity"] is None
    after = LeaseState.from_object({"spec": spec})
    assert decide(after, NOW + 0.1, "b", DURATION).action is Action.ACQUIRE
    assert released(held("b", NOW - 1), "a", NOW) is None  # not ours to release


def test_lease_state_reads_the_wire_form_and_tolerates_garbage() -> None:
    lease = {"spec": {"holderIdentity": "pod-1_abc", "leaseDurationSeconds": 15,
                      "renewTime": "2026-11-30T11:00:00.123456Z",
                      "acquireTime": "2026-11-30T10:00:00.000000Z", "leaseTransitions": 2}}
    state = LeaseState.from_object(lease)
    assert state.holder == "pod-1_abc" and state.duration == 15 and state.transitions == 2
    assert state.renew_time == parse_time("2026-11-30T11:00:00.123456+00:00")
    junk = LeaseState.from_object({"spec": {"holderIdentity": "x", "renewTime": "yesterday",
                                            "leaseDurationSeconds": "15",
                                            "leaseTransitions": -1}})
    assert junk.renew_time is None and junk.duration is None and junk.transitions == 0
    assert junk.expired(NOW, DURATION)  # an unreadable renewTime cannot keep a Lease


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_micro_time_round_trips_to_the_microsecond(ts: float) -> None:
    parsed = parse_time(micro_time(ts))
    assert parsed is not None and abs(parsed - ts) < 1e-5


identities = st.sampled_from(["a", "b", "c"])
leases = st.one_of(st.none(), st.builds(
    LeaseState, holder=st.one_of(st.none(), identities),
    duration=st.one_of(st.none(), st.integers(1, 120)),
    renew_time=st.one_of(st.none(), st.floats(NOW - 300, NOW + 5)),
    acquire_time=st.one_of(st.none(), st.floats(NOW - 600, NOW)),
    transitions=st.integers(0, 1000)))


@given(leases, identities, st.integers(2, 120))
def test_one_fresh_holder_at_most(lease: LeaseState | None, me: str, duration: int) -> None:
    """Never two leaders: while someone else's Lease is fresh, every other replica stands by;
    whoever leads writes itself as holder with a renewTime of now."""
    election = decide(lease, NOW, me, duration)
    someone_else_fresh = lease is not None and lease.holder not in (None, me) and \
        not lease.expired(NOW, duration)
    assert election.leading is not someone_else_fresh
    if election.spec is not None:
        assert election.spec["holderIdentity"] == me
        assert election.spec["renewTime"] == micro_time(NOW)
        assert election.spec["leaseDurationSeconds"] == duration
        previous = lease.transitions if lease is not None else 0
        # The transition count never goes down, and moves only when the holder changes.
        changed = lease is not None and lease.holder != me
        assert election.spec["leaseTransitions"] == previous + (1 if changed else 0)


@given(leases, st.integers(2, 120))
def test_a_written_lease_is_ours_to_renew_until_it_lapses(lease: LeaseState | None,
                                                          duration: int) -> None:
    """After our write, another replica stands by for the whole duration and not longer."""
    mine = decide(lease, NOW, "a", duration)
    if mine.spec is None:
        return
    state = LeaseState.from_object({"spec": mine.spec})
    assert decide(state, NOW + duration - 0.01, "b", duration).action is Action.STANDBY
    assert decide(state, NOW + duration + 0.01, "b", duration).action is Action.ACQUIRE
    assert decide(state, NOW + duration + 0.01, "a", duration).action is Action.RENEW
