"""Did the Powerwall obey? The battery's energy history and a live reading, judged against the label
that was live at Tesla. Pure: no I/O, no clock.

Verdicts rest on discharge (``battery_energy_exported``), which Tesla reports reliably; energy
charged from the grid is advisory only (Time-Based Control may or may not choose to grid-charge).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from iops.core.bill_check import Told, half_hours

BatteryVerdict = Literal["ok", "discharged while cheap", "idle in a session", "grid-charged at peak", "unknown"]
THRESHOLD_WH = 50.0  # below this a half-hour's flow is noise (standby, metering rounding)
HALF_HOUR = timedelta(minutes=30)
LIVE_FROM, LIVE_UNTIL = timedelta(minutes=10), timedelta(minutes=16)  # into a cheap block: pick-up takes ~5 min
LIVE_STALE = timedelta(minutes=5)  # a live reading older than this says nothing about now
DISCHARGING_W = 200.0  # a live battery_power above this is discharging, not noise
IMPORTING_W = 100.0  # and a grid_power above this is the house importing
CHEAP_LABELS = frozenset({"OFF_PEAK", "SUPER_OFF_PEAK"})
LIKELY_CAUSES = (
    "Time-Based Control left in Balanced rather than Cost Saving (choose it in the Tesla app: the API cannot)",
    "a backup reserve at or above the charge level",
    "firmware picking up a new tariff late",
)


@dataclass(frozen=True)
class EnergyRow:
    """One interval of the site's energy history (Wh in that interval)."""

    start: datetime  # UTC
    discharge_wh: float  # battery_energy_exported: to the house, the car and the grid
    grid_charge_wh: float  # battery_energy_imported_from_grid


@dataclass(frozen=True)
class HalfHourEnergy:
    start: datetime  # UTC
    discharge_wh: float
    grid_charge_wh: float


@dataclass(frozen=True)
class RolledUp:
    """A day's rows as half-hours: only the complete ones; how many were incomplete, and the step seen."""

    half_hours: tuple[HalfHourEnergy, ...]
    missing: int
    step: timedelta | None


def step_of(rows: Sequence[EnergyRow]) -> timedelta | None:
    """The interval the rows come in (the smallest gap), when it divides 30 minutes; else None."""
    starts = sorted({row.start for row in rows})
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    if not gaps:
        return None
    step = min(gaps)
    if step < timedelta(minutes=1) or HALF_HOUR % step:
        return None
    return step


def roll_up(rows: Sequence[EnergyRow], start: datetime, end: datetime, step: timedelta | None = None) -> RolledUp:
    """The rows from start to end summed into half-hours by instant (never by wall time: the October
    clock change repeats 01:00-01:59). A half-hour missing any of its rows is left out (unknown)."""
    step = step or step_of(rows)
    slots = half_hours(start, end)
    if step is None:  # no rows, one row, or a step that does not divide 30 minutes: nothing to judge
        return RolledUp((), len(slots), None)
    per = HALF_HOUR // step
    by_slot: dict[datetime, dict[datetime, EnergyRow]] = {}
    for row in rows:
        if not start <= row.start < end:
            continue
        slot = start + HALF_HOUR * ((row.start - start) // HALF_HOUR)
        by_slot.setdefault(slot, {})[row.start] = row  # a repeated row counts once
    out = []
    for slot in slots:
        got = by_slot.get(slot, {})
        if len(got) != per:
            continue
        out.append(
            HalfHourEnergy(
                slot,
                sum(r.discharge_wh for r in got.values()),
                sum(r.grid_charge_wh for r in got.values()),
            )
        )
    return RolledUp(tuple(out), len(slots) - len(out), step)


@dataclass(frozen=True)
class BatteryHalfHour:
    """One half-hour of the battery check, as the report shows it."""

    start: datetime
    told: Told | None
    energy: HalfHourEnergy | None
    verdict: BatteryVerdict
    read: bool  # its local day's energy history was read (else the strip shows a blank)


def judge_battery(told: Told | None, energy: HalfHourEnergy | None) -> BatteryVerdict:
    """One half-hour: against the label live at Tesla then."""
    if told is None or energy is None:
        return "unknown"
    if told.label in CHEAP_LABELS:
        return "discharged while cheap" if energy.discharge_wh > THRESHOLD_WH else "ok"
    if told.label == "PARTIAL_PEAK":
        return "idle in a session" if energy.discharge_wh <= THRESHOLD_WH else "ok"
    if energy.grid_charge_wh > THRESHOLD_WH:
        return "grid-charged at peak"  # advisory: the verdicts rest on discharge
    return "ok"


def cheap_discharge_cost(told: Told, energy: HalfHourEnergy) -> float:
    """What discharging while cheap cost at the posted prices: each kWh the battery gave then is a kWh
    it no longer holds for the peak, bought at peak instead of at the price live then (GBP)."""
    return energy.discharge_wh / 1000 * max(told.peak_price - told.buy, 0.0)


@dataclass(frozen=True)
class BatterySummary:
    discharged_while_cheap_kwh: float = 0.0
    discharged_while_cheap_gbp: float = 0.0
    idle_in_session: int = 0
    grid_charged_at_peak: int = 0
    unknown: int = 0


def summarise_battery(rows: Iterable[BatteryHalfHour]) -> BatterySummary:
    kwh = gbp = 0.0
    idle = grid = unknown = 0
    for row in rows:
        told, energy, verdict = row.told, row.energy, row.verdict
        if verdict == "discharged while cheap" and told is not None and energy is not None:
            kwh += energy.discharge_wh / 1000
            gbp += cheap_discharge_cost(told, energy)
        idle += verdict == "idle in a session"
        grid += verdict == "grid-charged at peak"
        unknown += verdict == "unknown"
    return BatterySummary(round(kwh, 3), round(gbp, 2), idle, grid, unknown)


def add_battery(a: BatterySummary, b: BatterySummary) -> BatterySummary:
    return BatterySummary(
        round(a.discharged_while_cheap_kwh + b.discharged_while_cheap_kwh, 3),
        round(a.discharged_while_cheap_gbp + b.discharged_while_cheap_gbp, 2),
        a.idle_in_session + b.idle_in_session,
        a.grid_charged_at_peak + b.grid_charged_at_peak,
        a.unknown + b.unknown,
    )


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A local calendar day, 00:00 to 00:00 (23, 24 or 25 hours), as UTC instants."""
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)
    return start.astimezone(UTC), end.astimezone(UTC)


# ---- the live check ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveReading:
    """What live_status said (W; battery > 0 discharging, grid > 0 importing)."""

    at: datetime | None
    battery_w: float | None
    grid_w: float | None
    charge_percent: float | None
    storm: bool = False
    grid_active: bool = True


LiveVerdict = Literal["discharging", "ok", "stale", "unknown", "excused"]


def live_verdict(reading: LiveReading, now: datetime) -> LiveVerdict:
    """Discharging while the house imports at the cheap rate, or not; a stale or partial reading
    says nothing; Storm Watch or an island excuses the battery."""
    if reading.battery_w is None or reading.grid_w is None:
        return "unknown"
    if reading.at is not None and now - reading.at > LIVE_STALE:
        return "stale"
    if reading.storm or not reading.grid_active:
        return "excused"
    if reading.battery_w > DISCHARGING_W and reading.grid_w > IMPORTING_W:
        return "discharging"
    return "ok"


def cheap_block_now(
    label_at: Callable[[datetime], str | None], now: datetime, tz: ZoneInfo, core: tuple[time, time]
) -> tuple[datetime, datetime] | None:
    """The daytime cheap block (a smart slot or a Power Up, not the fixed night window) under way now,
    as (start, end) in UTC; None when the half-hour now is not cheap or the block began in the window."""
    local = now.astimezone(tz)
    here = local.replace(minute=local.minute - local.minute % 30, second=0, microsecond=0).astimezone(UTC)
    if label_at(here) not in CHEAP_LABELS:
        return None
    start = here
    for _ in range(48):
        if label_at(start - HALF_HOUR) not in CHEAP_LABELS:
            break
        start -= HALF_HOUR
    end = here + HALF_HOUR
    for _ in range(48):
        if label_at(end) not in CHEAP_LABELS:
            break
        end += HALF_HOUR
    wall = start.astimezone(tz).time()
    lo, hi = core
    in_core = lo <= wall or wall < hi if lo > hi else lo <= wall < hi
    return None if in_core else (start, end)


def live_check_due(block: tuple[datetime, datetime] | None, now: datetime, checked: float) -> bool:
    """One read per block, 10-15 minutes into it."""
    if block is None or block[0].timestamp() == checked:
        return False
    return LIVE_FROM <= now - block[0] < LIVE_UNTIL


def grid_label_at(grid: Sequence[tuple[str, float, float]], tz: ZoneInfo) -> Callable[[datetime], str | None]:
    """The label a week grid (Monday first, 48 half-hours a day, local) gives an instant."""

    def label(moment: datetime) -> str | None:
        wall = moment.astimezone(tz)
        index = wall.weekday() * 48 + wall.hour * 2 + wall.minute // 30
        return grid[index][0] if 0 <= index < len(grid) else None

    return label


BATTERY_SYMBOL: Mapping[str, str] = {
    "ok": "=",
    "discharged while cheap": "D",
    "idle in a session": "I",
    "grid-charged at peak": "g",
    "unknown": "?",
}
