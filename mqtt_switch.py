"""The MQTT on/off switch, status publishing and Home Assistant discovery.

Imported only when [mqtt] enabled = true, so paho-mqtt never slows an ordinary run.
Every network wait here is bounded by [mqtt] wait_seconds: a dead broker must not hang cron.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from schedule_view import blocks, next_24_hours
from tariff import OFF_PEAK, SUPER_OFF_PEAK

if TYPE_CHECKING:
    from config import MqttConfig
    from tariff import WeekPlan

log = logging.getLogger(__name__)
NODE_ID = "io_powerwall_scheduler"
SUBACK_GRACE_SECONDS = 0.5  # retained messages follow the SUBACK at once; no need to wait longer


@dataclass(frozen=True)
class FlagReading:
    enabled: bool
    reachable: bool
    reason: str


class _Connection:
    """A short-lived client driven by hand (no background thread), always within a deadline."""

    def __init__(self, config: MqttConfig, timeout: float) -> None:
        self.config = config
        self.deadline = time.monotonic() + timeout
        self.connected: bool | None = None
        self.failure = ""
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{NODE_ID}-{os.getpid()}", clean_session=True)
        if config.username:
            self.client.username_pw_set(config.username, config.password or None)
        if config.tls:
            self.client.tls_set(ca_certs=config.ca_certs or None)
        self.client.on_connect = self._on_connect
        self.client.connect_timeout = max(timeout, 0.5)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected = not reason.is_failure
        if reason.is_failure:
            self.failure = f"broker refused the connection ({reason})"

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def pump(self, until: Any) -> None:
        while not until() and self.remaining() > 0:
            self.client.loop(timeout=min(0.1, max(self.remaining(), 0.01)))

    def open(self) -> bool:
        try:
            self.client.connect(self.config.host, self.config.port, keepalive=30)
        except (OSError, ValueError) as err:
            self.failure = f"cannot reach {self.config.host}:{self.config.port} ({type(err).__name__})"
            return False
        self.pump(lambda: self.connected is not None)
        if self.connected is None:
            self.failure = self.failure or "no answer from the broker"
        return bool(self.connected)

    def close(self) -> None:
        try:
            self.client.disconnect()
            self.client.loop(timeout=0.05)
        except (OSError, ValueError):
            pass


def read_enable_flag(config: MqttConfig) -> FlagReading:
    """The retained enable flag: "off" disables, anything else enables; defaults from the config."""
    conn = _Connection(config, config.wait_seconds)
    if not conn.open():
        log.warning(
            "MQTT: %s; %s as configured", conn.failure, "running" if config.default_when_unreachable else "skipping"
        )
        conn.close()
        return FlagReading(config.default_when_unreachable, False, conn.failure)
    got: dict[str, str] = {}
    subscribed: list[float] = []

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        got.setdefault("value", message.payload.decode("utf-8", "replace").strip())

    def on_subscribe(client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        subscribed.append(time.monotonic())

    conn.client.on_message = on_message
    conn.client.on_subscribe = on_subscribe
    conn.client.subscribe(config.enable_topic, qos=1)
    conn.pump(lambda: "value" in got or bool(subscribed and time.monotonic() - subscribed[0] > SUBACK_GRACE_SECONDS))
    conn.close()
    if "value" not in got:
        log.debug("MQTT: no retained flag on %s", config.enable_topic)
        return FlagReading(config.default_when_no_flag, True, "no flag")
    value = got["value"]
    return FlagReading(value.lower() != "off", True, f"flag {value!r}")


def status_payload(
    result: str, posted: bool, digest: str, plan: WeekPlan | None, now: datetime, time_zone: str
) -> dict[str, Any]:
    cheap = [
        {"start": start.isoformat(), "end": end.isoformat(), "label": label}
        for start, end, label in (blocks(next_24_hours(plan, now, time_zone)) if plan is not None else [])
        if label in (OFF_PEAK, SUPER_OFF_PEAK)
    ]
    return {"last_run": now.isoformat(), "result": result, "posted": posted, "hash": digest, "next_off_peak": cheap}


def discovery_messages(config: MqttConfig) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery: the enable flag as a switch, the status as sensors."""
    device = {"identifiers": [NODE_ID], "name": "IO Powerwall Scheduler", "manufacturer": "io-powerwall-scheduler"}
    prefix = config.discovery_prefix.rstrip("/")
    messages: list[tuple[str, dict[str, Any]]] = [
        (
            f"{prefix}/switch/{NODE_ID}/enabled/config",
            {
                "name": "Enabled",
                "unique_id": f"{NODE_ID}_enabled",
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
    sensors = {
        "last_run": ("Last run", "{{ value_json.last_run }}", "timestamp"),
        "result": ("Result", "{{ value_json.result }}", None),
        "hash": ("Tariff hash", "{{ value_json.hash[:12] }}", None),
        "next_off_peak": (
            "Next off-peak",
            "{{ value_json.next_off_peak[0].start if value_json.next_off_peak else 'none' }}",
            None,
        ),
    }
    for key, (name, template, device_class) in sensors.items():
        config_payload: dict[str, Any] = {
            "name": name,
            "unique_id": f"{NODE_ID}_{key}",
            "state_topic": config.state_topic,
            "value_template": template,
            "device": device,
        }
        if device_class:
            config_payload["device_class"] = device_class
        messages.append((f"{prefix}/sensor/{NODE_ID}/{key}/config", config_payload))
    messages.append(
        (
            f"{prefix}/binary_sensor/{NODE_ID}/posted/config",
            {
                "name": "Posted last run",
                "unique_id": f"{NODE_ID}_posted",
                "state_topic": config.state_topic,
                "value_template": "{{ 'ON' if value_json.posted else 'OFF' }}",
                "device": device,
            },
        )
    )
    return messages


def publish_status(config: MqttConfig, status: dict[str, Any], state: dict[str, Any]) -> bool:
    """Publish the retained status (and discovery when it changed); False if the broker was unusable."""
    conn = _Connection(config, config.wait_seconds)
    if not conn.open():
        log.debug("MQTT status not published: %s", conn.failure)
        conn.close()
        return False
    messages: list[tuple[str, dict[str, Any]]] = []
    if config.discovery:
        discovery = discovery_messages(config)
        digest = hashlib.sha256(json.dumps(discovery, sort_keys=True).encode()).hexdigest()
        if state.get("mqtt_discovery") != digest:
            messages.extend(discovery)
            state["mqtt_discovery"] = digest
    messages.append((config.state_topic, status))
    infos = [
        conn.client.publish(topic, json.dumps(payload, sort_keys=True), qos=1, retain=True)
        for topic, payload in messages
    ]
    conn.pump(lambda: all(i.is_published() for i in infos))
    done = all(i.is_published() for i in infos)
    if not done:
        state.pop("mqtt_discovery", None)
    conn.close()
    return done
