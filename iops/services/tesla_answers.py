"""Tesla's energy history (``calendar_history``) and ``live_status`` answers, read defensively.

Tesla leaves zero fields out, ``time_series`` can be null or empty, ``response`` can be an empty
string, over-long answers hold other days, and the step is undocumented (5 minutes since 2024).
Every field is optional; a value that is not a finite, non-negative number of plausible size
makes its row unusable (its half-hour unknown) rather than a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from iops.core.battery_check import EnergyRow, LiveReading, local_day_bounds

MAX_WH_PER_ROW = 20_000.0  # 240 kW for 5 minutes: far beyond any home; a bigger value is an error


@dataclass(frozen=True)
class EnergyAnswer:
    """The rows of one local day, and what was odd about the answer (for the report's note)."""

    rows: tuple[EnergyRow, ...]
    notes: tuple[str, ...]
    battery_fields: bool = True  # some row named a battery flow (a site without a battery names none)


def _energy(row: dict[str, Any], key: str) -> float | None:
    """A field in Wh: absent means 0 (Tesla omits zeros); None when it is not a usable number."""
    value = row.get(key, 0)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0 or number > MAX_WH_PER_ROW:
        return None
    return number


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


def parse_energy_history(response: Any, day: date, tz: ZoneInfo) -> EnergyAnswer:
    """The rows of ``day`` (local) from a ``calendar_history`` response (the body's ``response``)."""
    if not isinstance(response, dict):
        return EnergyAnswer((), ("Tesla sent no energy history (an empty answer)",))
    series = response.get("time_series")
    if not isinstance(series, list) or not series:
        return EnergyAnswer((), ("Tesla has no energy history for this day yet",))
    start, end = local_day_bounds(day, tz)
    rows: list[EnergyRow] = []
    odd = other_days = 0
    battery_fields = False
    for raw in series:
        if not isinstance(raw, dict):
            odd += 1
            continue
        moment = _instant(raw.get("timestamp"))
        if moment is None:
            odd += 1
            continue
        if not start <= moment < end:
            other_days += 1  # over-long answers exist; only the day asked for counts
            continue
        battery_fields = battery_fields or any(str(key).startswith("battery_") for key in raw)
        discharge = _energy(raw, "battery_energy_exported")
        grid_charge = _energy(raw, "battery_energy_imported_from_grid")
        if discharge is None or grid_charge is None:
            odd += 1
            continue
        rows.append(EnergyRow(moment, discharge, grid_charge))
    notes = []
    if odd:
        notes.append(f"{odd} row(s) with an odd time or value were left out (their half-hours are unknown)")
    if other_days and not rows:
        notes.append("Tesla's answer held other days, not this one")
    if rows and not battery_fields:
        notes.append("Tesla's history names no battery flows for this day (a site without a battery?)")
        return EnergyAnswer((), tuple(notes), battery_fields=False)
    return EnergyAnswer(tuple(sorted(rows, key=lambda r: r.start)), tuple(notes))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_live_status(response: Any) -> LiveReading:
    """``live_status``: battery_power (W, > 0 discharging), grid_power (W, > 0 importing), the charge
    level, Storm Watch and the grid's state, and when it was measured."""
    if not isinstance(response, dict):
        return LiveReading(None, None, None, None)
    percent = _number(response.get("percentage_charged"))
    return LiveReading(
        at=_instant(response.get("timestamp")),
        battery_w=_number(response.get("battery_power")),
        grid_w=_number(response.get("grid_power")),
        charge_percent=percent if percent is not None and 0 <= percent <= 100 else None,
        storm=response.get("storm_mode_active") is True,
        grid_active=response.get("grid_status") in (None, "Active"),
    )
