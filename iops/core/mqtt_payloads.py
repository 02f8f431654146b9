"""What goes to MQTT: the status payload and Home Assistant discovery. Pure: no I/O, no paho.

iops.services.mqtt carries these out; the decisions (what to publish, when discovery is due, which
entities to remove) are made here so they can be tested without a broker.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from iops import NAME, VERSION
from iops.core.tariff import OFF_PEAK, SUPER_OFF_PEAK

if TYPE_CHECKING:
    from iops.core.settings import MqttConfig
    from iops.core.tariff import WeekPlan

RESULT_LIMIT = 255  # Home Assistant drops a sensor state longer than this
DETAIL_LIMIT = 2000  # Home Assistant's recorder drops attributes that are too large (a 20,000-character error did)
DISCOVERY_EVERY = timedelta(days=1)  # re-sent so that a broker that lost its retained messages recovers
# Before 1.1 every config shared one identity; its entities are removed once a config has its own.
LEGACY_NODE = "io_powerwall_scheduler"
LEGACY_ENTITIES = (
    ("switch", "enabled"),
    ("sensor", "last_run"),
    ("sensor", "result"),
    ("sensor", "hash"),
    ("sensor", "next_off_peak"),
    ("binary_sensor", "posted"),
)
CHEAP = frozenset({OFF_PEAK, SUPER_OFF_PEAK})
_HALF_HOUR = timedelta(minutes=30)

Block = tuple[str, str, str]  # (start, end, label), ISO 8601 with offset


def cheap_blocks(plan: WeekPlan, now: datetime, time_zone: str) -> list[Block]:
    """Off-peak and free blocks over the next 24 hours, the current one with its real start."""
    tz = ZoneInfo(time_zone)
    local = now.astimezone(tz)
    cursor = local.replace(minute=local.minute - local.minute % 30, second=0, microsecond=0).astimezone(UTC)

    def label(moment: datetime) -> str:
        wall = moment.astimezone(tz)
        return plan.grid[wall.weekday()][wall.hour * 2 + wall.minute // 30]

    first = cursor
    while label(first - _HALF_HOUR) in CHEAP and cursor - first < timedelta(hours=24):
        first -= _HALF_HOUR
    blocks: list[list[Any]] = []
    moment = first
    while moment < cursor + timedelta(hours=24):
        kind = label(moment)
        if kind in CHEAP:
            if blocks and blocks[-1][1] == moment and blocks[-1][2] == kind:
                blocks[-1][1] = moment + _HALF_HOUR
            else:
                blocks.append([moment, moment + _HALF_HOUR, kind])
        moment += _HALF_HOUR
    return [(s.astimezone(tz).isoformat(), e.astimezone(tz).isoformat(), k) for s, e, k in blocks]


@dataclass(frozen=True)
class StatusFacts:
    """What the status reports; the last posted values come from the state, so a failed run keeps them."""

    result: str
    posted: bool
    now: datetime
    last_hash: str = ""
    last_post: float | None = None
    failing_since: float | None = None
    blocks: Sequence[Block] = ()
    bill: BillFacts | None = None  # the bill check's newest final day, when there is one
    battery: BatteryFacts | None = None  # the battery check's newest day, when there is one
    live_problem: LiveProblem | None = None  # the live check caught the battery discharging in a cheap block


@dataclass(frozen=True)
class BillFacts:
    """The newest final day of the bill check: how often the bill agreed with what we told the Powerwall."""

    day: str  # the allowance day, named by its first date
    agreement: float | None  # share of the half-hours with usage that agree (None: no usage to judge)
    phantom: int  # half-hours we said cheap and Octopus billed standard
    phantom_gbp: float


@dataclass(frozen=True)
class BatteryFacts:
    """Yesterday (local) as the battery check saw it."""

    day: str
    discharged_while_cheap_kwh: float
    gbp: float


@dataclass(frozen=True)
class LiveProblem:
    since: float
    detail: str


def _iso(timestamp: Any) -> str | None:
    valid = isinstance(timestamp, int | float) and not isinstance(timestamp, bool) and 0 < timestamp < 4e9
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if valid else None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_payload(facts: StatusFacts) -> dict[str, Any]:
    result = facts.result
    short = _cut(result, RESULT_LIMIT)
    upcoming = [b for b in facts.blocks if datetime.fromisoformat(b[1]) > facts.now]
    return {
        "last_run": facts.now.isoformat(),
        "result": short,
        "detail": _cut(result, DETAIL_LIMIT),
        "posted": facts.posted,
        "hash": facts.last_hash,
        "last_post": _iso(facts.last_post),
        "failing_since": _iso(facts.failing_since),
        "next_off_peak": upcoming[0][0] if upcoming else None,
        "next_off_peak_blocks": [{"start": s, "end": e, "label": k} for s, e, k in upcoming],
        "bill_check": None
        if facts.bill is None
        else {
            "day": facts.bill.day,
            "agreement_percent": None if facts.bill.agreement is None else round(100 * facts.bill.agreement, 1),
            "phantom_half_hours": facts.bill.phantom,
            "phantom_gbp": facts.bill.phantom_gbp,
        },
        "battery_check": None
        if facts.battery is None
        else {
            "day": facts.battery.day,
            "discharged_while_cheap_kwh": facts.battery.discharged_while_cheap_kwh,
            "gbp": facts.battery.gbp,
        },
        "battery_problem": {
            "on": facts.live_problem is not None,
            "since": _iso(facts.live_problem.since) if facts.live_problem else None,
            "detail": facts.live_problem.detail if facts.live_problem else "",
        },
    }


def discovery_messages(config: MqttConfig) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery: the enable flag as a switch, the status as sensors."""
    node = config.node_id
    device = {
        "identifiers": [node],
        "name": config.device_name,
        "manufacturer": NAME,
        "model": "Tesla tariff for Intelligent Octopus Go",
        "sw_version": VERSION,
    }
    prefix = config.discovery_prefix.rstrip("/")
    stale = round(config.stale_after_minutes * 60)
    messages: list[tuple[str, dict[str, Any]]] = [
        (
            f"{prefix}/switch/{node}/enabled/config",
            {
                "name": "Enabled",
                "unique_id": f"{node}_enabled",
                "command_topic": config.enable_topic,
                "state_topic": config.enable_topic,
                "payload_on": "on",
                "payload_off": "off",
                "state_on": "on",
                "state_off": "off",
                "retain": True,
                "optimistic": False,
                "device": device,
            },
        )
    ]
    bill = "value_json.bill_check"
    battery = "value_json.battery_check"
    sensors: dict[str, dict[str, Any]] = {
        "bill_agreement": {
            "name": "Bill agreement",
            "value_template": (
                f"{{{{ {bill}.agreement_percent if {bill} and {bill}.agreement_percent is not none else None }}}}"
            ),
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "icon": "mdi:receipt-text-check",
            "json_attributes_topic": config.state_topic,
            "json_attributes_template": f"{{{{ {{'day': {bill}.day if {bill} else none}} | tojson }}}}",
        },
        "bill_phantoms": {
            "name": "Phantom cheap half-hours",
            "value_template": f"{{{{ {bill}.phantom_half_hours if {bill} else None }}}}",
            "state_class": "measurement",
            "icon": "mdi:receipt-text-remove",
            "json_attributes_topic": config.state_topic,
            "json_attributes_template": (
                f"{{{{ {{'gbp': {bill}.phantom_gbp if {bill} else none, "
                f"'day': {bill}.day if {bill} else none}} | tojson }}}}"
            ),
        },
        "battery_cheap_discharge": {
            "name": "Battery discharged while cheap yesterday",
            "value_template": f"{{{{ {battery}.discharged_while_cheap_kwh if {battery} else None }}}}",
            "unit_of_measurement": "kWh",
            "state_class": "measurement",
            "icon": "mdi:battery-arrow-down",
            "json_attributes_topic": config.state_topic,
            "json_attributes_template": (
                f"{{{{ {{'gbp': {battery}.gbp if {battery} else none, "
                f"'day': {battery}.day if {battery} else none}} | tojson }}}}"
            ),
        },
        "last_run": {"name": "Last run", "value_template": "{{ value_json.last_run }}", "device_class": "timestamp"},
        "result": {
            "name": "Result",
            "value_template": "{{ value_json.result }}",
            "json_attributes_topic": config.state_topic,
            "json_attributes_template": (
                "{{ {'detail': value_json.detail, 'failing_since': value_json.failing_since, "
                "'last_post': value_json.last_post} | tojson }}"
            ),
        },
        # No tariff of ours is live (after a restore): unknown, not an empty string.
        "hash": {"name": "Tariff hash", "value_template": "{{ value_json.hash[:12] if value_json.hash else None }}"},
        "next_off_peak": {
            "name": "Next off-peak",
            # "None" is Home Assistant's word for no value: the sensor shows unknown.
            "value_template": "{{ value_json.next_off_peak if value_json.next_off_peak else None }}",
            "device_class": "timestamp",
            "json_attributes_topic": config.state_topic,
            "json_attributes_template": "{{ {'blocks': value_json.next_off_peak_blocks} | tojson }}",
        },
    }
    diagnostic = {"last_run", "hash"}  # the switch and Result stay on the Overview
    for key, fields in sensors.items():
        payload = {
            **fields,
            "unique_id": f"{node}_{key}",
            "state_topic": config.state_topic,
            "expire_after": stale,
            "device": device,
        }
        if key in diagnostic:
            payload["entity_category"] = "diagnostic"
        messages.append((f"{prefix}/sensor/{node}/{key}/config", payload))
    messages.append(
        (
            f"{prefix}/binary_sensor/{node}/posted/config",
            {
                "name": "Posted last run",
                "unique_id": f"{node}_posted",
                "state_topic": config.state_topic,
                "value_template": "{{ 'ON' if value_json.posted else 'OFF' }}",
                "expire_after": stale,
                "entity_category": "diagnostic",
                "device": device,
            },
        )
    )
    problem = "value_json.battery_problem"
    messages.append(
        (
            f"{prefix}/binary_sensor/{node}/battery_problem/config",
            {
                "name": "Battery discharging in a cheap slot",
                "unique_id": f"{node}_battery_problem",
                "state_topic": config.state_topic,
                "value_template": f"{{{{ 'ON' if {problem} and {problem}.on else 'OFF' }}}}",
                "device_class": "problem",
                "json_attributes_topic": config.state_topic,
                "json_attributes_template": (
                    f"{{{{ {{'detail': {problem}.detail if {problem} else none, "
                    f"'since': {problem}.since if {problem} else none}} | tojson }}}}"
                ),
                "expire_after": stale,
                "device": device,
            },
        )
    )
    return messages


@dataclass(frozen=True)
class DiscoveryPlan:
    """What discovery this run publishes, and what to remember once the broker has taken it."""

    publish: list[tuple[str, str]]  # (topic, payload); an empty payload removes the entity
    digest: str  # of the discovery in force ("" when discovery is off)
    at: float  # when it was last sent
    topics: tuple[str, ...]  # its topics, so that entities no longer ours can be removed later

    @property
    def sent(self) -> tuple[str, float, tuple[str, ...]] | None:
        """What to remember once the broker has taken it (None: no discovery of ours is out there)."""
        return (self.digest, self.at, self.topics) if self.digest else None


def plan_discovery(
    config: MqttConfig,
    sent: tuple[str, float, Sequence[str]] | None,
    legacy_digest: bool,
    now: datetime,
    *,
    status_retained: bool | None,
) -> DiscoveryPlan:
    """Which discovery messages this run sends: when changed, daily, and when the broker lost its
    retained status (a sign it lost the discovery too); and empty ones for entities no longer ours.

    ``sent``: the digest, time and topics of the discovery last sent, if any.
    """
    wanted = discovery_messages(config) if config.discovery else []
    topics = tuple(topic for topic, _ in wanted)
    digest = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest() if wanted else ""
    if sent is not None:
        known: Sequence[str] = sent[2]
    else:
        prefix = config.discovery_prefix.rstrip("/")
        legacy = [f"{prefix}/{kind}/{LEGACY_NODE}/{key}/config" for kind, key in LEGACY_ENTITIES]
        known = legacy if legacy_digest else []
    removals = [(str(topic), "") for topic in known if topic not in topics]
    last = sent[1] if sent is not None else 0.0
    due = bool(wanted) and (
        sent is None
        or sent[0] != digest
        or now.timestamp() - last >= DISCOVERY_EVERY.total_seconds()
        or status_retained is False
    )
    publish = [(topic, json.dumps(payload, sort_keys=True)) for topic, payload in wanted] if due else []
    return DiscoveryPlan(publish=publish + removals, digest=digest, at=now.timestamp() if due else last, topics=topics)


# ---- the Enabled switch ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagView:
    """What the retained flag means this run, given what this config saw of it before."""

    enabled: bool
    reason: str
    last_seen: str  # "on", "off" or "" (never seen): remembered for the next run
    publish: str | None = None  # what to put (back) on the enable topic
    ours_off: bool = False  # an "off" we published for a pause is still out there


def read_flag(
    retained: str | None, *, last_seen: str, ours_off: bool, paused: bool, default_when_no_flag: bool
) -> FlagView:
    """``retained``: the flag on the broker ("on"/"off"), None when the broker holds none.

    A broker that loses its retained messages must not turn a switch the user turned off back on:
    a vanished flag keeps the last one seen, and "on" is published only for a config that has never
    seen a flag. While ``--restore`` pauses the config the switch shows off; turning it on resumes.
    After a pause ended by --resume, the "off" we published is ours, not the user's: it becomes on.
    """
    if paused:
        if ours_off and retained == "on":
            return FlagView(True, "switched on over MQTT while paused: resumed", "on")
        publish = None if retained == "off" else "off"
        return FlagView(False, "paused", last_seen, publish, ours_off=ours_off or publish is not None)
    if retained is not None:
        if ours_off and retained == "off":
            return FlagView(True, "the pause ended: the switch is on again", "on", "on")
        return FlagView(retained != "off", f"flag {retained!r}", "off" if retained == "off" else "on")
    if last_seen == "off":
        return FlagView(False, "the broker lost the flag; off, as last seen", "off", "off")
    if last_seen == "on":
        return FlagView(True, "the broker lost the flag; on, as last seen", "on")
    return FlagView(default_when_no_flag, "no flag", "", "on" if default_when_no_flag else None)
