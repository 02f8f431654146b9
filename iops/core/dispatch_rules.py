"""Which smart-charge half-hours Octopus bills off-peak for the whole house. Pure: no I/O.

Original Intelligent Octopus Go bills every planned smart half-hour at home off-peak. The tariffs
sold since 2025 (codes containing ``IOG-SMB``, and INTELLI-FIX-OEV) bill a half-hour outside the fixed window off-peak
only if the car really charges in it, and only within the car's allowance: 12 half-hours per
device per allowance day, which runs 12:00 to 12:00 local time. Octopus counts the car's charging
time wherever it falls, so half-hours in the fixed window use up allowance too, though the house
keeps its off-peak rate there whatever happens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from iops.core.tariff import Slot, clip, half_hour_start, half_hour_starts, in_core_window, local_half_hour

Trust = Literal["planned", "started"]
TrustSetting = Literal["auto", "planned", "started"]
SMART_CONTROL = "SMART_CONTROL_IN_PROGRESS"
CHARGE_CAP_MARK = "IOG-SMB"
CAPPED_ALLOWANCE = 12  # half-hours: Octopus's 6-hour car allowance
ALLOWANCE_DAY_STARTS = 12  # local hour
# Started half-hours are remembered this long: enough for the allowance day they belong to.
REMEMBER = timedelta(hours=36)
HALF_HOUR = timedelta(minutes=30)

# Why a half-hour is not simply peak or core off-peak. Long text for --show, short for the log.
Reason = Literal[
    "planned", "started", "completed", "not-started", "awaiting", "over-allowance", "power-up", "saving-session"
]
REASON_TEXT: Mapping[Reason, str] = {
    "planned": "planned smart slot",
    "started": "smart slot under way (car charging)",
    "completed": "completed smart slot",
    "not-started": "planned slot not started yet (dispatch_trust = started)",
    "awaiting": "started, not yet in Octopus's completed list",
    "over-allowance": "past the car allowance",
    "power-up": "Power Up",
    "saving-session": "saving session",
}
CHEAP_REASONS: frozenset[Reason] = frozenset({"planned", "started", "completed"})

# How one device's half-hour stands before the allowance is applied.
_Kind = Literal["planned", "started", "completed", "pending", "awaiting", "missed"]
# Half-hours in which the car charged, or will if the plan holds: these use up allowance.
_COUNTED: frozenset[_Kind] = frozenset({"planned", "started", "completed", "pending", "awaiting"})
# When several devices claim a half-hour, the strongest evidence names it.
_STRENGTH: Sequence[_Kind] = ("missed", "pending", "awaiting", "planned", "started", "completed")
_UNATTRIBUTED = ""


@dataclass(frozen=True)
class PlannedDispatch:
    """A planned SMART dispatch of one device (BOOST and TEST are never off-peak and are left out)."""

    device: str
    slot: Slot


@dataclass(frozen=True)
class DispatchData:
    """One answer from Octopus: planned dispatches per device, completed ones, each EV's state."""

    planned: tuple[PlannedDispatch, ...] = ()
    completed: tuple[Slot, ...] = ()  # smart (or unknown source), wherever they ran
    device_states: Mapping[str, str] = field(default_factory=dict)  # live EV device id -> currentState


@dataclass(frozen=True)
class BillingRules:
    """The billing rules in force: whose evidence makes a slot cheap, and the car allowance."""

    trust: Trust
    allowance: int | None  # half-hours per device and allowance day; None means no limit
    tariff_code: str | None = None  # the import tariff code these were derived from, if known


@dataclass(frozen=True)
class DispatchDecision:
    """Which dispatch half-hours are cheap, and why each one is or is not."""

    cheap: tuple[Slot, ...]  # half-hours outside the core window billed off-peak
    reasons: Mapping[tuple[date, int], Reason]  # (local date, half-hour) -> reason, outside the core window
    started: Mapping[str, tuple[datetime, ...]]  # device -> UTC half-hours seen started, to remember
    by_instant: Mapping[datetime, Reason] = field(
        default_factory=dict
    )  # UTC half-hour start -> reason, outside the core window


@dataclass(frozen=True)
class TariffFamily:
    """What the tool knows of an import tariff code: which billing rules it follows, and why."""

    name: str
    capped: bool  # the 2026 Charge Cap rules: started trust, the car allowance
    known: bool  # a family this version was written for (else the rules are a guess, said as such)
    why: str


# (pattern in the product part of the code, family name, capped). The 2026 products (customers moved
# to IOG-SMB-VAR-24-10-29 from July 2026; new sign-ups on IOG-SMB-FIX-6M/12M and INTELLI-FIX-OEV)
# follow the Charge Cap rules; the older ones bill every planned slot and have no cap.
KNOWN_FAMILIES = (
    (re.compile(r"IOG-SMB-(VAR|TOU|FIX-6M|FIX-12M)-"), "Intelligent Octopus Go (2026 Charge Cap)", True),
    (re.compile(r"INTELLI-FIX-OEV"), "Intelligent Octopus Go fixed (2026 sign-ups, Charge Cap)", True),
    (re.compile(r"INTELLI-(VAR|BB-VAR|FIX)-|IOG-KDP-VAR-"), "Intelligent Octopus Go (original)", False),
)


def tariff_family(tariff_code: str | None) -> TariffFamily | None:
    """The family of an import tariff code, or None when no code is known."""
    if tariff_code is None:
        return None
    code = tariff_code.upper()
    for pattern, name, capped in KNOWN_FAMILIES:
        if pattern.search(code):
            return TariffFamily(name, capped, True, f"{tariff_code} is {name}")
    if CHARGE_CAP_MARK in code:
        return TariffFamily(
            "unknown", True, False, f"{tariff_code} is not a code this version knows, but it names {CHARGE_CAP_MARK}"
        )
    return TariffFamily(
        "unknown",
        False,
        False,
        f"{tariff_code} is not a code this version knows and does not name {CHARGE_CAP_MARK}: "
        "the original Intelligent Octopus Go rules are assumed",
    )


def is_charge_cap_tariff(tariff_code: str | None) -> bool:
    family = tariff_family(tariff_code)
    return family is not None and family.capped


def resolve_rules(trust: TrustSetting, allowance: int | None, tariff_code: str | None) -> BillingRules:
    """The rules in force: ``auto`` follows the tariff code; allowance None = automatic, 0 = no limit."""
    capped = is_charge_cap_tariff(tariff_code)
    resolved: Trust = ("started" if capped else "planned") if trust == "auto" else trust
    automatic = CAPPED_ALLOWANCE if capped else None
    limit = automatic if allowance is None else allowance or None
    return BillingRules(trust=resolved, allowance=limit, tariff_code=tariff_code)


def allowance_day(moment: datetime, tz: ZoneInfo) -> date:
    """The allowance day (12:00 to 12:00 local) a moment belongs to, named by the date it starts."""
    local = moment.astimezone(tz)
    return local.date() if local.hour >= ALLOWANCE_DAY_STARTS else local.date() - timedelta(days=1)


def decide_dispatches(
    data: DispatchData,
    rules: BillingRules,
    remembered: Mapping[str, Iterable[datetime]],
    now: datetime,
    time_zone: str,
    core: tuple[time, time],
) -> DispatchDecision:
    """Which dispatch half-hours the house gets off-peak, and why each one is or is not.

    ``remembered`` holds the half-hours earlier runs saw start (per device); the result's
    ``started`` is the updated record for the caller to keep.
    """
    tz = ZoneInfo(time_zone)
    current = half_hour_start(now, tz)
    data = _clipped(data, now)
    started = _started(data, rules, remembered, now, current)
    kinds = _kinds(data, rules, started, current, tz)
    reasons: dict[datetime, Reason] = {}
    for per_device in _apply_allowance(kinds, rules.allowance, tz):
        for moment, reason in per_device.items():
            if _stronger(reason, reasons.get(moment)):
                reasons[moment] = reason
    outside_core = {
        moment: reason
        for moment, reason in reasons.items()
        if not in_core_window(local_half_hour(moment, tz)[1], *core)
    }
    cheap = tuple(Slot(m, m + HALF_HOUR) for m, r in sorted(outside_core.items()) if r in CHEAP_REASONS)
    by_local: dict[tuple[date, int], Reason] = {}
    for moment, reason in sorted(outside_core.items()):
        key = local_half_hour(moment, tz)
        if _stronger(reason, by_local.get(key)):
            by_local[key] = reason
    return DispatchDecision(cheap=cheap, reasons=by_local, started=started, by_instant=outside_core)


def _clipped(data: DispatchData, now: datetime) -> DispatchData:
    planned = [(d.device, clip(d.slot, now)) for d in data.planned]
    completed = [clip(s, now) for s in data.completed]
    return DispatchData(
        planned=tuple(PlannedDispatch(device, slot) for device, slot in planned if slot is not None),
        completed=tuple(s for s in completed if s is not None),
        device_states=data.device_states,
    )


def _started(
    data: DispatchData,
    rules: BillingRules,
    remembered: Mapping[str, Iterable[datetime]],
    now: datetime,
    current: datetime,
) -> dict[str, tuple[datetime, ...]]:
    """The record of started half-hours, with this run's observation added and old ones dropped."""
    record = {device: {m for m in moments if m > now - REMEMBER} for device, moments in remembered.items()}
    if rules.trust == "started":
        for dispatch in data.planned:
            # BottlecapDave's rule: a dispatch covering now while the car is under smart control.
            if (
                dispatch.slot.start <= now < dispatch.slot.end
                and data.device_states.get(dispatch.device) == SMART_CONTROL
            ):
                record.setdefault(dispatch.device, set()).add(current)
    return {device: tuple(sorted(moments)) for device, moments in sorted(record.items()) if moments}


def _kinds(
    data: DispatchData,
    rules: BillingRules,
    started: Mapping[str, Sequence[datetime]],
    current: datetime,
    tz: ZoneInfo,
) -> dict[str, dict[datetime, _Kind]]:
    """Per device (or the unattributed bucket), how each half-hour it touches stands."""
    kinds: dict[str, dict[datetime, _Kind]] = {}

    def claim(device: str, moment: datetime, kind: _Kind) -> None:
        mine = kinds.setdefault(device, {})
        if _STRENGTH.index(kind) > _STRENGTH.index(mine.get(moment, "missed")) or moment not in mine:
            mine[moment] = kind

    for dispatch in data.planned:
        seen = set(started.get(dispatch.device, ()))
        for moment in half_hour_starts(dispatch.slot, tz):
            if rules.trust == "planned":
                claim(dispatch.device, moment, "planned")
            elif moment in seen:
                claim(dispatch.device, moment, "started" if moment >= current else "awaiting")
            else:
                claim(dispatch.device, moment, "pending" if moment >= current else "missed")
    if rules.trust == "started":
        # A started half-hour stays started even if its dispatch has since left the planned list.
        for device, moments in started.items():
            for moment in moments:
                claim(device, moment, "started" if moment >= current else "awaiting")
    evs = sorted(set(data.device_states) | {d.device for d in data.planned})
    for slot in data.completed:
        for moment in half_hour_starts(slot, tz):
            claim(_owner(moment, kinds, evs), moment, "completed")
    return kinds


def _owner(moment: datetime, kinds: Mapping[str, Mapping[datetime, _Kind]], evs: Sequence[str]) -> str:
    """Completed dispatches carry no device: credit the one that planned or started the half-hour."""
    for device in evs:
        if moment in kinds.get(device, {}):
            return device
    return evs[0] if len(evs) == 1 else _UNATTRIBUTED


def _apply_allowance(
    kinds: Mapping[str, Mapping[datetime, _Kind]], allowance: int | None, tz: ZoneInfo
) -> Iterable[dict[datetime, Reason]]:
    """Per device: count its charging half-hours in time order; those past the allowance are not cheap."""
    for per_device in kinds.values():
        used: dict[date, int] = {}
        out: dict[datetime, Reason] = {}
        for moment in sorted(per_device):
            kind = per_device[moment]
            over = False
            if kind in _COUNTED:
                day = allowance_day(moment, tz)
                used[day] = used.get(day, 0) + 1
                over = allowance is not None and used[day] > allowance
            out[moment] = _reason(kind, over=over)
        yield out


def _reason(kind: _Kind, *, over: bool) -> Reason:
    return "over-allowance" if over else _KIND_REASON[kind]


_KIND_REASON: Mapping[_Kind, Reason] = {
    "planned": "planned",
    "started": "started",
    "completed": "completed",
    "pending": "not-started",
    "awaiting": "awaiting",
    "missed": "not-started",
}

_REASON_STRENGTH: Sequence[Reason] = (
    "not-started",
    "awaiting",
    "over-allowance",
    "planned",
    "started",
    "completed",
)


def _stronger(new: Reason, old: Reason | None) -> bool:
    """A cheap reason beats any other, so one car within its allowance makes the house cheap."""
    return old is None or _REASON_STRENGTH.index(new) > _REASON_STRENGTH.index(old)
