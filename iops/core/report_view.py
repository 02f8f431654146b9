"""The bill check for people (a strip per day, like --show's) and for programs (JSON). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

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


def render_text(
    days: Sequence[ReportDay], total: Summary, suggestion: Suggestion | None, in_force: str, tz: ZoneInfo
) -> str:
    lines = [
        f"Did it match my bill? The last {len(days)} allowance day(s), 12:00 to 12:00 ({tz.key}), newest first.",
        "  posted:  # peak  . cheap  0 free  ! saving session        (blank: the scheduler told nothing)",
        "  billed:  # standard  . cheap  ? unknown  _ no usage         (blank: not settled yet)",
        "  verdict: = agree  P phantom (we said cheap, billed standard)  M missed (billed cheap, we said peak)",
        "           - no usage  ? unknown",
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
        lines.append("  " + _counts(day.summary))
        if day.note:
            lines.append(f"  note: {day.note}")
    lines += ["", f"Totals: {_counts(total)}"]
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
    return {
        "days": [
            {
                "start": day.start.astimezone(tz).isoformat(),
                "end": day.end.astimezone(tz).isoformat(),
                "status": day.status,
                "note": day.note,
                "half_hours": [_row_json(row, tz) for row in day.rows],
                "summary": summary_json(day.summary),
            }
            for day in days
        ],
        "totals": summary_json(total),
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
