"""The bill and battery checks for people (a strip per day, like --show's) and for programs (JSON). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from iops.core.battery_check import BATTERY_SYMBOL, BatteryHalfHour, BatterySummary, add_battery
from iops.core.bill_check import Row, Suggestion, Summary

POSTED_SYMBOL: Mapping[str | None, str] = {"peak": "#", "cheap": ".", "free": "0", "session": "!", None: " "}
BILLED_SYMBOL: Mapping[str | None, str] = {"cheap": ".", "standard": "#", "unknown": "?", None: " "}
VERDICT_SYMBOL: Mapping[str, str] = {"agree": "=", "phantom": "P", "missed": "M", "no usage": "-", "unknown": "?"}


@dataclass(frozen=True)
class ReportDay:
    """One allowance day as the report shows it."""

    day: date
    start: datetime
    end: datetime
    status: str  # final, provisional, missing
    rows: Sequence[Row]
    summary: Summary
    note: str = ""
    battery: Sequence[BatteryHalfHour] = ()  # beside ``rows``, half-hour by half-hour
    battery_summary: BatterySummary = field(default_factory=BatterySummary)
    battery_note: str = ""


def render_text(
    days: Sequence[ReportDay], total: Summary, suggestion: Suggestion | None, in_force: str, tz: ZoneInfo
) -> str:
    battery_total = BatterySummary()
    for day in days:
        battery_total = add_battery(battery_total, day.battery_summary)
    lines = [
        f"Did it match my bill? The last {len(days)} allowance day(s), 12:00 to 12:00 ({tz.key}), newest first.",
        "  posted:  # peak  . cheap  0 free  ! saving session        (blank: the scheduler told nothing)",
        "  billed:  # standard  . cheap  ? unknown  _ no usage         (blank: not settled yet)",
        "  verdict: = agree  P phantom (we said cheap, billed standard)  M missed (billed cheap, we said peak)",
        "           - no usage  ? unknown",
        "  battery: = obeyed  D discharged while cheap  I idle in a session  g grid-charged at peak (advisory)",
        "           ? unknown                                        (blank: not read from Tesla yet)",
    ]
    for day in days:
        local = [row.start.astimezone(tz) for row in day.rows]
        lines += [
            "",
            f"{day.start.astimezone(tz):%a %d %b %H:%M} - {day.end.astimezone(tz):%a %d %b %H:%M}  {day.status}",
        ]
        ruler = [" "] * len(local)
        for i, wall in enumerate(local[:-1]):
            if wall.minute == 0 and wall.hour % 3 == 0:
                ruler[i : i + 2] = f"{wall:%H}"
        lines.append("            " + "".join(ruler).rstrip())
        lines.append("  posted    " + "".join(POSTED_SYMBOL.get(row.posted, "?") for row in day.rows))
        lines.append("  billed    " + "".join(_billed(row) for row in day.rows))
        lines.append(
            "  verdict   " + "".join(" " if row.billed is None else VERDICT_SYMBOL[row.verdict] for row in day.rows)
        )
        if day.battery:
            lines.append("  battery   " + "".join(_battery_symbol(b) for b in day.battery))
        lines.append("  " + _counts(day.summary))
        lines.append("  " + _battery_counts(day.battery_summary))
        if day.note:
            lines.append(f"  note: {day.note}")
        if day.battery_note:
            lines.append(f"  battery note: {day.battery_note}")
    lines += ["", f"Totals: {_counts(total)}", f"        {_battery_counts(battery_total)}"]
    if suggestion is None:
        lines.append(
            "Suggestion: none yet (no final day where a planned slot was never begun and the bill tells which way)"
        )
    else:
        same = suggestion.dispatch_trust == in_force
        lines.append(
            f"Suggestion: over {suggestion.days} final day(s), dispatch_trust = {suggestion.dispatch_trust} "
            f"agreed with your bill more often (£{suggestion.gbp:.2f} better, on {suggestion.evidence} "
            "half-hour(s) where the two differ)"
            + (": as set now." if same else f"; it is {in_force} now. Nothing is changed for you.")
        )
    return "\n".join(lines)


def _battery_symbol(row: BatteryHalfHour) -> str:
    return BATTERY_SYMBOL[row.verdict] if row.read else " "


def _battery_counts(summary: BatterySummary) -> str:
    return (
        f"battery: discharged while cheap {summary.discharged_while_cheap_kwh:.2f} kWh "
        f"(£{summary.discharged_while_cheap_gbp:.2f}), idle in a session {summary.idle_in_session}, "
        f"grid-charged at peak {summary.grid_charged_at_peak}, unknown {summary.unknown}"
    )


def _billed(row: Row) -> str:
    if row.verdict == "no usage":
        return "_"
    return BILLED_SYMBOL.get(row.billed, "?")


def _counts(summary: Summary) -> str:
    return (
        f"agree {summary.agree}, phantom {summary.phantom} (£{summary.phantom_gbp:.2f}), "
        f"missed {summary.missed} (£{summary.missed_gbp:.2f}), no usage {summary.no_usage}, unknown {summary.unknown}"
    )


def render_json(
    days: Sequence[ReportDay], total: Summary, suggestion: Suggestion | None, tz: ZoneInfo
) -> dict[str, Any]:
    """One object: ``days`` (newest first), ``totals`` and ``suggestion``; times ISO 8601 with offset."""
    battery_total = BatterySummary()
    for day in days:
        battery_total = add_battery(battery_total, day.battery_summary)
    return {
        "days": [
            {
                "start": day.start.astimezone(tz).isoformat(),
                "end": day.end.astimezone(tz).isoformat(),
                "status": day.status,
                "note": day.note,
                "battery_note": day.battery_note,
                "half_hours": [
                    _row_json(row, tz) | _battery_json(battery)
                    for row, battery in zip(day.rows, _beside(day), strict=True)
                ],
                "summary": summary_json(day.summary) | battery_json(day.battery_summary),
            }
            for day in days
        ],
        "totals": summary_json(total) | battery_json(battery_total),
        "suggestion": None
        if suggestion is None
        else {"dispatch_trust": suggestion.dispatch_trust, "days": suggestion.days, "gbp": suggestion.gbp},
    }


def _row_json(row: Row, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "start": row.start.astimezone(tz).isoformat(),
        "posted": row.posted,
        "reason": row.reason,
        "billed": row.billed,
        "import_kwh": None if row.import_kwh is None else round(row.import_kwh, 3),
        "verdict": row.verdict,
        "gbp": round(row.gbp, 4),
    }


def _beside(day: ReportDay) -> Sequence[BatteryHalfHour | None]:
    return day.battery if day.battery else [None] * len(day.rows)


def _battery_json(row: BatteryHalfHour | None) -> dict[str, Any]:
    energy = row.energy if row is not None else None
    return {
        "battery_discharge_kwh": None if energy is None else round(energy.discharge_wh / 1000, 3),
        "battery_grid_charge_kwh": None if energy is None else round(energy.grid_charge_wh / 1000, 3),
        "battery": row.verdict if row is not None else "unknown",
    }


def battery_json(summary: BatterySummary) -> dict[str, Any]:
    return {
        "battery_discharged_while_cheap_kwh": summary.discharged_while_cheap_kwh,
        "battery_discharged_while_cheap_gbp": summary.discharged_while_cheap_gbp,
        "battery_idle_in_session": summary.idle_in_session,
        "battery_grid_charged_at_peak": summary.grid_charged_at_peak,
        "battery_unknown": summary.unknown,
    }


def summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "agree": summary.agree,
        "phantom": summary.phantom,
        "missed": summary.missed,
        "no_usage": summary.no_usage,
        "unknown": summary.unknown,
        "phantom_gbp": summary.phantom_gbp,
        "missed_gbp": summary.missed_gbp,
    }
