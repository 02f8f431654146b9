"""The call policy, decided without HTTP: when Octopus is polled, and what Tesla gets each run."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from iops.core.call_policy import (
    OctopusCalls,
    TeslaCalls,
    after_octopus_failure,
    after_poll,
    after_post,
    after_tesla_failure,
    after_verify,
    plan_octopus,
    plan_tesla,
    with_pending,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TARIFF = {"name": "ours"}
OTHER = {"name": "newer"}


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def ts(n: float) -> float:
    return minute(n).timestamp()


# ---- Octopus ------------------------------------------------------------------------------------


def test_quiet_minutes_poll_every_poll_minutes() -> None:
    calls = after_poll(OctopusCalls(), minute(0), 1, [], [], smart_control=False)
    assert [plan_octopus(calls, minute(n), 3).action for n in (1, 2, 3)] == ["idle", "idle", "poll"]
    assert plan_octopus(calls, minute(4), 5).action == "idle"
    assert plan_octopus(calls, minute(1), 3, force=True).action == "poll"


def test_busy_times_poll_every_minute() -> None:
    base = after_poll(OctopusCalls(), minute(0), 1, [], [], smart_control=False)
    smart = replace(base, smart_control=True)
    assert plan_octopus(smart, minute(1), 3).reason == "a car is under smart control"
    under_way = replace(base, dispatches=((ts(-10), ts(30)),))
    assert plan_octopus(under_way, minute(1), 3).reason == "a dispatch is under way"
    starting = replace(base, events=((ts(3.5), ts(60)),))  # a Power Up begins within poll_minutes
    assert plan_octopus(starting, minute(1), 3).action == "poll"
    assert plan_octopus(starting, minute(0.2), 3).action == "idle"  # 3.3 minutes away: not yet
    ending = replace(base, events=((ts(-60), ts(2)),))
    assert plan_octopus(ending, minute(1), 3).action == "poll"


def test_the_hourly_budget_keeps_a_reserve_and_stretches_quiet_polls_by_at_most_a_minute() -> None:
    calls = OctopusCalls(polled_at=ts(-3), requests=tuple(ts(-50 + i) for i in range(19)))
    plan = plan_octopus(calls, minute(0), 3)
    assert plan.action == "idle" and "19 requests" in plan.reason
    assert plan_octopus(calls, minute(1), 3).action == "poll"  # four minutes since the last poll
    roomy = replace(calls, requests=calls.requests[1:])
    assert plan_octopus(roomy, minute(0), 3).action == "poll"


def test_a_request_exactly_an_hour_old_no_longer_counts_against_the_budget() -> None:
    """The budget is the last hour, open at its far end: 19 requests of which the oldest is exactly
    60 minutes old leave 18 in the hour, so a due poll goes ahead."""
    oldest = ts(-60)
    calls = OctopusCalls(polled_at=ts(-3), requests=(oldest, *(ts(-40 + i) for i in range(18))))
    assert plan_octopus(calls, minute(0), 3).action == "poll"
    a_second_younger = replace(calls, requests=(oldest + 1, *calls.requests[1:]))
    assert plan_octopus(a_second_younger, minute(0), 3).action == "idle"


def test_rate_limit_backs_off_5_10_20_30_minutes() -> None:
    calls = OctopusCalls()
    untils = []
    for n in range(5):
        calls = after_octopus_failure(calls, minute(n * 100), 1, rate_limited=True)
        untils.append((calls.backoff_until - ts(n * 100)) / 60)
        assert plan_octopus(calls, minute(n * 100 + 1), 3, force=True).action == "wait"
    assert untils == [5, 10, 20, 30, 30]
    assert after_poll(calls, minute(999), 1, [], [], smart_control=False).backoff_step == -1


def test_a_poll_remembers_what_matters_for_the_next_day() -> None:
    calls = after_poll(
        OctopusCalls(requests=(ts(-70), ts(-30))),
        minute(0),
        2,
        [(ts(-60), ts(-30)), (ts(60), ts(90)), (ts(60 * 48), ts(60 * 49))],
        [(ts(10), ts(20))],
        smart_control=True,
    )
    assert calls.requests == (ts(-30), ts(0), ts(0))  # the hour's requests only
    assert calls.dispatches == ((ts(60), ts(90)),)  # past and distant ones dropped
    assert calls.events == ((ts(10), ts(20)),) and calls.smart_control


# ---- Tesla --------------------------------------------------------------------------------------


def test_a_new_schedule_goes_out_at_once_then_posts_keep_4_minutes_apart() -> None:
    calls = TeslaCalls(site_id="1")
    plan = plan_tesla(calls, ("a", TARIFF), minute(0), 1)
    assert (plan.action, plan.digest) == ("post", "a")
    calls = after_post(calls, minute(0), "a", TARIFF)
    waiting = plan_tesla(calls, ("b", OTHER), minute(2), 1)
    assert waiting.action == "wait" and waiting.until == ts(4)
    calls = with_pending(calls, ("b", OTHER))
    # Between polls (nothing built), the waiting schedule still goes out when allowed.
    assert plan_tesla(calls, None, minute(3.9), 1).action == "wait"
    later = plan_tesla(calls, None, minute(4), 1)
    assert (later.action, later.digest, later.tariff) == ("post", "b", OTHER)


def test_read_back_waits_5_minutes_and_is_never_in_the_same_run() -> None:
    calls = after_post(TeslaCalls(), minute(0), "a", TARIFF)
    assert [plan_tesla(calls, ("a", TARIFF), minute(n), 1).action for n in (0, 1, 4.9)] == ["nothing"] * 3
    assert plan_tesla(calls, None, minute(5), 1).action == "verify"
    calls = after_verify(calls, minute(5), matches=True)
    assert plan_tesla(calls, None, minute(6), 1).action == "nothing"
    assert plan_tesla(calls, None, minute(65), 1).reason == "hourly check"


def test_a_mismatch_reposts_after_5_15_60_minutes_then_hourly() -> None:
    calls = after_post(TeslaCalls(), minute(0), "a", TARIFF)
    delays = []
    now = 5.0
    for _ in range(5):
        calls = after_verify(calls, minute(now), matches=False)
        delays.append((calls.repost_at - ts(now)) / 60)
        assert plan_tesla(calls, None, minute(now + delays[-1] - 0.5), 1).action == "nothing"
        plan = plan_tesla(calls, None, minute(now + delays[-1]), 1)
        assert (plan.action, plan.tariff) == ("post", TARIFF)
        calls = after_post(calls, minute(now + delays[-1]), "a", TARIFF)
        now += delays[-1] + 5
    assert delays == [5, 15, 60, 60, 60]
    assert after_verify(calls, minute(now), matches=True).mismatch_step == -1


def test_429_is_honoured_with_retry_after_capped_at_an_hour() -> None:
    calls = after_post(TeslaCalls(), minute(0), "a", TARIFF)
    limited = after_tesla_failure(calls, minute(5), 600, rate_limited=True)
    assert plan_tesla(limited, ("b", OTHER), minute(14), 1).action == "wait"
    assert plan_tesla(limited, ("b", OTHER), minute(15), 1).action == "post"
    capped = after_tesla_failure(calls, minute(5), 86400, rate_limited=True)
    assert capped.backoff_until == ts(65)
    unknown = after_tesla_failure(calls, minute(5), None, rate_limited=True)
    assert unknown.backoff_until == ts(6)


def test_outages_back_off_1_2_4_up_to_30_minutes() -> None:
    calls = TeslaCalls()
    waits = []
    for n in range(8):
        calls = after_tesla_failure(calls, minute(n * 100), None, rate_limited=False)
        waits.append((calls.backoff_until - ts(n * 100)) / 60)
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]
    assert after_post(calls, minute(999), "a", TARIFF).backoff_step == -1


def test_nothing_to_do_while_backing_off_is_not_a_wait() -> None:
    calls = after_tesla_failure(after_post(TeslaCalls(), minute(0), "a", TARIFF), minute(1), 60, rate_limited=True)
    calls = after_verify(calls, minute(1), matches=True)
    assert plan_tesla(calls, ("a", TARIFF), minute(1.5), 1).action == "nothing"


# ---- a day of runs through the pure functions -------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    changes=st.lists(st.integers(min_value=0, max_value=1439), max_size=12),
    tesla_faults=st.dictionaries(st.integers(min_value=0, max_value=1439), st.sampled_from(["429", "500"])),
    mismatches=st.sets(st.integers(min_value=0, max_value=1439), max_size=6),
)
def test_a_simulated_day_keeps_every_promise(
    changes: list[int], tesla_faults: dict[int, str], mismatches: set[int]
) -> None:
    """Minute by minute: posts at least 4 minutes apart, no Tesla request during a back-off, every
    schedule change out at the first allowed run, and a quiet hour's polls within the budget."""
    octopus, tesla = OctopusCalls(), TeslaCalls()
    version, tesla_requests, polls = 0, [], []
    posts: list[tuple[int, int]] = []
    blocked_until, last_post = 0.0, -1e9
    for m in range(1440):
        now = minute(m)
        version += changes.count(m)
        built = None
        if plan_octopus(octopus, now, 3).action == "poll":
            polls.append(m)
            octopus = after_poll(octopus, now, 1, [], [], smart_control=False)
            built = (f"v{version}", {"v": version})
        plan = plan_tesla(tesla, built, now, 1)
        tesla = with_pending(tesla, built)
        if plan.action in ("post", "verify"):
            assert ts(m) >= blocked_until  # never during a back-off
            tesla_requests.append(m)
            fault = tesla_faults.get(m)
            if fault:
                tesla = after_tesla_failure(tesla, now, 600 if fault == "429" else None, rate_limited=fault == "429")
                blocked_until = tesla.backoff_until
                continue
            if plan.action == "post":
                assert ts(m) - last_post >= 240  # four minutes apart
                posts.append((m, int(plan.digest[1:])))
                last_post = ts(m)
                tesla = after_post(tesla, now, plan.digest, plan.tariff or {})
            else:
                tesla = after_verify(tesla, now, matches=m not in mismatches)
    assert len(polls) <= 20 * 24 + 1  # a quiet day: about 20 an hour on average (the budget)
    assert all(b - a <= 4 for a, b in itertools.pairwise(polls))  # never more than 4 minutes apart
    troubled = set(tesla_faults) | mismatches
    for change in sorted(set(changes)):
        if change > 1430 or any(change - 20 <= t <= change + 8 for t in troubled):
            continue
        wanted = sum(c <= change for c in changes)
        delivered = [m for m, v in posts if m >= change and v >= wanted]
        assert delivered and delivered[0] - change <= 3 + 4, (change, posts)
