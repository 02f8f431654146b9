"""After a run: the retained MQTT status, discovery when due, and the switch's first state."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from iops.app.cache import State
from iops.app.failures import Failure
from iops.app.outcome import Outcome
from iops.core.call_policy import TeslaCalls
from iops.core.memory import PAST
from iops.core.settings import Config

log = logging.getLogger(__name__)
QUIET = frozenset({"up to date", "waiting", "backing off"})  # runs that learnt nothing new

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
    own_back: bool = False  # and it was a tariff of the user's (not "nothing kept to put back")
    last_flag: str = ""  # the flag this config last saw ("on"/"off"; "" never): a lost retained flag is put back
    ours_off: bool = False  # the switch shows an "off" we published while --restore paused the config
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
    if failing.runs and outcome.result in QUIET:  # a streak under way: Result stays on its error
        text = f"error: {failing.reason}"
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
    if flag is not None and flag.switch is not None:  # its first state, a lost flag put back, off while paused
        messages.append((config.mqtt.enable_topic, flag.switch))
    messages.append((config.mqtt.state_topic, json.dumps(status_payload(facts), sort_keys=True)))
    # Over MQTT 5 the broker drops the status once stale: an old one is never shown as fresh.
    expire = {config.mqtt.state_topic: max(round(config.mqtt.stale_after_minutes * 60), 1)}
    if publish(config.mqtt, messages, expire):
        kept = discovery.sent
        memory = replace(memory, discovery=DiscoverySent(*kept) if kept is not None else None, legacy_discovery="")
    return state.put(memory)


def interpret_flag(
    state: State, reading: FlagReading, *, paused: bool, default_when_no_flag: bool
) -> tuple[bool, FlagReading, State]:
    """Whether the run goes on, given the flag read and what this config saw of it before; the
    reading comes back with what ``publish_status`` puts on the enable topic."""
    from iops.core.mqtt_payloads import read_flag

    if not reading.reachable:  # nothing learnt about the flag: [mqtt] run_when_unreachable decides
        return (reading.enabled and not paused), reading, state
    memory = state.get(MqttMemory)
    retained = ("on" if reading.enabled else "off") if reading.flag_retained else None
    view = read_flag(
        retained,
        last_seen=memory.last_flag,
        ours_off=memory.ours_off,
        paused=paused,
        default_when_no_flag=default_when_no_flag,
    )
    if view.reason not in ("paused", "no flag") and not view.reason.startswith("flag "):
        log.info("MQTT: %s", view.reason)
    memory = replace(memory, last_flag=view.last_seen, ours_off=view.ours_off)
    return view.enabled, replace(reading, switch=view.publish), state.put(memory)
