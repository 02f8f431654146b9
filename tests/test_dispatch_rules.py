"""The pure billing rules: which smart-slot half-hours are off-peak for the house, and why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from iops.core.dispatch_rules import (
    BillingRules,
    DispatchData,
    PlannedDispatch,
    allowance_day,
    decide_dispatches,
    resolve_rules,
)
from iops.core.tariff import Slot

LONDON = ZoneInfo("Europe/London")
CORE = (time(23, 30), time(5, 30))
CAR, VAN = "car-1", "van-2"
PLANNED = BillingRules(trust="planned", allowance=None)
STARTED = BillingRules(trust="started", allowance=None)
HALF_HOUR = timedelta(minutes=30)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def slot(start: str, end: str) -> Slot:
    return Slot(utc(start), utc(end))


def planned(start: str, end: str, device: str = CAR) -> PlannedDispatch:
    return PlannedDispatch(device, slot(start, end))


def cheap_starts(decision_cheap: Sequence[Slot]) -> list[str]:
    return [s.start.strftime("%d %H:%M") for s in decision_cheap]


def decide(
    data: DispatchData,
    rules: BillingRules,
    now: str,
    remembered: Mapping[str, tuple[datetime, ...]] | None = None,
) -> tuple[list[str], dict[tuple[date, int], str], dict[str, tuple[datetime, ...]]]:
    decision = decide_dispatches(data, rules, remembered or {}, utc(now), "Europe/London", CORE)
    return cheap_starts(decision.cheap), dict(decision.reasons), dict(decision.started)


def key(text: str) -> tuple[date, int]:
    moment = utc(text).astimezone(LONDON)
    return moment.date(), moment.hour * 2 + moment.minute // 30


# ---- which rules apply ---------------------------------------------------------------------


def test_rules_follow_the_tariff_code_unless_set() -> None:
    smb, old = "E-1R-IOG-SMB-TOU-25-12-12-H", "E-1R-INTELLI-VAR-24-10-29-A"
    assert resolve_rules("auto", None, smb) == BillingRules("started", 12, smb)
    assert resolve_rules("auto", None, old) == BillingRules("planned", None, old)
    assert resolve_rules("auto", None, None) == BillingRules("planned", None, None)  # nothing known: as before
    assert resolve_rules("planned", None, smb) == BillingRules("planned", 12, smb)
    assert resolve_rules("started", 0, smb) == BillingRules("started", None, smb)  # 0 = no limit
    assert resolve_rules("auto", 8, old) == BillingRules("planned", 8, old)


def test_allowance_day_runs_noon_to_noon_local() -> None:
    assert allowance_day(utc("2026-11-24T11:59:00"), LONDON) == date(2026, 11, 23)
    assert allowance_day(utc("2026-11-24T12:00:00"), LONDON) == date(2026, 11, 24)
    # In summer, local noon is 11:00 UTC.
    assert allowance_day(utc("2026-07-01T11:00:00"), LONDON) == date(2026, 7, 1)
    assert allowance_day(utc("2026-07-01T10:59:00"), LONDON) == date(2026, 6, 30)


# ---- trust = planned: the original IOG ----------------------------------------------------------


def test_planned_trust_makes_every_touched_half_hour_cheap() -> None:
    data = DispatchData(planned=(planned("2026-11-24T14:10:00", "2026-11-24T14:40:00"),))
    cheap, reasons, started = decide(data, PLANNED, "2026-11-24T12:00:00")
    assert cheap == ["24 14:00", "24 14:30"]
    assert reasons == {key("2026-11-24T14:00:00"): "planned", key("2026-11-24T14:30:00"): "planned"}
    assert started == {}  # nothing to remember when the plan is trusted


def test_core_window_half_hours_get_no_reason_and_need_no_slot() -> None:
    data = DispatchData(planned=(planned("2026-11-25T01:00:00", "2026-11-25T06:00:00"),))
    cheap, reasons, _ = decide(data, PLANNED, "2026-11-24T12:00:00")
    assert cheap == ["25 05:30"]  # the rest is the fixed window, always off-peak anyway
    assert reasons == {key("2026-11-25T05:30:00"): "planned"}


# ---- trust = started ------------------------------------------------------------------------------


def test_started_trust_waits_for_the_half_hour_to_begin_with_the_car_under_smart_control() -> None:
    data = DispatchData(
        planned=(planned("2026-11-24T14:00:00", "2026-11-24T15:00:00"),),
        device_states={CAR: "SMART_CONTROL_IN_PROGRESS"},
    )
    cheap, reasons, started = decide(data, STARTED, "2026-11-24T13:50:00")
    assert cheap == []
    assert set(reasons.values()) == {"not-started"}
    assert started == {}
    cheap, reasons, started = decide(data, STARTED, "2026-11-24T14:05:00")
    assert cheap == ["24 14:00"]
    assert reasons[key("2026-11-24T14:00:00")] == "started"
    assert reasons[key("2026-11-24T14:30:00")] == "not-started"  # later in the same dispatch: waits
    assert started == {CAR: (utc("2026-11-24T14:00:00"),)}


def test_an_unplugged_car_gets_no_cheap_half_hour() -> None:
    data = DispatchData(
        planned=(planned("2026-11-24T14:00:00", "2026-11-24T15:00:00"),),
        device_states={CAR: "SMART_CONTROL_CAPABLE"},
    )
    cheap, reasons, started = decide(data, STARTED, "2026-11-24T14:05:00")
    assert cheap == [] and started == {}
    assert reasons[key("2026-11-24T14:00:00")] == "not-started"


def test_a_started_half_hour_stays_started_and_past_ones_wait_for_completed() -> None:
    data = DispatchData(
        planned=(planned("2026-11-24T14:00:00", "2026-11-24T15:00:00"),),
        device_states={CAR: "SMART_CONTROL_CAPABLE"},  # the car stopped drawing at 14:10
    )
    seen = {CAR: (utc("2026-11-24T14:00:00"),)}
    cheap, _, started = decide(data, STARTED, "2026-11-24T14:20:00", seen)
    assert cheap == ["24 14:00"] and started == seen
    # After the half-hour: peak until Octopus lists it as completed.
    cheap, reasons, _ = decide(data, STARTED, "2026-11-24T14:40:00", seen)
    assert cheap == []
    assert reasons[key("2026-11-24T14:00:00")] == "awaiting"
    done = DispatchData(planned=data.planned, completed=(slot("2026-11-24T14:00:00", "2026-11-24T14:30:00"),))
    cheap, reasons, _ = decide(done, STARTED, "2026-11-24T14:40:00", seen)
    assert cheap == ["24 14:00"]
    assert reasons[key("2026-11-24T14:00:00")] == "completed"


def test_a_started_half_hour_survives_its_dispatch_leaving_the_plan() -> None:
    # The car finished early and Octopus dropped the dispatch; the half-hour was still charged in.
    seen = {CAR: (utc("2026-11-24T14:00:00"),)}
    cheap, reasons, started = decide(DispatchData(), STARTED, "2026-11-24T14:20:00", seen)
    assert cheap == ["24 14:00"] and started == seen
    assert reasons == {key("2026-11-24T14:00:00"): "started"}


def test_past_planned_half_hours_count_only_from_completed_dispatches() -> None:
    data = DispatchData(
        planned=(planned("2026-11-24T10:00:00", "2026-11-24T11:00:00"),),
        completed=(slot("2026-11-24T10:30:00", "2026-11-24T11:00:00"),),
    )
    cheap, reasons, _ = decide(data, STARTED, "2026-11-24T12:00:00")
    assert cheap == ["24 10:30"]
    assert reasons[key("2026-11-24T10:00:00")] == "not-started"


def test_remembered_starts_are_dropped_after_a_day_and_a_half() -> None:
    old = {CAR: (utc("2026-11-22T14:00:00"), utc("2026-11-24T10:00:00"))}
    _, _, started = decide(DispatchData(), STARTED, "2026-11-24T12:00:00", old)
    assert started == {CAR: (utc("2026-11-24T10:00:00"),)}


# ---- the car allowance ---------------------------------------------------------------------------


def test_fourteen_half_hours_in_one_allowance_day_leave_the_last_two_peak() -> None:
    data = DispatchData(
        planned=(
            planned("2026-11-24T14:00:00", "2026-11-24T17:00:00"),  # 6 half-hours
            planned("2026-11-25T00:00:00", "2026-11-25T02:00:00"),  # 4 in the core window: they count too
            planned("2026-11-25T06:00:00", "2026-11-25T08:00:00"),  # 4 more: 11th to 14th
            planned("2026-11-25T13:00:00", "2026-11-25T13:30:00"),  # the next allowance day
        )
    )
    rules = BillingRules(trust="planned", allowance=12)
    cheap, reasons, _ = decide(data, rules, "2026-11-24T12:00:00")
    assert cheap == [
        *(f"24 {h}" for h in ("14:00", "14:30", "15:00", "15:30", "16:00", "16:30")),
        "25 06:00",
        "25 06:30",
        "25 13:00",
    ]
    assert reasons[key("2026-11-25T07:00:00")] == "over-allowance"
    assert reasons[key("2026-11-25T07:30:00")] == "over-allowance"
    assert key("2026-11-25T01:00:00") not in reasons  # the fixed window stays off-peak, unexplained


def test_started_half_hours_past_the_allowance_stay_peak() -> None:
    completed = (
        slot("2026-11-24T12:00:00", "2026-11-24T17:30:00"),  # 11 half-hours already charged
        slot("2026-11-25T06:00:00", "2026-11-25T06:30:00"),  # the 12th
    )
    data = DispatchData(
        planned=(planned("2026-11-25T07:00:00", "2026-11-25T08:00:00"),),
        completed=completed,
        device_states={CAR: "SMART_CONTROL_IN_PROGRESS"},
    )
    rules = BillingRules(trust="started", allowance=12)
    cheap, reasons, started = decide(data, rules, "2026-11-25T07:05:00")
    assert "25 07:00" not in cheap and "25 06:00" in cheap
    assert reasons[key("2026-11-25T07:00:00")] == "over-allowance"
    assert started == {CAR: (utc("2026-11-25T07:00:00"),)}  # it did start, and used allowance


def test_each_ev_has_its_own_allowance() -> None:
    data = DispatchData(
        planned=(
            planned("2026-11-24T13:00:00", "2026-11-24T20:00:00", CAR),  # 14 half-hours
            planned("2026-11-24T19:00:00", "2026-11-24T20:00:00", VAN),  # 2, where the car is over
        ),
        device_states={CAR: "SMART_CONTROL_CAPABLE", VAN: "SMART_CONTROL_CAPABLE"},
    )
    rules = BillingRules(trust="planned", allowance=12)
    cheap, reasons, _ = decide(data, rules, "2026-11-24T12:00:00")
    # The car's 13th and 14th half-hours are covered by the van, which is within its own allowance.
    assert cheap[-2:] == ["24 19:00", "24 19:30"] and len(cheap) == 14
    only_car = DispatchData(planned=data.planned[:1], device_states=data.device_states)
    cheap, reasons, _ = decide(only_car, rules, "2026-11-24T12:00:00")
    assert len(cheap) == 12 and reasons[key("2026-11-24T19:30:00")] == "over-allowance"


def test_completed_dispatches_are_credited_to_the_car_that_planned_them() -> None:
    data = DispatchData(
        planned=(planned("2026-11-24T12:00:00", "2026-11-24T18:00:00", CAR),),  # 12 half-hours
        completed=(slot("2026-11-24T17:30:00", "2026-11-24T18:00:00"),),
        device_states={CAR: "SMART_CONTROL_CAPABLE", VAN: "SMART_CONTROL_CAPABLE"},
    )
    rules = BillingRules(trust="planned", allowance=11)
    cheap, reasons, _ = decide(data, rules, "2026-11-24T18:30:00")
    # The completed 17:30 is the car's 12th half-hour of the day, not a free one for the van.
    assert reasons[key("2026-11-24T17:30:00")] == "over-allowance"
    assert "24 17:30" not in cheap and len(cheap) == 11


# ---- properties ------------------------------------------------------------------------------

BASE = datetime(2026, 3, 27, 0, 0, tzinfo=UTC)  # spans the spring clock change (29 March)
minutes = st.integers(min_value=0, max_value=5 * 24 * 60)
spans = st.tuples(minutes, st.integers(min_value=1, max_value=8 * 60))
devices = st.sampled_from([CAR, VAN])


def to_slot(span: tuple[int, int]) -> Slot:
    start = BASE + timedelta(minutes=span[0])
    return Slot(start, start + timedelta(minutes=span[1]))


def oracle_half_hours(slot_: Slot) -> set[datetime]:
    """Half-hours [h, h+30) that overlap the slot, found by scanning absolute time."""
    out = set()
    cursor = BASE - timedelta(days=1)
    while cursor < slot_.end:
        if cursor < slot_.end and cursor + HALF_HOUR > slot_.start:
            out.add(cursor)
        cursor += HALF_HOUR
    return out


def in_core(moment: datetime) -> bool:
    local = moment.astimezone(LONDON)
    minute = local.hour * 60 + local.minute
    return minute >= 23 * 60 + 30 or minute < 5 * 60 + 30


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(devices, spans), max_size=5), minutes)
def test_planned_trust_without_limit_is_every_overlapped_half_hour_outside_the_core(
    dispatches: list[tuple[str, tuple[int, int]]], now_minute: int
) -> None:
    now = BASE + timedelta(minutes=now_minute)
    data = DispatchData(planned=tuple(PlannedDispatch(d, to_slot(s)) for d, s in dispatches))
    decision = decide_dispatches(data, PLANNED, {}, now, "Europe/London", CORE)
    # Only two days back to nine ahead can matter (the week in the tariff, the allowance's day).
    window = [
        (max(x.start, now - timedelta(days=2)), min(x.end, now + timedelta(days=9)))
        for x in map(to_slot, (s for _, s in dispatches))
    ]
    expected = {h for a, b in window if a < b for h in oracle_half_hours(Slot(a, b)) if not in_core(h)}
    assert {s.start for s in decision.cheap} == expected
    assert all(s.end - s.start == HALF_HOUR for s in decision.cheap)


@settings(max_examples=60, deadline=None)
@given(st.lists(spans, max_size=6), st.integers(min_value=0, max_value=14))
def test_allowance_keeps_exactly_the_first_half_hours_of_each_allowance_day(
    spans_: list[tuple[int, int]], allowance: int
) -> None:
    data = DispatchData(planned=tuple(PlannedDispatch(CAR, to_slot(s)) for s in spans_))
    rules = BillingRules(trust="planned", allowance=allowance or None)
    decision = decide_dispatches(data, rules, {}, BASE, "Europe/London", CORE)
    charged = sorted({h for s in spans_ for h in oracle_half_hours(to_slot(s))})
    kept: set[datetime] = set()
    per_day: dict[date, int] = {}
    for h in charged:  # the oracle: count in time order per 12:00-12:00 local day, core included
        local = h.astimezone(LONDON)
        day = local.date() if local.hour >= 12 else local.date() - timedelta(days=1)
        per_day[day] = per_day.get(day, 0) + 1
        if not allowance or per_day[day] <= allowance:
            kept.add(h)
    assert {s.start for s in decision.cheap} == {h for h in kept if not in_core(h)}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(devices, spans), max_size=4),
    st.lists(spans, max_size=3),
    minutes,
    st.dictionaries(devices, st.sampled_from(["SMART_CONTROL_IN_PROGRESS", "SMART_CONTROL_CAPABLE", "BOOSTING"])),
)
def test_started_trust_never_makes_an_unconfirmed_half_hour_cheap(
    dispatches: list[tuple[str, tuple[int, int]]],
    completed: list[tuple[int, int]],
    now_minute: int,
    states: dict[str, str],
) -> None:
    now = BASE + timedelta(minutes=now_minute)
    data = DispatchData(
        planned=tuple(PlannedDispatch(d, to_slot(s)) for d, s in dispatches),
        completed=tuple(to_slot(s) for s in completed),
        device_states=states,
    )
    decision = decide_dispatches(data, STARTED, {}, now, "Europe/London", CORE)
    done = {h for s in completed for h in oracle_half_hours(to_slot(s))}
    current = max(h for h in oracle_half_hours(Slot(now, now + timedelta(seconds=1))))
    running = [
        d
        for d, s in dispatches
        if to_slot(s).start <= now < to_slot(s).end and states.get(d) == "SMART_CONTROL_IN_PROGRESS"
    ]
    for cheap in decision.cheap:
        # Cheap only if Octopus completed it, or it is the current half-hour of a dispatch under way.
        assert cheap.start in done or (cheap.start == current and running), cheap
        assert not in_core(cheap.start)
    for _, half_hour in decision.reasons:
        assert 11 <= half_hour < 47, half_hour  # reasons are never given inside 23:30-05:30


def test_tariff_families_of_2026() -> None:
    from iops.core.dispatch_rules import tariff_family

    def capped(code: str) -> tuple[bool, bool]:
        family = tariff_family(code)
        assert family is not None
        return family.capped, family.known

    assert capped("E-1R-IOG-SMB-VAR-24-10-29-H") == (True, True)
    assert capped("E-1R-IOG-SMB-TOU-25-12-12-A") == (True, True)
    assert capped("E-1R-IOG-SMB-FIX-6M-26-03-05-C") == (True, True)
    assert capped("E-1R-IOG-SMB-FIX-12M-26-09-18-N") == (True, True)
    assert capped("E-1R-INTELLI-FIX-OEV-26-08-22-H") == (True, True)
    assert capped("E-1R-INTELLI-VAR-24-10-29-A") == (False, True)
    assert capped("E-1R-INTELLI-BB-VAR-23-03-01-A") == (False, True)
    assert capped("E-1R-INTELLI-FIX-12M-24-01-01-A") == (False, True)
    assert capped("E-1R-IOG-KDP-VAR-25-04-10-B") == (False, True)
    assert capped("E-1R-IOG-SMB-NEW-27-01-01-A") == (True, False)
    assert capped("E-1R-AGILE-24-10-01-A") == (False, False)
    assert tariff_family(None) is None
