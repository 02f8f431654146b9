"""The bill check's pure core: banding a settled half-hour by the price charged, verdicts, money, the
trust suggestion, and the half-hour bookkeeping of 12:00-12:00 days across the clock changes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fakes import DAY_PENCE, NIGHT_PENCE, legacy_node, smb_node, stripped_node
from hypothesis import given, settings
from hypothesis import strategies as st

from iops.core.bill_check import (
    Line,
    Row,
    Settled,
    Told,
    allowance_day_bounds,
    band,
    due_for_settlement,
    ended_days,
    half_hours,
    judge,
    suggest,
    summarise,
    told_for,
    version_of,
)
from iops.services.kraken_answers import parse_measurements

LONDON = ZoneInfo("Europe/London")
START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
CHEAP, PEAK = 0.07, 0.30
TOLD = {
    "cheap": Told("OFF_PEAK", CHEAP, 0.15, "planned", CHEAP, PEAK),
    "peak": Told("ON_PEAK", PEAK, 0.15, "peak", CHEAP, PEAK),
}


def settled(node: dict[str, object]) -> Settled:
    """A node as the Octopus client reads it (through the real parser)."""
    data = {
        "account": {
            "properties": [{"electricityMeterPoints": [{"mpan": "1"}], "measurements": {"edges": [{"node": node}]}}]
        }
    }
    return parse_measurements(data, "1").settled[0]


def null_cost(node: dict[str, Any]) -> dict[str, Any]:
    """The node with every line's cost null (seen while a half-hour is being priced)."""
    for stat in node["metaData"]["statistics"]:
        stat["costInclTax"] = None
    return node


@pytest.mark.parametrize(
    ("node", "billed"),
    [
        (smb_node(START, home_night=1.289, ev_off_peak=2.611), "cheap"),  # octopus_settlement.md §5.2, 13:00
        (smb_node(START, home_day=2.532), "standard"),  # §5.2, 16:00: a phantom
        (smb_node(START, home_night=1.2, ev_off_peak=2.6, names="display"), "cheap"),  # the 2026-09-28 names
        (smb_node(START, home_day=1.0, ev_off_peak=2.6), "standard"),  # one line at the day rate is enough
        (smb_node(START, home_night=3.0, region="B"), "cheap"),  # another region's suffix
        (legacy_node(START, 3.0, label="OFF_PEAK", pence=7.5), "cheap"),
        (
            legacy_node(START, 3.0, label="STANDARD_RATE", pence=7.5),
            "cheap",
        ),  # a night slot reads STANDARD: the price decides
        (legacy_node(START, 3.0, label="STANDARD", pence=29.0), "standard"),
        (legacy_node(START, 3.0, label="SURPRISE_BUCKET", pence=7.5), "unknown"),  # never guessed
        (stripped_node(START, 3.0), "unknown"),  # unpriced under load: read again later
        (null_cost(legacy_node(START, 3.0, label="OFF_PEAK", pence=7.5)), "unknown"),  # costInclTax null
        (null_cost(smb_node(START, home_day=2.0)), "unknown"),
    ],
)
def test_a_half_hour_is_banded_by_the_price_it_was_charged(node: dict[str, object], billed: str) -> None:
    assert band(settled(node), CHEAP, PEAK)[0] == billed


def test_verdicts_and_the_money_at_stake() -> None:
    cheap_bill = settled(smb_node(START, ev_off_peak=2.0))
    dear_bill = settled(smb_node(START, home_day=2.532))
    assert judge(START, TOLD["cheap"], cheap_bill).verdict == "agree"
    phantom = judge(START, TOLD["cheap"], dear_bill)
    assert phantom.verdict == "phantom" and phantom.gbp == pytest.approx(2.532 * (DAY_PENCE / 100 - CHEAP))
    missed = judge(START, TOLD["peak"], cheap_bill)
    assert missed.verdict == "missed" and missed.gbp == pytest.approx(2.0 * (PEAK - NIGHT_PENCE / 100))
    assert judge(START, TOLD["peak"], dear_bill).verdict == "agree"
    assert judge(START, TOLD["peak"], settled(smb_node(START))).verdict == "no usage"
    assert judge(START, TOLD["cheap"], None).verdict == "unknown"  # not settled yet
    assert judge(START, None, dear_bill).verdict == "unknown"  # nothing told: nothing to compare
    free = Told("SUPER_OFF_PEAK", 0.0, 0.0, "power-up", CHEAP, PEAK)
    assert judge(START, free, dear_bill).verdict == "phantom"


def test_the_suggestion_weighs_the_half_hours_where_the_settings_differ() -> None:
    def row(billed: str, price: float, fact: str = "not-started") -> Row:
        return Row(START, "cheap", "planned", billed, 2.0, "agree", 0.0, fact, price, CHEAP, PEAK)  # type: ignore[arg-type]

    dear = [row("standard", 0.30)] * 3  # planned, never begun, billed at peak: "started" would have avoided it
    assert suggest([dear]) is not None and suggest([dear]).dispatch_trust == "started"  # type: ignore[union-attr]
    honoured = [row("cheap", 0.07)] * 3  # billed cheap although never begun: "planned" was right
    advice = suggest([honoured])
    assert advice is not None and advice.dispatch_trust == "planned"
    assert advice.gbp == pytest.approx(3 * 2.0 * (PEAK - 0.07), abs=0.01) and advice.days == 1
    assert suggest([[row("standard", 0.30, fact="started")]]) is None  # the settings agree there: no evidence


def test_a_summary_counts_every_verdict() -> None:
    rows = [judge(START, TOLD["cheap"], settled(smb_node(START, home_day=1.0))), judge(START, TOLD["peak"], None)]
    summary = summarise(rows)
    assert (summary.phantom, summary.unknown, summary.agree) == (1, 1, 0) and summary.phantom_gbp > 0


# ---- days across the clock changes -----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(day=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 30)))
def test_allowance_days_meet_end_to_end_and_count_their_half_hours(day: date) -> None:
    start, end = allowance_day_bounds(day, LONDON)
    following, _ = allowance_day_bounds(day + timedelta(days=1), LONDON)
    assert end == following  # no gap, no overlap between days
    slots = half_hours(start, end)
    assert start.astimezone(LONDON).time() == time(12, 0) and end.astimezone(LONDON).time() == time(12, 0)
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(slots))
    assert slots[0] == start and slots[-1] + timedelta(minutes=30) == end
    hours = (end - start).total_seconds() / 3600
    assert len(slots) == hours * 2 and hours in (23, 24, 25)
    changes = start.astimezone(LONDON).utcoffset() != end.astimezone(LONDON).utcoffset()
    assert (len(slots) != 48) == changes


def test_the_clock_change_days_of_2026() -> None:
    assert len(half_hours(*allowance_day_bounds(date(2026, 3, 28), LONDON))) == 46  # spring: 01:00 -> 02:00
    assert len(half_hours(*allowance_day_bounds(date(2026, 10, 24), LONDON))) == 50  # autumn: 01:00-02:00 twice


@settings(max_examples=100, deadline=None)
@given(now=st.datetimes(min_value=datetime(2021, 1, 1), max_value=datetime(2034, 1, 1), timezones=st.just(UTC)))
def test_ended_days_are_the_newest_that_ended_before_now(now: datetime) -> None:
    days = ended_days(now, LONDON, 3)
    assert days == sorted(days, reverse=True) and len(set(days)) == 3
    assert all(allowance_day_bounds(d, LONDON)[1] <= now for d in days)
    after = allowance_day_bounds(days[0] + timedelta(days=1), LONDON)[1]
    assert after > now  # the newest that ended: the next one has not


@settings(max_examples=100, deadline=None)
@given(
    day=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 1, 1)),
    hours_after=st.integers(min_value=0, max_value=24 * 16),
)
def test_a_day_is_read_at_36_hours_3_7_and_14_days_then_never(day: date, hours_after: int) -> None:
    _, end = allowance_day_bounds(day, LONDON)
    now = end + timedelta(hours=hours_after)
    first = timedelta(hours=36)
    due = due_for_settlement(day, LONDON, now, [], first_after=first)
    assert due == (now >= end + first)
    reads = [end + first]
    assert due_for_settlement(day, LONDON, now, reads, first_after=first) == (now >= end + timedelta(days=3))
    reads.append(end + timedelta(days=3))
    assert due_for_settlement(day, LONDON, now, reads, first_after=first) == (now >= end + timedelta(days=7))
    reads.append(end + timedelta(days=7))
    assert due_for_settlement(day, LONDON, now, reads, first_after=first) == (now >= end + timedelta(days=14))
    reads.append(end + timedelta(days=14))
    assert not due_for_settlement(day, LONDON, now, reads, first_after=first)


def test_the_version_live_at_a_half_hours_middle_speaks_for_it() -> None:
    week = [["ON_PEAK"] * 48 for _ in range(7)]
    cheap_week = [list(day) for day in week]
    cheap_week[START.weekday()][28] = "OFF_PEAK"  # 14:00 local (GMT)
    prices = {"ON_PEAK": (0.30, 0.15), "OFF_PEAK": (0.07, 0.07)}
    old = version_of(START.timestamp() - 3600, "a", week, prices, {})
    new = version_of(START.timestamp() + 10 * 60, "b", cheap_week, prices, {"2026-11-24 14:00": "started"})
    core = (time(23, 30), time(5, 30))
    told = told_for([old, new], START, LONDON, core)
    assert told is not None and told.label == "OFF_PEAK" and told.reason == "started"  # posted 10 minutes in
    late = version_of(START.timestamp() + 20 * 60, "b", cheap_week, prices, {})
    told = told_for([old, late], START, LONDON, core)
    assert told is not None and told.label == "ON_PEAK"  # posted 20 minutes in: too late to speak for it
    assert told_for([new], START - timedelta(hours=1), LONDON, core) is None  # before the history began


def test_lines_without_a_label_beside_labelled_ones_are_not_counted_twice() -> None:
    both = Settled(START, 2.0, (Line("CONSUMPTION_CHARGE_ECO7_NIGHT_H", 2.0, 6.9), Line(None, 2.0, 30.0)))
    assert band(both, CHEAP, PEAK)[0] == "cheap"
    alone = Settled(START, 2.0, (Line(None, 2.0, 30.0),))
    assert band(alone, CHEAP, PEAK)[0] == "standard"
