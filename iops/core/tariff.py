"""The decision step: slots and rates in, a Tesla ``tariff_content_v2`` out. No I/O here.

The tariff is a weekly pattern (Monday = 0). Each of the next seven local dates owns its own
weekday, so a slot tomorrow only makes tomorrow's weekday cheap. Labels are decided per local
half-hour (Octopus bills a whole half-hour as off-peak if a dispatch touches any part of it).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

T = TypeVar("T")

HALF_HOURS = 48
DAYS = 7
MINUTES_PER_DAY = 1440
TARIFF_CODE = "IOPS:IOG"

ON_PEAK = "ON_PEAK"
OFF_PEAK = "OFF_PEAK"
PARTIAL_PEAK = "PARTIAL_PEAK"
SUPER_OFF_PEAK = "SUPER_OFF_PEAK"
# Later entries win when several sources claim the same half-hour. A joined saving session
# is a commitment not to import, so it outranks cheap slots that happen to overlap it.
PRECEDENCE = (ON_PEAK, OFF_PEAK, SUPER_OFF_PEAK, PARTIAL_PEAK)
LABELS = frozenset(PRECEDENCE)

_HALF_HOUR = timedelta(minutes=30)
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class Slot:
    """A half-open interval [start, end) of aware datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("Slot times must be timezone-aware")


@dataclass(frozen=True)
class SavingSession:
    """A joined Power Down session and its reward in GBP per kWh."""

    slot: Slot
    reward: float


@dataclass(frozen=True)
class Rates:
    """Prices in GBP per kWh."""

    import_peak: float
    import_off_peak: float
    export_peak: float
    export_off_peak: float


@dataclass(frozen=True)
class TariffInputs:
    now: datetime
    time_zone: str
    off_peak_start: time
    off_peak_end: time
    rates: Rates
    dispatches: Sequence[Slot] = ()
    free_slots: Sequence[Slot] = ()
    saving_sessions: Sequence[SavingSession] = ()
    name: str = "Intelligent Octopus Go"
    utility: str = "Octopus Energy"


@dataclass(frozen=True)
class WeekPlan:
    """Labels per weekday (Monday = 0) and half-hour, plus the local date each weekday stands for."""

    grid: tuple[tuple[str, ...], ...]
    dates: tuple[date, ...]  # dates[weekday]
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # label -> (buy, sell)


def in_core_window(index: int, start: time, end: time) -> bool:
    """Whether local half-hour ``index`` (0-47) lies in the fixed off-peak window."""
    minute = index * 30
    lo = start.hour * 60 + start.minute
    hi = end.hour * 60 + end.minute
    if lo <= hi:
        return lo <= minute < hi
    return minute >= lo or minute < hi


def default_day(off_peak_start: time, off_peak_end: time) -> tuple[str, ...]:
    """The plain IOG day: off-peak in the core window, peak otherwise."""
    return tuple(OFF_PEAK if in_core_window(h, off_peak_start, off_peak_end) else ON_PEAK for h in range(HALF_HOURS))


def half_hour_start(moment: datetime, tz: ZoneInfo) -> datetime:
    """The start (in UTC) of the local half-hour that contains ``moment``."""
    local = moment.astimezone(tz)
    floored = local.replace(minute=local.minute - local.minute % 30, second=0, microsecond=0)
    return floored.astimezone(_UTC)


def half_hour_starts(slot: Slot, tz: ZoneInfo) -> Iterable[datetime]:
    """Yield the UTC start of every local half-hour the slot touches.

    Floors the start and steps in absolute time, so a DST change inside the slot is handled:
    an ambiguous hour yields both of its passes, a skipped hour never appears.
    """
    if slot.end <= slot.start:
        return
    cursor = half_hour_start(slot.start, tz)
    end = slot.end.astimezone(_UTC)
    while cursor < end:
        yield cursor
        cursor += _HALF_HOUR


def clip(slot: Slot, now: datetime) -> Slot | None:
    """The part of a slot within two days before and nine days after now (None if nothing is left),
    so that a hostile year-9999 end is never walked half-hour by half-hour."""
    lo, hi = now - timedelta(days=2), now + timedelta(days=9)
    start, end = max(slot.start, lo), min(slot.end, hi)
    return Slot(start, end) if start < end else None


def local_half_hour(moment: datetime, tz: ZoneInfo) -> tuple[date, int]:
    """(local date, half-hour index 0-47) of a moment."""
    wall = moment.astimezone(tz)
    return wall.date(), wall.hour * 2 + wall.minute // 30


def half_hours_touched(slot: Slot, tz: ZoneInfo) -> Iterable[tuple[date, int]]:
    """Yield (local date, half-hour index) for every half-hour the slot touches."""
    for start in half_hour_starts(slot, tz):
        yield local_half_hour(start, tz)


def plan_week(inputs: TariffInputs) -> WeekPlan:
    """Decide the label of every half-hour of the next seven local dates, keyed by weekday."""
    tz = ZoneInfo(inputs.time_zone)
    today = inputs.now.astimezone(tz).date()
    dates = [today + timedelta(days=k) for k in range(DAYS)]
    by_date = {d: i for i, d in enumerate(dates)}
    default = default_day(inputs.off_peak_start, inputs.off_peak_end)
    days = [list(default) for _ in dates]
    rank = {label: i for i, label in enumerate(PRECEDENCE)}

    def mark(slots: Iterable[Slot], label: str) -> None:
        for whole in slots:
            slot = clip(whole, inputs.now)
            if slot is None:
                continue
            for d, h in half_hours_touched(slot, tz):
                i = by_date.get(d)
                if i is not None and rank[label] > rank[days[i][h]]:
                    days[i][h] = label

    mark(inputs.dispatches, OFF_PEAK)
    mark(inputs.free_slots, SUPER_OFF_PEAK)
    in_week = [s for s in inputs.saving_sessions if _touches_week(s.slot, inputs.now, tz, by_date)]
    mark((s.slot for s in in_week), PARTIAL_PEAK)

    grid: list[tuple[str, ...]] = [()] * DAYS
    weekday_dates: list[date] = [today] * DAYS
    for i, d in enumerate(dates):
        grid[d.weekday()] = tuple(days[i])
        weekday_dates[d.weekday()] = d
    used = {label for day in grid for label in day}
    prices = {label: p for label, p in _prices(inputs.rates, in_week).items() if label in used}
    return WeekPlan(grid=tuple(grid), dates=tuple(weekday_dates), prices=prices)


def _touches_week(slot: Slot, now: datetime, tz: ZoneInfo, by_date: Mapping[date, int]) -> bool:
    clipped = clip(slot, now)
    return clipped is not None and any(d in by_date for d, _ in half_hours_touched(clipped, tz))


def _prices(rates: Rates, sessions: Sequence[SavingSession]) -> dict[str, tuple[float, float]]:
    """(buy, sell) per label; sell is clamped to buy, because Tesla would otherwise raise buy."""
    buy = {
        ON_PEAK: rates.import_peak,
        OFF_PEAK: rates.import_off_peak,
        SUPER_OFF_PEAK: 0.0,
        # Tesla allows one price per label, so the richest session in the week sets it.
        PARTIAL_PEAK: rates.import_peak + max((s.reward for s in sessions), default=0.0),
    }
    sell = {
        ON_PEAK: rates.export_peak,
        OFF_PEAK: rates.export_off_peak,
        SUPER_OFF_PEAK: 0.0,
        PARTIAL_PEAK: rates.export_peak,
    }
    return {k: (_money(max(buy[k], 0.0)), _money(max(min(sell[k], buy[k]), 0.0))) for k in buy}


def _money(value: float) -> float:
    return round(value, 5)


def label_runs(labels: Sequence[T]) -> list[tuple[int, int, T]]:
    """(start, end, value) for each run of equal neighbours, end exclusive."""
    runs: list[tuple[int, int, T]] = []
    for i, value in enumerate(labels):
        if runs and runs[-1][2] == value:
            runs[-1] = (runs[-1][0], i + 1, value)
        else:
            runs.append((i, i + 1, value))
    return runs


def _periods(grid: Sequence[Sequence[str]]) -> dict[str, list[dict[str, int]]]:
    """Turn the grid into Tesla periods: runs within a day, identical runs on adjacent days merged."""
    runs: dict[tuple[str, int, int], list[int]] = {}
    for weekday, day in enumerate(grid):
        for start, end, label in label_runs(day):
            runs.setdefault((label, start, end), []).append(weekday)
    out: dict[str, list[dict[str, int]]] = {}
    for (label, start, end), weekdays in runs.items():
        for first, last in _consecutive(weekdays):
            out.setdefault(label, []).append(
                {
                    "fromDayOfWeek": first,
                    "toDayOfWeek": last,
                    "fromHour": start // 2,
                    "fromMinute": (start % 2) * 30,
                    # Tesla writes the end of the day as 0:00.
                    "toHour": (end // 2) % 24,
                    "toMinute": (end % 2) * 30,
                }
            )
    for periods in out.values():
        periods.sort(key=lambda p: (p["fromDayOfWeek"], p["fromHour"], p["fromMinute"]))
    return dict(sorted(out.items()))


def _consecutive(values: Sequence[int]) -> list[tuple[int, int]]:
    groups: list[tuple[int, int]] = []
    for v in sorted(values):
        if groups and v == groups[-1][1] + 1:
            groups[-1] = (groups[-1][0], v)
        else:
            groups.append((v, v))
    return groups


def _side(name: str, utility: str, rates: Mapping[str, float], periods: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "utility": utility,
        "currency": "GBP",
        "daily_charges": [{"name": "Charge", "amount": 0}],
        "demand_charges": {"ALL": {"rates": {"ALL": 0}}, "Summer": {}, "Winter": {}},
        "energy_charges": {"ALL": {"rates": {"ALL": 0}}, "Summer": {"rates": dict(rates)}, "Winter": {}},
        "seasons": {
            "Summer": {
                "fromMonth": 1,
                "fromDay": 1,
                "toMonth": 12,
                "toDay": 31,
                "tou_periods": {label: {"periods": p} for label, p in periods.items()},
            },
            "Winter": {},
        },
    }


def render_tariff(plan: WeekPlan, name: str, utility: str) -> dict[str, Any]:
    """The tariff_content_v2 object for a week plan (buy side plus sell_tariff)."""
    periods = _periods(plan.grid)
    buy = {label: plan.prices[label][0] for label in periods}
    sell = {label: plan.prices[label][1] for label in periods}
    tariff = {"version": 1, "code": TARIFF_CODE, **_side(name, utility, buy, periods)}
    tariff["sell_tariff"] = _side(name, utility, sell, periods)
    return tariff


def build_tariff(inputs: TariffInputs) -> tuple[WeekPlan, dict[str, Any]]:
    plan = plan_week(inputs)
    return plan, render_tariff(plan, inputs.name, inputs.utility)


def tariff_digest(tariff: Mapping[str, Any]) -> str:
    """A stable hash of the tariff; equal tariffs give equal digests whatever the key order."""
    canonical = json.dumps(tariff, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---- Reading a tariff back (our own or the live one) -------------------------------------


def _minute(period: Mapping[str, Any], hour_key: str, minute_key: str) -> int:
    return int(period.get(hour_key, 0)) * 60 + int(period.get(minute_key, 0))


def expand_side(side: Mapping[str, Any]) -> list[list[list[str]]]:
    """Labels covering each minute of the week: grid[weekday][minute] -> labels claiming it. The plain
    reading, kept as the tests' oracle for ``side_intervals``, which the code uses.

    Accepts Tesla's read-back form: proto3-style JSON that omits every zero field (so a
    missing toDayOfWeek is 0: the live fixture in tesla_tariff_api.md spells out a 6, and a
    Monday-only period would otherwise read as the whole week), an end of 0:00 or 24:00 meaning
    midnight, and periods that wrap past midnight.
    """
    grid: list[list[list[str]]] = [[[] for _ in range(MINUTES_PER_DAY)] for _ in range(DAYS)]
    seasons = side.get("seasons") or {}
    for season in seasons.values():
        for label, entry in ((season or {}).get("tou_periods") or {}).items():
            for p in (entry or {}).get("periods") or []:
                first = int(p.get("fromDayOfWeek", 0))
                last = int(p.get("toDayOfWeek", 0))
                start = _minute(p, "fromHour", "fromMinute")
                end = _minute(p, "toHour", "toMinute")
                end = MINUTES_PER_DAY if end in (0, MINUTES_PER_DAY) else end
                days = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
                for d in days:
                    if start < end:
                        for m in range(start, end):
                            grid[d][m].append(label)
                    else:  # wraps midnight: tail belongs to the next day
                        for m in range(start, MINUTES_PER_DAY):
                            grid[d][m].append(label)
                        for m in range(0, end):
                            grid[(d + 1) % 7][m].append(label)
    return grid


Interval = tuple[int, int, str]  # [start, end) minutes of one weekday, and the label claiming them


def side_intervals(side: Mapping[str, Any]) -> list[list[Interval]]:
    """The same reading as ``expand_side`` (zero fields left out, 0:00 or 24:00 as midnight, wraps past
    midnight), as half-open minute intervals per weekday: a few dozen tuples instead of 10,080 lists,
    so that every poll's validation and every read-back's comparison stay cheap on a Raspberry Pi."""
    days: list[list[Interval]] = [[] for _ in range(DAYS)]
    seasons = side.get("seasons") or {}
    for season in seasons.values():
        for label, entry in ((season or {}).get("tou_periods") or {}).items():
            for p in (entry or {}).get("periods") or []:
                first = int(p.get("fromDayOfWeek", 0))
                last = int(p.get("toDayOfWeek", 0))
                start = _minute(p, "fromHour", "fromMinute")
                end = _minute(p, "toHour", "toMinute")
                end = MINUTES_PER_DAY if end in (0, MINUTES_PER_DAY) else end
                if not (
                    0 <= start <= MINUTES_PER_DAY and 0 <= end <= MINUTES_PER_DAY and 0 <= first < 7 and 0 <= last < 7
                ):
                    raise ValueError(f"a period of {label} lies outside the week")
                weekdays = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
                for d in weekdays:
                    if start < end:
                        days[d].append((start, end, label))
                    else:  # wraps midnight: the tail belongs to the next day
                        days[d].append((start, MINUTES_PER_DAY, label))
                        days[(d + 1) % 7].append((0, end, label))
    return [[(a, b, label) for a, b, label in day if a < b] for day in days]


def labels_at(day: Sequence[Interval], minute: int) -> list[str]:
    return [label for a, b, label in day if a <= minute < b]


def _coverage(day: Sequence[Interval]) -> tuple[int, int]:
    """Minutes of a weekday no period covers, and minutes more than one covers."""
    cuts = sorted({0, MINUTES_PER_DAY, *(x for a, b, _ in day for x in (a, b))})
    gaps = overlaps = 0
    for a, b in itertools.pairwise(cuts):
        depth = sum(1 for s, e, _ in day if s <= a < e)
        if depth == 0:
            gaps += b - a
        elif depth > 1:
            overlaps += b - a
    return gaps, overlaps


def _side_rates(side: Mapping[str, Any]) -> dict[str, float]:
    charges = side.get("energy_charges") or {}
    rates: dict[str, float] = {}
    for season_name, season in charges.items():
        if season_name == "ALL":
            continue
        for label, price in ((season or {}).get("rates") or {}).items():
            rates[label] = float(price or 0)
    return rates


def validate_tariff(tariff: Mapping[str, Any], *, theirs: bool = False) -> list[str]:
    """Every rule Tesla states (and the app's 24 h check), as a list of human-readable problems.

    ``theirs``: a tariff read back from a site (the user's own, for --restore). Tesla accepts its
    optional parts as it gave them: no sell side, or a sell side without a currency.
    """
    try:
        return _problems(tariff, theirs=theirs)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, OverflowError, RecursionError) as err:
        return [f"unreadable ({type(err).__name__}: {str(err)[:80]})"]


def _problems(tariff: Mapping[str, Any], *, theirs: bool) -> list[str]:
    problems: list[str] = []
    sell = tariff.get("sell_tariff")
    sides = {"buy": tariff} if theirs and not sell else {"buy": tariff, "sell": sell or {}}
    grids: dict[str, list[list[Interval]]] = {}
    rates: dict[str, dict[str, float]] = {}
    for side_name, side in sides.items():
        currency = side.get("currency")
        if currency not in ("GBP", "EUR", "USD") and not (theirs and side_name == "sell" and not currency):
            problems.append(f"{side_name}: currency {currency!r} is not GBP/EUR/USD")
        grid = side_intervals(side)
        grids[side_name] = grid
        for d, day in enumerate(grid):
            gaps, overlaps = _coverage(day)
            if gaps or overlaps:
                problems.append(f"{side_name}: weekday {d} has {gaps} uncovered and {overlaps} double-covered minutes")
        labels_with_periods = {label for day in grid for _, _, label in day}
        side_rates = _side_rates(side)
        rates[side_name] = side_rates
        for label in sorted(labels_with_periods - side_rates.keys()):
            problems.append(f"{side_name}: label {label} has periods but no price")
        for label in sorted(side_rates.keys() - labels_with_periods):
            problems.append(f"{side_name}: label {label} has a price but no periods")
        for label, price in sorted(side_rates.items()):
            if not math.isfinite(price) or price < 0:
                problems.append(f"{side_name}: label {label} has a price {price} that is not a finite price")
    if not problems and "sell" in grids:
        for d in range(DAYS):
            for m in range(0, MINUTES_PER_DAY, 30):
                buy = rates["buy"][labels_at(grids["buy"][d], m)[0]]
                sell = rates["sell"][labels_at(grids["sell"][d], m)[0]]
                if sell > buy:
                    problems.append(f"weekday {d} {m // 60:02d}:{m % 60:02d}: sell {sell} above buy {buy}")
                    break
    return problems


def price_grid(tariff: Mapping[str, Any]) -> list[tuple[str, float, float]] | None:
    """The (buy label, buy price, sell price) of each half-hour of the week, or None if unusable.

    Used to compare a live tariff with ours semantically; read-back formatting differs.
    """
    try:
        sell_side = tariff.get("sell_tariff") or {}
        buy_grid, sell_grid = side_intervals(tariff), side_intervals(sell_side)
        buy_rates, sell_rates = _side_rates(tariff), _side_rates(sell_side)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        return None  # a read-back of an odd shape is simply not ours
    out: list[tuple[str, float, float]] = []
    for d in range(DAYS):
        for m in range(0, MINUTES_PER_DAY, 30):
            b, s = labels_at(buy_grid[d], m), labels_at(sell_grid[d], m)
            if len(b) != 1 or len(s) != 1:
                return None
            out.append((b[0], buy_rates.get(b[0], 0.0), sell_rates.get(s[0], 0.0)))
    return out
