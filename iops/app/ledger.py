"""Each allowance day, half-hour by half-hour, from the durable records: what the Powerwall was told,
what Octopus billed, and the verdict (iops.core.bill_check does the judging)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from iops.core.bill_check import (
    CHECKED_AFTER,
    Row,
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
    rows = []
    for moment in half_hours(start, end):
        key = moment.isoformat()
        rows.append(judge(moment, told_for(versions, moment, tz, core), settled.get(key), facts.get(key, "")))
    read = store.settled_day(day.isoformat())
    reads = [datetime.fromtimestamp(r, tz) for r in read[0]] if read else []
    status = "missing" if not settled else "final" if is_final(day, tz, reads) else "provisional"
    age = now - end
    return ReportDay(
        day, start, end, status, rows, summarise(rows), _note(read, settled, rows, versions != [], age, config)
    )


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
