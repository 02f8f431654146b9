"""Power Down (saving session) and Power Up events: which shape the tariff, which to join. Pure.

The answers are parsed into SessionEvent records by the Octopus client (iops.services.kraken_answers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from iops.core.tariff import SavingSession, Slot

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


def plan_sessions(
    events: Sequence[SessionEvent], *, export_rate: float, min_offset: float, auto_join_min_reward: float | None
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
