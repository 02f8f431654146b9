"""The battery check's pure core and its reading of Tesla's answers: the half-hour roll-up by instant
(any step that divides 30 minutes, clock-change days), the verdicts, the live check's timing, and
every odd answer the reference names."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fakes import Flows, energy_row
from hypothesis import given, settings
from hypothesis import strategies as st

from iops.core.battery_check import (
    EnergyRow,
    HalfHourEnergy,
    LiveReading,
    cheap_block_now,
    judge_battery,
    live_check_due,
    live_verdict,
    local_day_bounds,
    roll_up,
    step_of,
)
from iops.core.bill_check import Told
from iops.services.tesla_answers import parse_energy_history, parse_live_status

LONDON = ZoneInfo("Europe/London")
STEPS = [1, 2, 3, 5, 6, 10, 15, 30]  # every whole-minute step that divides 30 minutes


def rows_for(day: date, step: int, values: st.DataObject | None = None) -> list[EnergyRow]:
    start, end = local_day_bounds(day, LONDON)
    out, moment = [], start
    while moment < end:
        discharge = values.draw(st.integers(0, 500)) if values else 10
        out.append(EnergyRow(moment, float(discharge), 0.0))
        moment += timedelta(minutes=step)
    return out


@settings(max_examples=60, deadline=None)
@given(day=st.dates(date(2020, 1, 1), date(2035, 12, 31)), step=st.sampled_from(STEPS), data=st.data())
def test_a_whole_day_rolls_up_into_every_half_hour_once(day: date, step: int, data: st.DataObject) -> None:
    rows = rows_for(day, step, data if step >= 15 else None)  # drawing 1,440 values a day is slow
    start, end = local_day_bounds(day, LONDON)
    rolled = roll_up(rows, start, end)
    expected = int((end - start) / timedelta(minutes=30))  # 46, 48 or 50
    assert rolled.missing == 0 and rolled.step == timedelta(minutes=step)
    assert [h.start for h in rolled.half_hours] == [start + timedelta(minutes=30 * k) for k in range(expected)]
    assert sum(h.discharge_wh for h in rolled.half_hours) == sum(r.discharge_wh for r in rows)


@settings(max_examples=60, deadline=None)
@given(day=st.dates(date(2020, 1, 1), date(2035, 12, 31)), step=st.sampled_from([5, 10, 15]), data=st.data())
def test_a_missing_row_makes_exactly_its_half_hour_unknown(day: date, step: int, data: st.DataObject) -> None:
    rows = rows_for(day, step)
    gone = data.draw(st.integers(1, len(rows) - 2))  # keep the first two, so the step is still seen
    gone = max(gone, 2)
    lost = rows.pop(gone)
    start, end = local_day_bounds(day, LONDON)
    rolled = roll_up(rows, start, end)
    assert rolled.missing == 1
    slot = start + timedelta(minutes=30) * ((lost.start - start) // timedelta(minutes=30))
    assert slot not in {h.start for h in rolled.half_hours}


def test_the_clock_change_days_have_46_and_50_half_hours_keyed_by_instant() -> None:
    for day, count, rows in ((date(2026, 3, 29), 46, 276), (date(2026, 10, 25), 50, 300)):
        start, end = local_day_bounds(day, LONDON)
        series = []
        moment = start
        while moment < end:
            series.append(energy_row(moment.astimezone(LONDON), Flows(discharge=10)))
            moment += timedelta(minutes=5)
        assert len(series) == rows
        answer = parse_energy_history({"time_series": series}, day, LONDON)
        rolled = roll_up(answer.rows, start, end)
        assert len(rolled.half_hours) == count and rolled.missing == 0
        assert all(h.discharge_wh == 60 for h in rolled.half_hours)
    # 01:00-01:55 happens twice on 25 October: both kept, as different instants
    assert len({r.start for r in answer.rows}) == 300


def test_a_step_that_does_not_divide_30_minutes_judges_nothing() -> None:
    day = date(2026, 11, 24)
    rows = rows_for(day, 7)
    assert step_of(rows) is None
    rolled = roll_up(rows, *local_day_bounds(day, LONDON))
    assert rolled.half_hours == () and rolled.missing == 48


CHEAP = Told("OFF_PEAK", 0.07, 0.15, "planned", 0.07, 0.30)
FREE = Told("SUPER_OFF_PEAK", 0.0, 0.0, "power-up", 0.07, 0.30)
PEAK = Told("ON_PEAK", 0.30, 0.15, "peak", 0.07, 0.30)
SESSION = Told("PARTIAL_PEAK", 3.50, 3.35, "saving-session", 0.07, 0.30)
AT = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("told", "discharge", "grid", "verdict"),
    [
        (CHEAP, 0, 900, "ok"),
        (CHEAP, 50, 0, "ok"),  # the threshold itself is noise
        (CHEAP, 51, 0, "discharged while cheap"),
        (FREE, 400, 0, "discharged while cheap"),
        (SESSION, 50, 0, "idle in a session"),
        (SESSION, 2000, 0, "ok"),
        (PEAK, 800, 0, "ok"),
        (PEAK, 0, 51, "grid-charged at peak"),
        (PEAK, 0, 50, "ok"),
        (None, 900, 0, "unknown"),
    ],
)
def test_verdicts(told: Told | None, discharge: float, grid: float, verdict: str) -> None:
    assert judge_battery(told, HalfHourEnergy(AT, discharge, grid)) == verdict
    assert judge_battery(told, None) == "unknown"


def row(**fields: Any) -> dict[str, Any]:
    return {"timestamp": "2026-11-24T10:00:00+00:00", **fields}


@pytest.mark.parametrize(
    ("response", "rows", "note"),
    [
        (None, 0, "empty answer"),
        ("", 0, "empty answer"),
        ([], 0, "empty answer"),
        ({"time_series": None}, 0, "no energy history for this day yet"),
        ({"time_series": []}, 0, "no energy history for this day yet"),
        ({}, 0, "no energy history for this day yet"),
        ({"time_series": [row(battery_energy_exported=12)]}, 1, ""),  # the rest left out: zeros
        ({"time_series": [row(battery_energy_exported=-3)]}, 0, "odd"),
        ({"time_series": [row(battery_energy_exported=math.nan)]}, 0, "odd"),
        ({"time_series": [row(battery_energy_exported=math.inf)]}, 0, "odd"),
        ({"time_series": [row(battery_energy_exported=1e12)]}, 0, "odd"),
        ({"time_series": [row(battery_energy_exported="12")]}, 0, "odd"),
        ({"time_series": [row(battery_energy_exported=True)]}, 0, "odd"),
        ({"time_series": [row(battery_energy_exported=None)]}, 1, ""),  # null as absent
        ({"time_series": [{"timestamp": "2026-11-24T10:00:00", "battery_energy_exported": 1}]}, 0, "odd"),
        ({"time_series": [{"timestamp": 1700000000, "battery_energy_exported": 1}]}, 0, "odd"),
        ({"time_series": ["row"]}, 0, "odd"),
        ({"time_series": [row(timestamp="2026-11-23T10:00:00+00:00", battery_energy_exported=1)]}, 0, "other days"),
        ({"time_series": [row(solar_energy_exported=5)]}, 0, "no battery flows"),
    ],
)
def test_odd_energy_answers(response: Any, rows: int, note: str) -> None:
    answer = parse_energy_history(response, date(2026, 11, 24), LONDON)
    assert len(answer.rows) == rows
    assert (note in " ".join(answer.notes)) if note else answer.notes == ()


def test_live_readings() -> None:
    now = datetime(2026, 11, 24, 14, 12, tzinfo=UTC)
    body = {"battery_power": 2500, "grid_power": 4000, "timestamp": "2026-11-24T14:11:30Z", "percentage_charged": 55}
    reading = parse_live_status(body)
    assert reading.at == datetime(2026, 11, 24, 14, 11, 30, tzinfo=UTC) and reading.charge_percent == 55
    assert live_verdict(reading, now) == "discharging"
    assert live_verdict(parse_live_status({**body, "battery_power": -3000}), now) == "ok"
    assert live_verdict(parse_live_status({**body, "grid_power": -500}), now) == "ok"  # exporting: not our case
    assert live_verdict(parse_live_status({**body, "timestamp": "2026-11-24T14:00:00Z"}), now) == "stale"
    assert live_verdict(parse_live_status({**body, "storm_mode_active": True}), now) == "excused"
    assert live_verdict(parse_live_status({**body, "grid_status": "Inactive"}), now) == "excused"
    assert live_verdict(parse_live_status({**body, "battery_power": None}), now) == "unknown"
    assert live_verdict(parse_live_status(""), now) == "unknown"
    assert parse_live_status({**body, "percentage_charged": 0.0}).charge_percent == 0.0
    assert parse_live_status({**body, "percentage_charged": 140}).charge_percent is None
    assert live_verdict(LiveReading(None, 900.0, 900.0, None), now) == "discharging"  # no timestamp: taken as now


CORE = (time(23, 30), time(5, 30))


def labels(cheap: set[int]) -> Any:
    """A label function for 24 Nov: the half-hours (index from 00:00) in ``cheap`` are OFF_PEAK."""

    def label(moment: datetime) -> str:
        wall = moment.astimezone(LONDON)
        index = wall.hour * 2 + wall.minute // 30
        core = index >= 47 or index < 11
        return "OFF_PEAK" if index in cheap or core else "ON_PEAK"

    return label


@given(minute=st.integers(0, 24 * 60 - 1))
def test_a_live_check_comes_10_to_15_minutes_into_a_daytime_cheap_block_once(minute: int) -> None:
    slot = {28, 29}  # 14:00-15:00
    now = datetime(2026, 11, 24, tzinfo=UTC) + timedelta(minutes=minute)
    block = cheap_block_now(labels(slot), now, LONDON, CORE)
    if 14 * 60 <= minute < 15 * 60:
        assert block == (datetime(2026, 11, 24, 14, tzinfo=UTC), datetime(2026, 11, 24, 15, tzinfo=UTC))
        assert live_check_due(block, now, 0.0) == (14 * 60 + 10 <= minute <= 14 * 60 + 15)
        assert not live_check_due(block, now, block[0].timestamp())  # checked already
    else:
        assert block is None  # peak, or the fixed night window


def test_a_slot_joined_to_the_night_window_is_a_daytime_block() -> None:
    """A smart slot 22:30-23:30 runs into 23:30-05:30: the block began in the day, so it is checked."""
    now = datetime(2026, 11, 24, 22, 41, tzinfo=UTC)
    block = cheap_block_now(labels({45, 46}), now, LONDON, CORE)
    assert block is not None and block[0] == datetime(2026, 11, 24, 22, 30, tzinfo=UTC)
    assert live_check_due(block, now, 0.0)
