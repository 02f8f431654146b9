"""After a run: the retained MQTT status, discovery when due, and the switch's first state."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from iops.core.settings import Config

if TYPE_CHECKING:
    from iops.app.logs import RedactSecrets
    from iops.core.tariff import WeekPlan
    from iops.services.mqtt import FlagReading

Result = Literal[
    "posted",
    "unchanged",
    "verified",
    "waiting",
    "between polls",
    "backing off",
    "dry run",
    "disabled",
    "paused",
    "config error",
    "error",
]


@dataclass(frozen=True)
class Outcome:
    result: Result
    posted: bool = False
    digest: str = ""
    plan: WeekPlan | None = None
    answered: frozenset[str] = frozenset()  # services that answered this run: their failure streak ends
    detail: str = ""  # the error, for the log and the MQTT status


def publish_status(
    config: Config,
    state: dict[str, Any],
    outcome: Outcome,
    flag: FlagReading | None,
    now: datetime,
    redactor: RedactSecrets | None,
) -> None:
    """The retained status, plus discovery when due, plus the switch's first state when none is retained."""
    from iops.core.mqtt_payloads import StatusFacts, cheap_blocks, plan_discovery, status_payload
    from iops.services.mqtt import publish

    kept = state.get("mqtt")
    memory: dict[str, Any] = kept if isinstance(kept, dict) else {}
    if not isinstance(memory.get("discovery", {}), dict) or not isinstance(memory.get("blocks", []), list):
        memory = {}  # not of this version's making: discovery is simply sent again
    if outcome.plan is not None:
        # Kept, so that a failed run still reports the off-peak blocks the Powerwall is working to.
        memory["blocks"] = [list(b) for b in cheap_blocks(outcome.plan, now, config.tariff.time_zone)]
    tesla = state.get("tesla") or {}
    failing = state.get("failing") or {}
    text = f"{outcome.result}: {outcome.detail}" if outcome.detail else outcome.result
    facts = StatusFacts(
        result=redactor.redact(text) if redactor else text,
        posted=outcome.posted,
        now=now,
        last_hash=str(tesla.get("posted_hash") or ""),
        last_post=tesla.get("posted_at"),
        failing_since=failing.get("since"),
        blocks=[(str(b[0]), str(b[1]), str(b[2])) for b in memory.get("blocks") or [] if _is_block(b)],
    )
    discovery = plan_discovery(
        config.mqtt,
        memory.get("discovery") or {},
        "mqtt_discovery" in state,
        now,
        status_retained=flag.status_retained if flag else None,
    )
    messages = list(discovery.publish)
    if flag is not None and not flag.flag_retained and config.mqtt.default_when_no_flag:
        messages.append((config.mqtt.enable_topic, "on"))  # the switch shows on, not unknown
    messages.append((config.mqtt.state_topic, json.dumps(status_payload(facts), sort_keys=True)))
    if publish(config.mqtt, messages):
        state.pop("mqtt_discovery", None)  # the digest alone, as kept before 1.1
        if discovery.memory:
            memory["discovery"] = discovery.memory
        else:
            memory.pop("discovery", None)
    state["mqtt"] = memory


def _is_block(value: Any) -> bool:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
        return False
    try:
        return datetime.fromisoformat(value[1]).tzinfo is not None
    except ValueError:
        return False
