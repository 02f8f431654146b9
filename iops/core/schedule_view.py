"""A plain-text view of the next 24 hours of a week plan, for people rather than Tesla."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from iops.core.dispatch_rules import REASON_TEXT, BillingRules, Reason, tariff_family
from iops.core.tariff import OFF_PEAK, ON_PEAK, PARTIAL_PEAK, SUPER_OFF_PEAK, Rates, WeekPlan, default_day, label_runs

T = TypeVar("T")
_HALF_HOUR = timedelta(minutes=30)

SYMBOL = {ON_PEAK: "#", OFF_PEAK: ".", SUPER_OFF_PEAK: "0", PARTIAL_PEAK: "!"}
NAME = {
    ON_PEAK: "peak",
    OFF_PEAK: "off-peak",
    SUPER_OFF_PEAK: "free (Power Up)",
    PARTIAL_PEAK: "saving session (Power Down)",
}


LABEL_REASON: Mapping[str, Reason] = {SUPER_OFF_PEAK: "power-up", PARTIAL_PEAK: "saving-session"}


def reason_for(label: str, dispatch_reason: Reason | None) -> Reason | None:
    """Why a half-hour has its label: an event's label speaks for itself, otherwise the dispatch rule."""
    return LABEL_REASON.get(label, dispatch_reason)


def next_24_hours(plan: WeekPlan, now: datetime, time_zone: str) -> list[tuple[datetime, str]]:
    """(local start, label) for the 48 wall-clock half-hours from the current one."""
    tz = ZoneInfo(time_zone)
    local = now.astimezone(tz)
    cursor = local.replace(minute=local.minute - local.minute % 30, second=0, microsecond=0)
    out = []
    for _ in range(48):
        wall = cursor.astimezone(tz)
        out.append((wall, plan.grid[wall.weekday()][wall.hour * 2 + wall.minute // 30]))
        cursor = (cursor.astimezone(ZoneInfo("UTC")) + _HALF_HOUR).astimezone(tz)
    return out


def blocks(slots: Sequence[tuple[datetime, T]]) -> list[tuple[datetime, datetime, T]]:
    """Neighbouring half-hours with one label merged: (start, end, label), ends in absolute time."""
    return [
        (
            slots[start][0],
            (slots[end - 1][0].astimezone(ZoneInfo("UTC")) + _HALF_HOUR).astimezone(slots[start][0].tzinfo),
            label,
        )
        for start, end, label in label_runs([label for _, label in slots])
    ]


def render_schedule(
    plan: WeekPlan,
    now: datetime,
    time_zone: str,
    rates: Rates,
    *,
    note: str = "",
    reasons: Mapping[tuple[date, int], Reason] | None = None,
) -> str:
    slots = next_24_hours(plan, now, time_zone)
    lines = [f"Schedule for the next 24 hours from {slots[0][0]:%a %d %b %H:%M} ({time_zone}){note}"]
    bar = "".join(SYMBOL[label] for _, label in slots)
    ruler = [" "] * len(slots)
    for i, (wall, _) in enumerate(slots[:-1]):
        if wall.minute == 0 and wall.hour % 3 == 0:
            ruler[i : i + 2] = f"{wall:%H}"
    lines.append("  " + "".join(ruler).rstrip())
    lines.append(f"  {bar}   (one character per half-hour: # peak, . off-peak, 0 free, ! saving session)")
    lines.append("")
    for first, last, label in blocks(slots):
        buy, sell = plan.prices[label]
        span = f"{first:%a %H:%M} - {last:%H:%M}"
        lines.append(f"  {span}  {SYMBOL[label]} {NAME[label]:<28} buy £{buy:.4f}  sell £{sell:.4f} /kWh")
    why = explain(slots, reasons or {})
    if why:
        lines += ["", "Why (every half-hour that is not plain peak or the fixed off-peak window):", *why]
    lines.append("")
    lines.append(
        f"Rates in use: import peak £{rates.import_peak:.4f}, off-peak £{rates.import_off_peak:.4f}, "
        f"export £{rates.export_peak:.4f} (off-peak export £{rates.export_off_peak:.4f}) per kWh"
    )
    return "\n".join(lines)


def explain(slots: Sequence[tuple[datetime, str]], reasons: Mapping[tuple[date, int], Reason]) -> list[str]:
    """One line per run of half-hours sharing a label and a reason."""
    keyed = [
        (wall, (label, reason_for(label, reasons.get((wall.date(), wall.hour * 2 + wall.minute // 30)))))
        for wall, label in slots
    ]
    lines = []
    for first, last, (label, why) in blocks(keyed):
        if why is not None:
            lines.append(f"  {first:%a %H:%M} - {last:%H:%M}  {SYMBOL[label]} {NAME[label]:<28} {REASON_TEXT[why]}")
    return lines


def describe(plan: WeekPlan, off_peak: tuple[time, time], reasons: Mapping[tuple[date, int], Reason]) -> str:
    """Short text of what differs from the plain IOG pattern, and why, for the log."""
    default = default_day(*off_peak)
    parts = []
    for weekday, labels in enumerate(plan.grid):
        day = plan.dates[weekday]
        marks = [
            (label, reason_for(label, reasons.get((day, h)))) if label != usual or (day, h) in reasons else None
            for h, (label, usual) in enumerate(zip(labels, default, strict=True))
        ]
        for h, end, mark in label_runs(marks):
            if mark is not None:
                label, why = mark
                span = f"{h // 2:02d}:{h % 2 * 30:02d}-{end // 2 % 24:02d}:{end % 2 * 30:02d}"
                parts.append(f"{day:%a %d %b} {span} {label}" + (f" ({why})" if why else ""))
    return ", ".join(parts) or "no extra slots"


# What a user whose tariff code the tool does not know can do about it (the log and --check).
OVERRIDE_HINT = (
    "if your bill says otherwise, set [tariff] dispatch_trust and car_allowance_half_hours "
    "(--report suggests a dispatch_trust from your bill)"
)


def describe_allowance(rules: BillingRules) -> str:
    return f"{rules.allowance} half-hours a day" if rules.allowance is not None else "no limit"


def describe_rules(rules: BillingRules) -> str:
    family = tariff_family(rules.tariff_code)
    code = f"tariff {rules.tariff_code}" if rules.tariff_code else "no tariff code known"
    if family is not None and not family.known:
        code += f"; {family.why}"
    return f"Smart slots: dispatch_trust = {rules.trust}, car allowance {describe_allowance(rules)} ({code})"
