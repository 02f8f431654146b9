"""The MQTT on/off switch and publishing, over short-lived paho connections.

What to publish is decided in iops.core.mqtt_payloads.

Imported only when [mqtt] enabled = true, so paho-mqtt never slows an ordinary run.
Every network wait here is bounded by [mqtt] wait_seconds: a dead broker must not hang cron.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

if TYPE_CHECKING:
    from iops.core.settings import MqttConfig

log = logging.getLogger(__name__)
SUBACK_GRACE_SECONDS = 0.5  # retained messages follow the SUBACK at once; no need to wait longer


@dataclass(frozen=True)
class FlagReading:
    enabled: bool
    reachable: bool
    reason: str
    flag_retained: bool = False  # a flag is retained on enable_topic
    status_retained: bool | None = None  # the status topic holds a retained message; None = not known
    switch: str | None = None  # what the run puts (back) on enable_topic, decided with what the config saw before


class _Connection:
    """A short-lived client driven by hand (no background thread), always within a deadline."""

    def __init__(self, config: MqttConfig, timeout: float, *, v5: bool = False) -> None:
        self.config = config
        self.deadline = time.monotonic() + timeout
        self.connected: bool | None = None
        self.failure = ""
        self.refused_protocol = False
        self.v5 = v5
        client_id = f"{config.node_id}-{os.getpid()}"
        if v5:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        else:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
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
            self.refused_protocol = "protocol" in str(reason).lower()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def pump(self, until: Any) -> None:
        while not until() and self.remaining() > 0:
            self.client.loop(timeout=min(0.1, max(self.remaining(), 0.01)))

    def open(self) -> bool:
        try:
            if self.v5:
                self.client.connect(self.config.host, self.config.port, keepalive=30, clean_start=True)
            else:
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
    """The retained enable flag: "off" disables, anything else enables; defaults from the config.

    The same subscription also looks for our retained status: finding none tells us the broker
    lost its retained messages, so discovery is due again. That costs no extra connection.
    """
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
        got.setdefault(message.topic, message.payload.decode("utf-8", "replace").strip())

    def on_subscribe(client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        subscribed.append(time.monotonic())

    conn.client.on_message = on_message
    conn.client.on_subscribe = on_subscribe
    topics = [config.enable_topic, config.state_topic]
    conn.client.subscribe([(topic, 1) for topic in dict.fromkeys(topics)])
    conn.pump(
        lambda: (
            all(t in got for t in topics)
            or bool(subscribed and time.monotonic() - subscribed[0] > SUBACK_GRACE_SECONDS)
        )
    )
    conn.close()
    if not subscribed and not got.get(config.enable_topic):
        # Connected, but the subscription went unanswered (a broker that lags or drops after CONNACK):
        # that says nothing about the flag. Only an answered subscription may mean "no flag".
        reason = "the broker accepted the connection but did not answer the subscription"
        log.warning("MQTT: %s; %s as configured", reason, "running" if config.default_when_unreachable else "skipping")
        return FlagReading(config.default_when_unreachable, False, reason)
    status_retained = bool(got.get(config.state_topic)) if subscribed else None
    if not got.get(config.enable_topic):
        log.debug("MQTT: no retained flag on %s", config.enable_topic)
        return FlagReading(config.default_when_no_flag, True, "no flag", status_retained=status_retained)
    value = got[config.enable_topic]
    return FlagReading(value.lower() != "off", True, f"flag {value!r}", True, status_retained)


def publish(config: MqttConfig, messages: Sequence[tuple[str, str]], expire: Mapping[str, int] | None = None) -> bool:
    """Publish retained messages (an empty payload clears a topic); False if the broker did not take them all.

    ``expire``: topic -> seconds. Over MQTT 5 the broker drops such a retained message after that
    long, so a status cron stopped writing is not shown as fresh after a Home Assistant restart. A
    broker that speaks only 3.1.1 gets the messages without an expiry.
    """
    conn = _Connection(config, config.wait_seconds, v5=bool(expire))
    if not conn.open() and conn.v5 and (conn.refused_protocol or conn.connected is None):
        # A 3.1.1-only broker refuses MQTT 5 or just hangs up: the status goes without its expiry.
        log.debug("MQTT: the broker did not take MQTT 5 (%s); publishing without an expiry", conn.failure)
        conn.close()
        conn = _Connection(config, conn.remaining(), v5=False)
        conn.open()
    if not conn.connected:
        log.debug("MQTT status not published: %s", conn.failure)
        conn.close()
        return False
    infos = []
    for topic, payload in messages:
        properties = None
        seconds = (expire or {}).get(topic)
        if conn.v5 and seconds and payload:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho has no hints here
            properties.MessageExpiryInterval = seconds
        infos.append(conn.client.publish(topic, payload, qos=1, retain=True, properties=properties))
    conn.pump(lambda: all(i.is_published() for i in infos))
    done = all(i.is_published() for i in infos)
    conn.close()
    return done
