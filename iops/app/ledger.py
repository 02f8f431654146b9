"""Each allowance day, half-hour by half-hour, from the durable records: what the Powerwall was told,
what Octopus billed, and the verdict (iops.core.bill_check does the judging)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from iops.core.battery_check import BatteryHalfHour, judge_battery, summarise_battery
from iops.core.bill_check import (
    CHECKED_AFTER,
    Row,
    Told,
    allowance_day_bounds,
    half_hours,
    is_final,
    judge,
    summarise,
    told_for,
)
from iops.core.report_view import ReportDay
from iops.core.settings import Config

if TYPE_CHECKING:
    from iops.app.store import Store


def day_report(store: Store, config: Config, day: date, now: datetime) -> ReportDay:
    tz = ZoneInfo(config.tariff.time_zone)
    start, end = allowance_day_bounds(day, tz)
    versions = store.told_between(start.timestamp(), end.timestamp())
    lo, hi = start.isoformat(), end.isoformat()
    facts = store.facts_between(lo, hi)
    settled = store.settled_between(lo, hi)
    core = (config.tariff.off_peak_start, config.tariff.off_peak_end)
    moments = half_hours(start, end)
    told = [told_for(versions, moment, tz, core) for moment in moments]
    rows = [
        judge(moment, said, settled.get(moment.isoformat()), facts.get(moment.isoformat(), ""))
        for moment, said in zip(moments, told, strict=True)
    ]
    battery = _battery(store, tz, moments, told)
    read = store.settled_day(day.isoformat())
    reads = [datetime.fromtimestamp(r, tz) for r in read[0]] if read else []
    status = "missing" if not settled else "final" if is_final(day, tz, reads) else "provisional"
    age = now - end
    return ReportDay(
        day,
        start,
        end,
        status,
        rows,
        summarise(rows),
        _note(read, settled, rows, versions != [], age, config),
        battery,
        summarise_battery(battery),
        _battery_note(store, tz, start, end, config),
    )


def _battery(
    store: Store, tz: ZoneInfo, moments: Sequence[datetime], told: Sequence[Told | None]
) -> list[BatteryHalfHour]:
    """Each half-hour's battery verdict against the label live at Tesla then."""
    if not moments:
        return []
    energy = store.battery_between(moments[0].isoformat(), (moments[-1] + timedelta(minutes=30)).isoformat())
    days_read = {
        local
        for local in {m.astimezone(tz).date() for m in moments}
        if store.battery_day(local.isoformat()) is not None
    }
    out = []
    for moment, said in zip(moments, told, strict=True):
        got = energy.get(moment.isoformat())
        read = moment.astimezone(tz).date() in days_read
        out.append(BatteryHalfHour(moment, said, got, judge_battery(said, got), read))
    return out


def battery_rows(store: Store, config: Config, start: datetime, end: datetime) -> list[BatteryHalfHour]:
    """The battery verdicts from start to end (a local day, for the MQTT sensor)."""
    tz = ZoneInfo(config.tariff.time_zone)
    versions = store.told_between(start.timestamp(), end.timestamp())
    core = (config.tariff.off_peak_start, config.tariff.off_peak_end)
    moments = half_hours(start, end)
    return _battery(store, tz, moments, [told_for(versions, m, tz, core) for m in moments])


def _battery_note(store: Store, tz: ZoneInfo, start: datetime, end: datetime, config: Config) -> str:
    if not config.history.battery_check:
        return "the battery check is off ([history] battery_check = false)"
    notes = []
    for local in sorted({start.astimezone(tz).date(), (end - timedelta(seconds=1)).astimezone(tz).date()}):
        read = store.battery_day(local.isoformat())
        if read is None:
            notes.append(f"{local:%a %d %b} not read from Tesla yet (read after 01:30 the next day)")
        elif read[2]:
            notes.append(f"{local:%a %d %b}: {read[2]}")
    return "; ".join(notes)


def _note(
    read: tuple[list[float], str, str] | None,
    settled: Mapping[str, object],
    rows: list[Row],
    told: bool,
    age: timedelta,
    config: Config,
) -> str:
    if age > timedelta(days=config.history.keep_days):
        return f"older than the history kept ([history] keep_days = {config.history.keep_days})"
    if not told:
        return "nothing posted by the scheduler that day (before it began, or paused)"
    if read is None and age > CHECKED_AFTER + timedelta(days=1):
        return "never read from Octopus (a day is read until 14 days after it ends; was the scheduler off?)"
    if read is None:
        return "not read from Octopus yet (read from 36 hours after the day ends)"
    if not settled:
        return read[2] or "no billing data yet for this day (Octopus's smart-meter data often lags 2 days)"
    note = read[2]
    missing = sum(1 for row in rows if row.billed is None)
    if missing and not note:
        note = f"{missing} half-hour(s) not settled yet"
    return note


def recent_final_days(store: Store, config: Config, now: datetime, days: int = 30) -> list[ReportDay]:
    """The final days among the last ``days`` (the trust suggestion rests on these only)."""
    from iops.core.bill_check import ended_days

    tz = ZoneInfo(config.tariff.time_zone)
    out = []
    for day in ended_days(now, tz, days):
        read = store.settled_day(day.isoformat())
        if read and is_final(day, tz, [datetime.fromtimestamp(r, tz) for r in read[0]]):
            out.append(day_report(store, config, day, now))
    return out


def window(day: date, tz: ZoneInfo, lookback: timedelta) -> tuple[datetime, datetime]:
    """A day's settlement request: from ``lookback`` before it (dispatch context), to its end."""
    start, end = allowance_day_bounds(day, tz)
    return start - lookback, end
