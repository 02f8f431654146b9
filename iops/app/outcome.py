"""How a run ended: for the log, the exit code and the MQTT status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from iops.core.tariff import WeekPlan

Result = Literal[
    "posted",
    "up to date",
    "mismatch: reposting",
    "waiting",
    "backing off",
    "dry run",
    "disabled",
    "paused",
    "config error",
    "error",
]


@dataclass(frozen=True)
class Outcome:
    """How a run ended."""

    result: Result
    posted: bool = False
    digest: str = ""
    plan: WeekPlan | None = None
    answered: frozenset[str] = frozenset()  # services that answered this run: their failure streak ends
    detail: str = ""  # the error, for the log and the MQTT status
