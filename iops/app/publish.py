"""After a run: the retained MQTT status, discovery when due, and the switch's first state."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from iops.app.cache import State
from iops.app.failures import Failure
from iops.app.outcome import Outcome
from iops.core.call_policy import TeslaCalls
from iops.core.memory import PAST
from iops.core.settings import Config

if TYPE_CHECKING:
    from iops.app.logs import RedactSecrets
    from iops.services.mqtt import FlagReading


@dataclass(frozen=True)
class DiscoverySent:
    """The Home Assistant discovery last taken by the broker."""

    digest: str = ""
    at: float = field(default=0.0, metadata=PAST)
    topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class MqttMemory:
    """What the MQTT side remembers (the "mqtt" section)."""

    discovery: DiscoverySent | None = None
    # The off-peak blocks the Powerwall works to, so that a failed run still reports them.
    blocks: tuple[tuple[datetime, datetime, str], ...] = ()
    restored_when_off: bool = False  # switched off, the user's own tariff went back (once)
    legacy_discovery: str = ""  # a 1.0 config's shared discovery digest: its entities are removed once


def publish_status(
    config: Config,
    state: State,
    outcome: Outcome,
    flag: FlagReading | None,
    now: datetime,
    redactor: RedactSecrets | None,
) -> State:
    """The retained status, plus discovery when due, plus the switch's first state when none is retained."""
    from iops.app.battery import BatteryMemory
    from iops.app.settle import SettleMemory
    from iops.core.mqtt_payloads import (
        BatteryFacts,
        BillFacts,
        LiveProblem,
        StatusFacts,
        cheap_blocks,
        plan_discovery,
        status_payload,
    )
    from iops.services.mqtt import publish

    memory = state.get(MqttMemory)
    if outcome.plan is not None:
        blocks = cheap_blocks(outcome.plan, now, config.tariff.time_zone)
        memory = replace(
            memory, blocks=tuple((datetime.fromisoformat(s), datetime.fromisoformat(e), k) for s, e, k in blocks)
        )
    tesla, failing, settled = state.get(TeslaCalls), state.get(Failure), state.get(SettleMemory)
    battery = state.get(BatteryMemory)
    text = f"{outcome.result}: {outcome.detail}" if outcome.detail else outcome.result
    bill = (
        BillFacts(settled.final_day, settled.agreement, settled.phantom, settled.phantom_gbp)
        if settled.final_day
        else None
    )
    facts = StatusFacts(
        result=redactor.redact(text) if redactor else text,
        posted=outcome.posted,
        now=now,
        last_hash=tesla.posted_hash,
        last_post=tesla.posted_at or None,
        failing_since=failing.since if failing.runs else None,
        blocks=[(s.isoformat(), e.isoformat(), k) for s, e, k in memory.blocks],
        bill=bill,
        battery=BatteryFacts(battery.day, battery.cheap_kwh, battery.cheap_gbp)
        if battery.day and battery.cheap_kwh is not None
        else None,
        live_problem=LiveProblem(battery.problem_since, battery.problem_detail)
        if battery.problem_until > now.timestamp()
        else None,
    )
    sent = memory.discovery
    discovery = plan_discovery(
        config.mqtt,
        (sent.digest, sent.at, sent.topics) if sent is not None else None,
        bool(memory.legacy_discovery),
        now,
        status_retained=flag.status_retained if flag else None,
    )
    messages = list(discovery.publish)
    if flag is not None and not flag.flag_retained and config.mqtt.default_when_no_flag:
        messages.append((config.mqtt.enable_topic, "on"))  # the switch shows on, not unknown
    messages.append((config.mqtt.state_topic, json.dumps(status_payload(facts), sort_keys=True)))
    if publish(config.mqtt, messages):
        kept = discovery.sent
        memory = replace(memory, discovery=DiscoverySent(*kept) if kept is not None else None, legacy_discovery="")
    return state.put(memory)
