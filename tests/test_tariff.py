"""The pure tariff builder: worked examples plus Hypothesis properties."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fakes import readback_form
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from iops.core.tariff import (
    OFF_PEAK,
    ON_PEAK,
    PARTIAL_PEAK,
    SUPER_OFF_PEAK,
    Rates,
    SavingSession,
    Slot,
    TariffInputs,
    build_tariff,
    expand_side,
    price_grid,
    tariff_digest,
    validate_tariff,
)

LONDON = ZoneInfo("Europe/London")
RATES = Rates(import_peak=0.30, import_off_peak=0.07, export_peak=0.15, export_off_peak=0.15)
CORE = (time(23, 30), time(5, 30))
NO_CORE = (time(0, 0), time(0, 0))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def slot(start: str, end: str) -> Slot:
    return Slot(utc(start), utc(end))


def build(
    now: datetime,
    *,
    dispatches: list[Slot] | None = None,
    free: list[Slot] | None = None,
    sessions: list[SavingSession] | None = None,
    core: tuple[time, time] = CORE,
    rates: Rates = RATES,
) -> dict[str, Any]:
    _, tariff = build_tariff(
        TariffInputs(
            now=now,
            time_zone="Europe/London",
            off_peak_start=core[0],
            off_peak_end=core[1],
            rates=rates,
            dispatches=dispatches or [],
            free_slots=free or [],
            saving_sessions=sessions or [],
        )
    )
    return tariff


def week_labels(tariff: dict[str, Any]) -> list[str]:
    """Each weekday as 48 letters: P peak, o off-peak, F free, S saving session."""
    grid = price_grid(tariff)
    assert grid is not None
    code = {ON_PEAK: "P", OFF_PEAK: "o", SUPER_OFF_PEAK: "F", PARTIAL_PEAK: "S"}
    return ["".join(code[grid[weekday * 48 + h][0]] for h in range(48)) for weekday in range(7)]


def labels(tariff: dict[str, Any], weekday: int) -> str:
    return week_labels(tariff)[weekday]


def day(*spans: tuple[str, str, str], base: str = "P") -> str:
    """Expected day letters: base everywhere, then each (from, to, letter) span painted on."""
    out = [base] * 48
    for start, end, letter in spans:
        a = int(start[:2]) * 2 + int(start[3:]) // 30
        b = int(end[:2]) * 2 + int(end[3:]) // 30 if end != "24:00" else 48
        out[a:b] = [letter] * (b - a)
    return "".join(out)


PLAIN_DAY = day(("00:00", "05:30", "o"), ("23:30", "24:00", "o"))
TUESDAY_NOON = utc("2026-11-24T12:00:00")  # weekday 1


# ---- worked examples ---------------------------------------------------------------------


def test_plain_week_is_three_merged_periods_with_all_six_integer_fields() -> None:
    tariff = build(TUESDAY_NOON)
    periods = tariff["seasons"]["Summer"]["tou_periods"]
    assert periods == {
        "OFF_PEAK": {
            "periods": [
                {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 0, "fromMinute": 0, "toHour": 5, "toMinute": 30},
                {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 23, "fromMinute": 30, "toHour": 0, "toMinute": 0},
            ]
        },
        "ON_PEAK": {
            "periods": [
                {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 5, "fromMinute": 30, "toHour": 23, "toMinute": 30}
            ]
        },
    }
    assert tariff["energy_charges"]["Summer"]["rates"] == {"OFF_PEAK": 0.07, "ON_PEAK": 0.3}
    assert tariff["seasons"]["Winter"] == {}
    assert tariff["currency"] == tariff["sell_tariff"]["currency"] == "GBP"
    assert tariff["code"] == "IOPS:IOG"


def test_monday_is_zero() -> None:
    monday = utc("2026-11-23T09:00:00")
    assert date(2026, 11, 23).weekday() == 0
    tariff = build(monday, dispatches=[slot("2026-11-23T14:00:00", "2026-11-23T14:30:00")])
    extra = [p for p in tariff["seasons"]["Summer"]["tou_periods"]["OFF_PEAK"]["periods"] if p["fromHour"] == 14]
    assert extra == [
        {"fromDayOfWeek": 0, "toDayOfWeek": 0, "fromHour": 14, "fromMinute": 0, "toHour": 14, "toMinute": 30}
    ]


def test_matches_the_constructed_example_in_the_reference() -> None:
    # tesla_tariff_api.md section 7: a Tuesday with one extra slot 14:00-15:00.
    tariff = build(TUESDAY_NOON, dispatches=[slot("2026-11-24T14:00:00", "2026-11-24T15:00:00")])
    on_peak = tariff["seasons"]["Summer"]["tou_periods"]["ON_PEAK"]["periods"]
    assert {
        (p["fromDayOfWeek"], p["toDayOfWeek"], p["fromHour"], p["fromMinute"], p["toHour"], p["toMinute"])
        for p in on_peak
    } == {(0, 0, 5, 30, 23, 30), (2, 6, 5, 30, 23, 30), (1, 1, 5, 30, 14, 0), (1, 1, 15, 0, 23, 30)}
    assert tariff["sell_tariff"]["energy_charges"]["Summer"]["rates"] == {"OFF_PEAK": 0.07, "ON_PEAK": 0.15}


def test_tomorrows_slot_does_not_make_todays_hour_cheap() -> None:
    tariff = build(TUESDAY_NOON, dispatches=[slot("2026-11-25T14:00:00", "2026-11-25T15:00:00")])
    assert labels(tariff, 1) == PLAIN_DAY
    assert labels(tariff, 2) == day(("00:00", "05:30", "o"), ("14:00", "15:00", "o"), ("23:30", "24:00", "o"))


def test_half_hour_rounding_outwards() -> None:
    tariff = build(
        TUESDAY_NOON,
        core=NO_CORE,
        dispatches=[
            slot("2026-11-24T13:37:11", "2026-11-24T13:38:27"),  # a minute inside 13:30
            slot("2026-11-24T15:00:00", "2026-11-24T15:02:00"),  # starts on a boundary
            slot("2026-11-24T16:00:00", "2026-11-24T16:30:00"),  # ends exactly on a boundary
            slot("2026-11-24T19:30:00", "2026-11-24T20:15:00"),  # partial second half-hour
        ],
    )
    assert labels(tariff, 1) == day(
        ("13:30", "14:00", "o"), ("15:00", "15:30", "o"), ("16:00", "16:30", "o"), ("19:30", "20:30", "o")
    )


def test_zero_length_and_reversed_dispatches_change_nothing() -> None:
    tariff = build(
        TUESDAY_NOON,
        dispatches=[
            slot("2026-11-24T14:00:00", "2026-11-24T14:00:00"),
            slot("2026-11-24T16:00:00", "2026-11-24T15:00:00"),
        ],
    )
    assert tariff == build(TUESDAY_NOON)


def test_slot_crossing_midnight_is_split_between_its_two_days() -> None:
    tariff = build(TUESDAY_NOON, core=NO_CORE, dispatches=[slot("2026-11-24T22:00:00", "2026-11-25T02:00:00")])
    assert labels(tariff, 1) == day(("22:00", "24:00", "o"))
    assert labels(tariff, 2) == day(("00:00", "02:00", "o"))
    ends = [p for p in tariff["seasons"]["Summer"]["tou_periods"]["OFF_PEAK"]["periods"] if p["fromDayOfWeek"] == 1]
    assert ends == [{"fromDayOfWeek": 1, "toDayOfWeek": 1, "fromHour": 22, "fromMinute": 0, "toHour": 0, "toMinute": 0}]


def test_slots_outside_the_seven_day_window_are_ignored() -> None:
    tariff = build(
        TUESDAY_NOON,
        dispatches=[
            slot("2026-11-23T14:00:00", "2026-11-23T15:00:00"),  # yesterday: Monday is 6 days ahead now
            slot("2026-12-01T14:00:00", "2026-12-01T15:00:00"),  # next Tuesday: today's weekday
        ],
    )
    assert tariff == build(TUESDAY_NOON)


def test_core_window_is_local_time_in_summer() -> None:
    # 2026-07-14 is BST: 23:30 local is 22:30 UTC. A dispatch at 22:30Z is inside the window already.
    now = utc("2026-07-14T12:00:00")
    assert build(now, dispatches=[slot("2026-07-14T22:30:00", "2026-07-14T23:00:00")]) == build(now)
    tariff = build(now, dispatches=[slot("2026-07-14T12:00:00", "2026-07-14T12:30:00")])
    assert labels(tariff, 1) == day(("00:00", "05:30", "o"), ("13:00", "13:30", "o"), ("23:30", "24:00", "o"))


def test_spring_forward_day() -> None:
    # 2026-03-29: 01:00 GMT jumps to 02:00 BST. 00:30Z is 00:30 local, 01:30Z is 02:30 local.
    now = utc("2026-03-29T00:10:00")
    tariff = build(now, core=NO_CORE, dispatches=[slot("2026-03-29T00:30:00", "2026-03-29T01:30:00")])
    # Wall clock 00:30-01:00 and 02:00-02:30; the missing hour 01:00-02:00 stays as the default.
    assert labels(tariff, 6) == day(("00:30", "01:00", "o"), ("02:00", "02:30", "o"))
    assert validate_tariff(tariff) == []


def test_fall_back_day() -> None:
    # 2026-10-25: 02:00 BST falls back to 01:00 GMT; 00:00Z-01:00Z is 01:00-02:00 BST, then 01:00-02:00 GMT.
    now = utc("2026-10-24T12:00:00")
    first = build(now, core=NO_CORE, dispatches=[slot("2026-10-25T00:00:00", "2026-10-25T00:30:00")])
    second = build(now, core=NO_CORE, dispatches=[slot("2026-10-25T01:00:00", "2026-10-25T01:30:00")])
    # Both occurrences of 01:00 local share one wall-clock half-hour on Sunday (weekday 6).
    assert labels(first, 6) == labels(second, 6) == day(("01:00", "01:30", "o"))
    assert validate_tariff(first) == [] and validate_tariff(second) == []
    # The core window on the fall-back night: 23:30 Saturday (BST) to 05:30 Sunday (GMT).
    core = build(now)
    assert labels(core, 5) == PLAIN_DAY and labels(core, 6) == PLAIN_DAY


def test_power_up_is_free_and_only_priced_when_present() -> None:
    plain = build(TUESDAY_NOON)
    assert "SUPER_OFF_PEAK" not in plain["energy_charges"]["Summer"]["rates"]
    tariff = build(TUESDAY_NOON, free=[slot("2026-11-26T12:00:00", "2026-11-26T13:00:00")])
    assert labels(tariff, 3) == day(("00:00", "05:30", "o"), ("12:00", "13:00", "F"), ("23:30", "24:00", "o"))
    assert tariff["energy_charges"]["Summer"]["rates"]["SUPER_OFF_PEAK"] == 0.0
    assert tariff["sell_tariff"]["energy_charges"]["Summer"]["rates"]["SUPER_OFF_PEAK"] == 0.0


def test_saving_session_is_partial_peak_priced_peak_plus_reward_and_beats_a_dispatch() -> None:
    session = SavingSession(slot("2026-11-24T17:30:00", "2026-11-24T18:30:00"), reward=2.25)
    tariff = build(TUESDAY_NOON, sessions=[session], dispatches=[slot("2026-11-24T18:00:00", "2026-11-24T19:00:00")])
    assert labels(tariff, 1) == day(
        ("00:00", "05:30", "o"), ("17:30", "18:30", "S"), ("18:30", "19:00", "o"), ("23:30", "24:00", "o")
    )
    assert tariff["energy_charges"]["Summer"]["rates"]["PARTIAL_PEAK"] == 2.55
    assert tariff["sell_tariff"]["energy_charges"]["Summer"]["rates"]["PARTIAL_PEAK"] == 0.15


def test_sell_never_above_buy_and_no_negative_prices() -> None:
    rates = Rates(import_peak=0.25, import_off_peak=-0.02, export_peak=0.40, export_off_peak=0.30)
    tariff = build(TUESDAY_NOON, rates=rates)
    buy = tariff["energy_charges"]["Summer"]["rates"]
    sell = tariff["sell_tariff"]["energy_charges"]["Summer"]["rates"]
    assert buy == {"OFF_PEAK": 0.0, "ON_PEAK": 0.25}
    assert sell == {"OFF_PEAK": 0.0, "ON_PEAK": 0.25}
    assert validate_tariff(tariff) == []


def test_validator_catches_each_rule() -> None:
    good = build(TUESDAY_NOON)
    gap = build(TUESDAY_NOON)
    gap["seasons"]["Summer"]["tou_periods"]["ON_PEAK"]["periods"][0]["toHour"] = 22
    assert any("uncovered" in p for p in validate_tariff(gap))
    orphan_price = build(TUESDAY_NOON)
    orphan_price["energy_charges"]["Summer"]["rates"]["SUPER_OFF_PEAK"] = 0
    assert "buy: label SUPER_OFF_PEAK has a price but no periods" in validate_tariff(orphan_price)
    bad_sell = build(TUESDAY_NOON)
    bad_sell["sell_tariff"]["energy_charges"]["Summer"]["rates"]["OFF_PEAK"] = 0.5
    assert any("sell 0.5 above buy 0.07" in p for p in validate_tariff(bad_sell))
    currency = build(TUESDAY_NOON)
    currency["currency"] = "AUD"
    assert any("currency" in p for p in validate_tariff(currency))
    assert validate_tariff(good) == []


def test_read_back_quirks_expand_to_the_same_grid() -> None:
    tariff = build(
        TUESDAY_NOON,
        dispatches=[
            slot("2026-11-23T14:00:00", "2026-11-23T15:00:00"),
            slot("2026-11-24T14:00:00", "2026-11-24T15:00:00"),
        ],
    )
    assert price_grid(readback_form(tariff)) == price_grid(tariff)
    # A wrapped period (23:30 -> 05:30) expands onto the next day.
    wrapped = {
        "seasons": {
            "S": {
                "tou_periods": {
                    "X": {
                        "periods": [
                            {
                                "fromDayOfWeek": 6,
                                "toDayOfWeek": 6,
                                "fromHour": 23,
                                "fromMinute": 30,
                                "toHour": 5,
                                "toMinute": 30,
                            }
                        ]
                    }
                }
            }
        }
    }
    grid = expand_side(wrapped)
    assert grid[6][23 * 60 + 30] == ["X"] and grid[0][5 * 60 + 29] == ["X"] and grid[0][5 * 60 + 30] == []


# ---- properties ----------------------------------------------------------------------------

NOW = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))


@st.composite
def slots_near(draw: st.DrawFn, now: datetime, count: int = 6) -> list[Slot]:
    out = []
    for _ in range(draw(st.integers(0, count))):
        start = now + timedelta(seconds=draw(st.integers(-2 * 86400, 9 * 86400)))
        length = timedelta(seconds=draw(st.integers(0, 14 * 3600)))
        out.append(Slot(start, start + length))
    return out


@st.composite
def scenario(draw: st.DrawFn) -> tuple[datetime, list[Slot], list[Slot], list[SavingSession], tuple[time, time]]:
    now = draw(NOW)
    dispatches = draw(slots_near(now))
    free = draw(slots_near(now, 2))
    sessions = [SavingSession(s, draw(st.floats(0, 5))) for s in draw(slots_near(now, 2))]
    halves = [time(h, m) for h in range(24) for m in (0, 30)]
    core = (draw(st.sampled_from(halves)), draw(st.sampled_from(halves)))
    return now, dispatches, free, sessions, core


def _local_half_hour_instants(d: date, h: int) -> list[tuple[datetime, datetime]]:
    """The absolute intervals a wall-clock half-hour of a date stands for (two when ambiguous)."""
    out = []
    for fold in (0, 1):
        start = datetime.combine(d, time(h // 2, h % 2 * 30), LONDON).replace(fold=fold)
        utc_start = start.astimezone(UTC)
        if utc_start.astimezone(LONDON).replace(tzinfo=None) != start.replace(tzinfo=None):
            continue  # skipped by spring forward
        out.append((utc_start, utc_start + timedelta(minutes=30)))
    return sorted(set(out))


DST_EXAMPLES = [
    utc("2026-03-28T23:59:00"),
    utc("2026-10-24T23:30:00"),
    utc("2027-03-27T12:00:00"),
    utc("2027-10-30T22:00:00"),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
@example((DST_EXAMPLES[0], [Slot(utc("2026-03-29T00:45:00"), utc("2026-03-29T02:10:00"))], [], [], NO_CORE))
@example((DST_EXAMPLES[1], [Slot(utc("2026-10-25T00:15:00"), utc("2026-10-25T01:45:00"))], [], [], CORE))
def test_every_minute_of_every_day_is_covered_exactly_once_and_prices_are_sane(
    case: tuple[datetime, list[Slot], list[Slot], list[SavingSession], tuple[time, time]],
) -> None:
    now, dispatches, free, sessions, core = case
    tariff = build(now, dispatches=dispatches, free=free, sessions=sessions, core=core)
    assert validate_tariff(tariff) == []  # full minute grid, both sides, labels<->prices, sell <= buy
    for side in (tariff, tariff["sell_tariff"]):
        for periods in side["seasons"]["Summer"]["tou_periods"].values():
            for p in periods["periods"]:
                assert set(p) == {"fromDayOfWeek", "toDayOfWeek", "fromHour", "fromMinute", "toHour", "toMinute"}
                assert all(isinstance(v, int) for v in p.values())
                assert 0 <= p["fromDayOfWeek"] <= p["toDayOfWeek"] <= 6
                assert p["fromMinute"] in (0, 30) and p["toMinute"] in (0, 30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
@example((DST_EXAMPLES[2], [Slot(utc("2027-03-28T00:59:00"), utc("2027-03-28T01:01:00"))], [], [], NO_CORE))
@example((DST_EXAMPLES[3], [Slot(utc("2027-10-31T00:59:00"), utc("2027-10-31T01:01:00"))], [], [], NO_CORE))
def test_cheap_exactly_where_a_slot_touches_a_half_hour(
    case: tuple[datetime, list[Slot], list[Slot], list[SavingSession], tuple[time, time]],
) -> None:
    """Oracle: a wall-clock half-hour of date d is off-peak (or better) iff it is in the core window
    or some dispatch overlaps one of the absolute intervals it stands for."""
    now, dispatches, _, _, core = case
    tariff = build(now, dispatches=dispatches, core=core)
    today = now.astimezone(LONDON).date()
    lo, hi = core[0].hour * 2 + core[0].minute // 30, core[1].hour * 2 + core[1].minute // 30
    week = week_labels(tariff)
    for k in range(7):
        d = today + timedelta(days=k)
        letters = week[d.weekday()]
        for h in range(48):
            in_core = (lo <= h < hi) if lo <= hi else (h >= lo or h < hi)
            intervals = _local_half_hour_instants(d, h)
            touched = any(s.start < b and a < s.end and s.start < s.end for s in dispatches for a, b in intervals)
            expected = "o" if in_core or touched else "P"
            assert letters[h] == expected, (d, h, in_core, touched)


@settings(max_examples=60, deadline=None)
@given(scenario(), st.randoms(use_true_random=False))
def test_digest_is_stable_under_reordering_and_duplicates(
    case: tuple[datetime, list[Slot], list[Slot], list[SavingSession], tuple[time, time]],
    rnd: random.Random,
) -> None:
    now, dispatches, free, sessions, core = case
    shuffled = dispatches + dispatches[:1]
    rnd.shuffle(shuffled)
    a = build(now, dispatches=dispatches, free=free, sessions=sessions, core=core)
    b = build(now, dispatches=shuffled, free=list(reversed(free)), sessions=sessions, core=core)
    assert tariff_digest(a) == tariff_digest(b)
    assert price_grid(readback_form(a)) == price_grid(a)


# ---- the interval reading against the per-minute one -------------------------------------------------

HALF_HOURS_OF_DAY = [(h, m) for h in range(24) for m in (0, 30)]
PERIOD = st.builds(
    lambda days, start, end, omit: {
        k: v
        for k, v in {
            "fromDayOfWeek": days[0],
            "toDayOfWeek": days[1],
            "fromHour": start[0],
            "fromMinute": start[1],
            "toHour": end[0],
            "toMinute": end[1],
        }.items()
        if k not in omit  # as Tesla's read-back leaves zero fields out (and any may be missing)
    },
    st.tuples(st.integers(0, 6), st.integers(0, 6)),
    st.sampled_from(HALF_HOURS_OF_DAY),
    st.sampled_from([*HALF_HOURS_OF_DAY, (24, 0)]),  # 24:00 is a read-back's midnight
    st.sets(st.sampled_from(["fromDayOfWeek", "toDayOfWeek", "fromMinute", "toMinute"])),
)


@settings(max_examples=60, deadline=None)
@given(
    periods=st.dictionaries(st.sampled_from(["ON_PEAK", "OFF_PEAK", "X"]), st.lists(PERIOD, max_size=4), max_size=3),
    prices=st.dictionaries(
        st.sampled_from(["ON_PEAK", "OFF_PEAK", "X", "Y"]), st.sampled_from([0, 0.07, 0.3, -1]), max_size=4
    ),
)
def test_the_interval_reading_agrees_with_the_per_minute_one(
    periods: dict[str, list[dict[str, int]]], prices: dict[str, float]
) -> None:
    """validate_tariff and price_grid read periods as intervals; expand_side reads them minute by minute
    (slow, plain): on any periods (wraps, 24:00, zero fields left out) both must say the same."""
    side = {
        "currency": "GBP",
        "energy_charges": {"ALL": {"rates": {"ALL": 0}}, "Summer": {"rates": prices}},
        "seasons": {"Summer": {"tou_periods": {label: {"periods": ps} for label, ps in periods.items()}}},
    }
    tariff = {**side, "sell_tariff": side}
    minutes = expand_side(side)
    per_minute_problems = []
    for d, day in enumerate(minutes):
        gaps = sum(1 for labels in day if not labels)
        overlaps = sum(1 for labels in day if len(labels) > 1)
        if gaps or overlaps:
            per_minute_problems.append(f"weekday {d} has {gaps} uncovered and {overlaps} double-covered minutes")
    problems = validate_tariff(tariff)
    for problem in per_minute_problems:
        assert f"buy: {problem}" in problems
    assert not any(
        "uncovered" in p for p in problems if p.removeprefix("buy: ").removeprefix("sell: ") not in per_minute_problems
    )
    rates = {k: float(v) for k, v in prices.items()}
    expected = None
    if not per_minute_problems:
        expected = [
            (minutes[d][m][0], rates.get(minutes[d][m][0], 0.0), rates.get(minutes[d][m][0], 0.0))
            for d in range(7)
            for m in range(0, 1440, 30)
        ]
    grid = price_grid(tariff)
    if expected is not None:
        assert grid == expected
    elif grid is not None:  # the half-hour starts may all be covered once while some minute is not
        assert all(len(minutes[d][m]) == 1 for d in range(7) for m in range(0, 1440, 30))
