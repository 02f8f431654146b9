"""Power Down (saving session) events from Octopus's savingSessions query.

Usage: python3 savings_sessions.py [config.txt]   lists sessions and which ones you joined.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from errors import BadResponse
from octopus import parse_time
from tariff import SavingSession, Slot

log = logging.getLogger(__name__)

OCTOPOINTS_PER_POUND = 800  # 8 points = 1p
POWER_DOWN_TYPES = frozenset({"TURN_DOWN"})
POWER_UP_TYPES = frozenset({"TURN_UP", "WEEKEND_HAPPY_HOUR"})


@dataclass(frozen=True)
class SessionEvent:
    code: str
    slot: Slot
    reward: float  # GBP per kWh
    kind: str  # "down" or "up"
    joined: bool
    in_region: bool


@dataclass(frozen=True)
class SessionPlan:
    saving_sessions: list[SavingSession]  # joined Power Downs worth holding the battery for
    free_slots: list[Slot]  # joined zero-point Power Up hours (weekend happy hours)
    to_join: list[str]  # codes worth joining, when auto-join is on


def parse_session_events(data: Mapping[str, Any], now: datetime) -> list[SessionEvent]:
    """Events that have not ended yet; raises BadResponse when the answer is not usable."""
    root = data.get("savingSessions")
    if not isinstance(root, dict):
        raise BadResponse("Octopus", "savingSessions missing from the answer")
    account = root.get("account") or {}
    if not account.get("hasJoinedCampaign", True):
        return []
    region = (account.get("signedUpMeterPoint") or {}).get("regionId")
    joined_ids = {str(e.get("eventId")) for e in account.get("joinedEvents") or [] if isinstance(e, dict)}
    events = []
    for item in root.get("events") or []:
        if not isinstance(item, dict):
            raise BadResponse("Octopus", "saving session event is not an object")
        slot = Slot(parse_time(item.get("startAt")), parse_time(item.get("endAt")))
        if slot.end <= now:
            continue
        points = float(item.get("rewardPerKwhInOctoPoints") or 0)
        event_type = str(item.get("eventType") or ("TURN_DOWN" if points > 0 else "TURN_UP")).upper()
        if event_type not in POWER_DOWN_TYPES | POWER_UP_TYPES:
            continue
        regions = {r.get("regionId") for r in item.get("targetRegion") or [] if isinstance(r, dict)}
        events.append(
            SessionEvent(
                code=str(item.get("code") or ""),
                slot=slot,
                reward=points / OCTOPOINTS_PER_POUND,
                kind="down" if event_type in POWER_DOWN_TYPES else "up",
                joined=str(item.get("id")) in joined_ids,
                in_region=not regions or region in regions,
            )
        )
    return sorted(events, key=lambda e: e.slot.start)


def plan_sessions(
    events: list[SessionEvent], *, export_rate: float, min_offset: float, auto_join_min_reward: float | None
) -> SessionPlan:
    """Which sessions shape the tariff, and which are worth joining.

    A session only pays to honour if its reward beats simply exporting at the normal rate.
    """
    threshold = export_rate + min_offset
    saving = [SavingSession(e.slot, e.reward) for e in events if e.kind == "down" and e.joined and e.reward > threshold]
    free = [e.slot for e in events if e.kind == "up" and e.joined]
    to_join = (
        [
            e.code
            for e in events
            if e.kind == "down" and not e.joined and e.in_region and e.reward >= auto_join_min_reward
        ]
        if auto_join_min_reward is not None
        else []
    )
    return SessionPlan(saving_sessions=saving, free_slots=free, to_join=to_join)


def main(argv: list[str] | None = None) -> int:
    from event_listing import list_events

    return list_events(argv if argv is not None else sys.argv[1:], "sessions")


if __name__ == "__main__":
    sys.exit(main())
