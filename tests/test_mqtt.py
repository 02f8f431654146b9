"""The MQTT switch and status against a real mosquitto broker started by the tests."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import AT, ROOT, Result, read_state
from fakes import DAY_PENCE, FakeKraken, FakeTessie, Outage

from iops.app.config import load_config
from iops.core.settings import MqttConfig

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
OPENSSL = shutil.which("openssl") or ""
PASSWD = shutil.which("mosquitto_passwd") or (
    "/usr/bin/mosquitto_passwd" if Path("/usr/bin/mosquitto_passwd").exists() else None
)

if MOSQUITTO is None:
    if os.environ.get("CI"):
        pytest.fail("mosquitto is required in CI (.ci/run installs it)", pytrace=False)
    pytest.skip("mosquitto not installed (apt-get install mosquitto)", allow_module_level=True)

mqtt = pytest.importorskip("paho.mqtt.client")
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

ENTITIES = 10  # Home Assistant entities per config: switch, 7 sensors, 2 binary sensors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    def __init__(self, tmp: Path, *, password: tuple[str, str] | None = None, tls: Path | None = None) -> None:
        self.port = free_port()
        # As root, mosquitto would switch to its own user and could not read files in pytest's 0700 tmp dirs.
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr", f"user {user}"]
        if password:
            assert PASSWD is not None
            pw_file = tmp / "passwd"
            pw_file.write_text("")
            subprocess.run([PASSWD, "-b", str(pw_file), *password], check=True, capture_output=True)
            pw_file.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pw_file}"]
        else:
            lines.append("allow_anonymous true")
        if tls is not None:
            lines += [f"cafile {tls / 'ca.pem'}", f"certfile {tls / 'server.pem'}", f"keyfile {tls / 'server.key'}"]
        conf = tmp / f"mosquitto-{self.port}.conf"
        conf.write_text("\n".join(lines) + "\n")
        assert MOSQUITTO is not None
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def client(self, auth: tuple[str, str] | None = None) -> Any:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{time.monotonic_ns()}")
        if auth:
            client.username_pw_set(*auth)
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        return client

    def publish_retained(self, topic: str, payload: str, auth: tuple[str, str] | None = None) -> None:
        self.publish_many([(topic, payload)], auth)

    def publish_many(self, messages: list[tuple[str, str]], auth: tuple[str, str] | None = None) -> None:
        """Driven by hand: paho's background thread takes up to a second to stop."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{time.monotonic_ns()}")
        if auth:
            client.username_pw_set(*auth)
        client.connect("127.0.0.1", self.port)
        infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
        deadline = time.monotonic() + 5
        while not all(i.is_published() for i in infos) and time.monotonic() < deadline:
            client.loop(timeout=0.05)
        assert all(i.is_published() for i in infos), "the broker did not take the messages"
        client.disconnect()
        client.loop(timeout=0.05)

    def retained(self, topic_filter: str, seconds: float = 5.0, auth: tuple[str, str] | None = None) -> dict[str, str]:
        """The retained messages under a filter: they arrive right after the SUBACK, so wait for that
        and a short grace (``seconds`` is only the limit)."""
        got: dict[str, str] = {}
        subscribed: list[float] = []
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"reader-{time.monotonic_ns()}")
        if auth:
            client.username_pw_set(*auth)
        client.on_message = lambda c, u, m: got.__setitem__(m.topic, m.payload.decode())
        client.on_subscribe = lambda *_: subscribed.append(time.monotonic())
        client.connect("127.0.0.1", self.port)
        client.subscribe(topic_filter, qos=1)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (subscribed and time.monotonic() - subscribed[0] > 0.3):
            client.loop(timeout=0.05)
        client.disconnect()
        return got


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    yield b
    b.stop()


ENABLE, STATE = "io_powerwall_scheduler/enabled", "io_powerwall_scheduler/state"


class LaggingProxy:
    """Between a client and the broker: passes the CONNACK back, then holds everything else the
    broker says (a broker that lags, or drops, after accepting the connection)."""

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.broker_port))
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, 4), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, only: int | None) -> None:
        """Copy bytes; with ``only``, pass that many (the CONNACK) and swallow the rest."""
        passed = 0
        try:
            while data := source.recv(4096):
                if only is None:
                    sink.sendall(data)
                elif passed < only:
                    sink.sendall(data[: only - passed])
                    passed += len(data[: only - passed])
        except OSError:
            pass

    def stop(self) -> None:
        self.stopped = True
        self.server.close()


def mqtt_section(port: int, *, own_topics: bool = False, **extra: str) -> dict[str, str]:
    """The [mqtt] section; fixed topics as configs written before 1.1 have them, unless ``own_topics``."""
    topics = {} if own_topics else {"enable_topic": ENABLE, "state_topic": STATE}
    return {"enabled": "true", "host": "127.0.0.1", "port": str(port), "wait_seconds": "3", **topics, **extra}


def mqtt_config(path: Path) -> MqttConfig:
    return load_config(path, env={}).mqtt


def test_flag_off_skips_the_run_before_any_octopus_request(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    broker.publish_retained(ENABLE, "off")
    result = cli(make_config(mqtt=mqtt_section(broker.port)), "--at", AT)
    assert result.code == 0, result.stderr
    assert kraken.requests == [] and tessie.requests == []


def test_flag_on_runs_and_publishes_retained_status(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.planned = [{"start": "2026-11-24T14:00:00+00:00", "end": "2026-11-24T15:00:00+00:00", "type": "SMART"}]
    broker.publish_retained(ENABLE, "ON")
    config = make_config(mqtt=mqtt_section(broker.port))
    result = cli(config, "--at", AT)
    assert result.code == 0, result.stderr
    assert len(tessie.posted) == 1
    status = json.loads(broker.retained(STATE)[STATE])
    state = read_state(config)
    assert status["result"] == "posted" and status["posted"] is True
    assert status["hash"] == state["tesla"]["posted_hash"]
    assert status["last_run"] == AT
    assert status["next_off_peak"] == "2026-11-24T14:00:00+00:00"
    assert status["next_off_peak_blocks"][0] == {
        "start": "2026-11-24T14:00:00+00:00",
        "end": "2026-11-24T15:00:00+00:00",
        "label": "OFF_PEAK",
    }


def test_a_free_power_up_is_an_off_peak_block_in_the_status(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.power_ups = [
        {
            "code": "FREE_ELECTRICITY_EVENT_24",
            "name": "Free Electricity",
            "startAt": "2026-11-24T13:00:00+00:00",
            "endAt": "2026-11-24T14:00:00+00:00",
            "isEventParticipant": True,
        }
    ]
    assert cli(make_config(mqtt=mqtt_section(broker.port)), "--at", AT).code == 0
    status = json.loads(broker.retained(STATE)[STATE])
    assert status["next_off_peak"] == "2026-11-24T13:00:00+00:00"
    assert status["next_off_peak_blocks"][0] == {
        "start": "2026-11-24T13:00:00+00:00",
        "end": "2026-11-24T14:00:00+00:00",
        "label": "SUPER_OFF_PEAK",
    }


def test_no_retained_flag_follows_the_config(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    started = time.monotonic()
    assert cli(make_config(mqtt=mqtt_section(broker.port)), "--at", AT).code == 0
    assert time.monotonic() - started < 3  # no retained message is known at the SUBACK, not after wait_seconds
    assert len(tessie.posted) == 1
    kraken.clear_log()
    # The run above published a retained "on", the switch's first state; a topic with no flag skips.
    assert broker.retained(ENABLE)[ENABLE] == "on"
    other = mqtt_section(broker.port, run_when_no_flag="false", enable_topic="other/enabled")
    result = cli(make_config("other.txt", mqtt=other), "--at", AT)
    assert result.code == 0
    assert kraken.requests == []
    assert "other/enabled" not in broker.retained("other/#")  # "on" is published only when running


def test_broker_down_runs_by_default_within_ten_seconds(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    port = free_port()  # nothing listens here
    started = time.monotonic()
    result = cli(make_config(mqtt=mqtt_section(port)), "--at", AT)
    elapsed = time.monotonic() - started
    assert result.code == 0, result.stderr
    assert elapsed < 10
    assert len(tessie.posted) == 1
    assert "MQTT: cannot reach 127.0.0.1" in result.log
    kraken.clear_log()
    result = cli(make_config("skip.txt", mqtt=mqtt_section(port, run_when_unreachable="false")), "--at", AT)
    assert result.code == 0
    assert kraken.requests == []


def test_wrong_password_is_logged_and_follows_the_default(
    tmp_path: Path, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    secured = Broker(tmp_path, password=("scheduler", "right-password"))
    try:
        secured.publish_retained(ENABLE, "off", auth=("scheduler", "right-password"))
        good = cli(
            make_config("good.txt", mqtt=mqtt_section(secured.port, username="scheduler", password="right-password")),
            "--at",
            AT,
        )
        assert good.code == 0 and kraken.requests == []  # the right password sees "off"
        bad = cli(
            make_config(
                "bad.txt",
                mqtt=mqtt_section(
                    secured.port, username="scheduler", password="wrong-password", run_when_unreachable="false"
                ),
            ),
            "--at",
            AT,
        )
        assert bad.code == 0
        assert "broker refused the connection" in bad.log
        assert "wrong-password" not in bad.log and "right-password" not in good.log
        assert kraken.requests == []
    finally:
        secured.stop()


def test_discovery_payloads_reach_a_subscriber(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(mqtt=mqtt_section(broker.port, discovery="true"))
    node = mqtt_config(config).node_id
    assert cli(config, "--at", AT).code == 0
    got = broker.retained("homeassistant/#")
    switch = json.loads(got[f"homeassistant/switch/{node}/enabled/config"])
    assert switch["command_topic"] == switch["state_topic"] == ENABLE
    assert (switch["payload_on"], switch["payload_off"]) == ("on", "off")
    sensors = {t for t in got if t.startswith("homeassistant/sensor/")}
    assert {f"homeassistant/sensor/{node}/last_run/config", f"homeassistant/sensor/{node}/result/config"} <= sensors
    last_run = json.loads(got[f"homeassistant/sensor/{node}/last_run/config"])
    assert last_run["state_topic"] == STATE and last_run["device_class"] == "timestamp"
    # The switch works: Home Assistant turning it off stops the next run.
    broker.publish_retained(ENABLE, "off")
    kraken.clear_log()
    assert cli(make_config(mqtt=mqtt_section(broker.port, discovery="true")), "--at", AT).code == 0
    assert kraken.requests == []


def test_paho_is_not_imported_when_mqtt_is_off(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path]
) -> None:
    config = make_config()
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import io_powerwall_scheduler as m; "
        "rc = m.main([sys.argv[2], '--at', sys.argv[3]]); print(rc, 'paho' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(config), AT], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["0", "False"]
    assert len(tessie.posted) == 1


def make_certificates(folder: Path) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1."""
    folder.mkdir()

    def ssl(*args: str) -> None:
        subprocess.run([OPENSSL, *args], cwd=folder, check=True, capture_output=True)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    )
    return folder


@pytest.mark.skipif(not OPENSSL, reason="needs openssl to make test certificates")
def test_tls_broker_with_our_ca(
    tmp_path: Path, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    certs = make_certificates(tmp_path / "certs")
    secure = Broker(tmp_path, tls=certs)
    try:
        section = mqtt_section(secure.port, tls="true", ca_certs=str(certs / "ca.pem"), run_when_unreachable="false")
        result = cli(make_config(mqtt=section), "--at", AT)
        assert result.code == 0, result.log
        assert "MQTT" not in result.log  # connected, no flag, so it ran
        assert len(tessie.posted) == 1
        # Without our CA the certificate is not trusted: unreachable, and this config says skip.
        kraken.clear_log()
        untrusted = cli(
            make_config("untrusted.txt", mqtt=mqtt_section(secure.port, tls="true", run_when_unreachable="false")),
            "--at",
            AT,
        )
        assert untrusted.code == 0
        assert "MQTT: cannot reach" in untrusted.log
        assert kraken.requests == []
    finally:
        secure.stop()


def test_broker_that_never_answers_does_not_hang_the_run(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    with socket.socket() as silent:  # completes the TCP handshake, never sends CONNACK
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        result = cli(make_config(mqtt=mqtt_section(silent.getsockname()[1])), "--at", AT)
        elapsed = time.monotonic() - started
    assert result.code == 0, result.log
    assert elapsed < 10
    assert "MQTT: no answer from the broker" in result.log
    assert len(tessie.posted) == 1


# ---- Home Assistant over time and with several configs (issue 12) ------------------------------


OTHER_SITE = "1111222233334444"


def discovery_topics(got: dict[str, str], node: str) -> set[str]:
    return {t for t, payload in got.items() if f"/{node}/" in t and t.endswith("/config") and payload}


def test_two_configs_on_one_broker_are_two_devices(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    tessie.sites.add(OTHER_SITE)
    house = make_config("house.txt", mqtt=mqtt_section(broker.port, own_topics=True, discovery="true"))
    annex = make_config(
        "annex.txt",
        tesla={"site_id": OTHER_SITE},
        tariff={"import_peak": "0.35"},
        mqtt=mqtt_section(broker.port, own_topics=True, discovery="true"),
    )
    a, b = mqtt_config(house), mqtt_config(annex)
    assert cli(house, "--at", AT).code == 0 and cli(annex, "--at", AT).code == 0
    got = broker.retained("#")
    assert len(discovery_topics(got, a.node_id)) == len(discovery_topics(got, b.node_id)) == ENTITIES
    switch_a = json.loads(got[f"homeassistant/switch/{a.node_id}/enabled/config"])
    switch_b = json.loads(got[f"homeassistant/switch/{b.node_id}/enabled/config"])
    assert switch_a["unique_id"] != switch_b["unique_id"]
    assert switch_a["device"]["identifiers"] != switch_b["device"]["identifiers"]
    assert switch_a["device"]["name"] == "IO Powerwall Scheduler (site …1636)"
    assert switch_b["device"]["name"] == "IO Powerwall Scheduler (site …4444)"
    assert switch_a["command_topic"] == a.enable_topic != b.enable_topic == switch_b["command_topic"]
    status_a, status_b = json.loads(got[a.state_topic]), json.loads(got[b.state_topic])
    assert status_a["hash"] == read_state(house)["tesla"]["posted_hash"] != status_b["hash"]
    # Switching one off leaves the other running.
    broker.publish_retained(a.enable_topic, "off")
    assert cli(house, "--at", "2026-11-24T12:03:00+00:00").code == 0
    assert cli(annex, "--at", "2026-11-24T12:03:00+00:00").code == 0
    got = broker.retained("io_powerwall_scheduler/#")
    assert json.loads(got[a.state_topic])["result"] == "disabled"
    assert json.loads(got[b.state_topic])["result"] == "up to date"


def test_discovery_comes_back_after_the_broker_loses_its_retained_messages(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(mqtt=mqtt_section(broker.port, own_topics=True, discovery="true"))
    settings = mqtt_config(config)
    assert cli(config, "--at", AT).code == 0
    sent_at = read_state(config)["mqtt"]["discovery"]["at"]
    assert cli(config, "--at", "2026-11-24T12:01:00+00:00").code == 0
    assert read_state(config)["mqtt"]["discovery"]["at"] == sent_at  # a quiet minute sends no discovery
    lost = [*discovery_topics(broker.retained("#"), settings.node_id), settings.state_topic]
    broker.publish_many([(topic, "") for topic in lost])  # as a broker without persistence after a restart
    assert discovery_topics(broker.retained("#"), settings.node_id) == set()
    assert cli(config, "--at", "2026-11-24T12:02:00+00:00").code == 0
    assert len(discovery_topics(broker.retained("#"), settings.node_id)) == ENTITIES
    assert cli(config, "--at", "2026-11-25T12:03:00+00:00").code == 0
    assert read_state(config)["mqtt"]["discovery"]["at"] > sent_at  # and once a day in any case


def test_switch_starts_on_and_stale_sensors_expire(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(mqtt=mqtt_section(broker.port, own_topics=True, discovery="true", stale_after_minutes="5"))
    settings = mqtt_config(config)
    assert cli(config, "--at", AT).code == 0
    got = broker.retained("#")
    assert got[settings.enable_topic] == "on"  # Home Assistant shows on, not unknown
    node = settings.node_id
    for key in ("last_run", "result", "hash", "next_off_peak"):
        sensor = json.loads(got[f"homeassistant/sensor/{node}/{key}/config"])
        assert sensor["expire_after"] == 300, key
        assert sensor["device"]["sw_version"] and sensor["device"]["model"]
    # The Overview shows entities without a category: the switch, Result and the readings; the rest
    # is diagnostic (G7).
    category = {
        topic.split("/")[-2]: json.loads(payload).get("entity_category")
        for topic, payload in got.items()
        if topic.startswith("homeassistant/") and topic.endswith("/config")
    }
    assert {k for k, v in category.items() if v == "diagnostic"} == {"last_run", "hash", "posted"}
    assert {k for k, v in category.items() if v is None} == {
        "enabled",
        "result",
        "next_off_peak",
        "bill_agreement",
        "bill_phantoms",
        "battery_cheap_discharge",
        "battery_problem",
    }
    assert json.loads(got[f"homeassistant/sensor/{node}/next_off_peak/config"])["device_class"] == "timestamp"


def test_a_failed_run_keeps_the_last_posted_values_and_a_long_error_fits(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.planned = [{"start": "2026-11-24T14:00:00+00:00", "end": "2026-11-24T15:00:00+00:00", "type": "SMART"}]
    config = make_config(mqtt=mqtt_section(broker.port))
    assert cli(config, "--at", AT).code == 0
    posted_hash = read_state(config)["tesla"]["posted_hash"]
    kraken.inject("flexPlannedDispatches", "KT-CT-9999", message="Something went wrong. " * 40)
    assert cli(config, "--at", "2026-11-24T12:03:00+00:00").code == 1
    status = json.loads(broker.retained(STATE)[STATE])
    assert status["result"].startswith("error: Octopus: GraphQL error KT-CT-9999") and len(status["result"]) <= 255
    assert status["detail"].endswith("Something went wrong.") and len(status["detail"]) > 800
    assert status["hash"] == posted_hash  # the Powerwall still holds this tariff
    assert status["next_off_peak"] == "2026-11-24T14:00:00+00:00"
    assert status["failing_since"] == "2026-11-24T12:03:00+00:00" and status["posted"] is False


def test_removing_discovery_clears_the_entities(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(mqtt=mqtt_section(broker.port, own_topics=True, discovery="true"))
    node = mqtt_config(config).node_id
    assert cli(config, "--at", AT).code == 0
    assert len(discovery_topics(broker.retained("#"), node)) == ENTITIES
    config.write_text(config.read_text().replace("discovery = true", "discovery = false"))
    assert cli(config, "--at", "2026-11-24T12:01:00+00:00").code == 0
    assert discovery_topics(broker.retained("#"), node) == set()
    assert "discovery" not in read_state(config)["mqtt"]


def test_configs_from_before_per_config_identity_drop_the_shared_entities(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    legacy = "homeassistant/switch/io_powerwall_scheduler/enabled/config"
    broker.publish_retained(legacy, json.dumps({"name": "Enabled", "unique_id": "io_powerwall_scheduler_enabled"}))
    config = make_config(mqtt=mqtt_section(broker.port, discovery="true"))
    Path(str(config) + ".state.json").write_text(json.dumps({"mqtt_discovery": "0" * 64}))
    assert cli(config, "--at", AT).code == 0
    got = broker.retained("homeassistant/#")
    assert legacy not in got
    assert len(discovery_topics(got, mqtt_config(config).node_id)) == ENTITIES


def test_switching_off_restores_the_users_tariff_once_when_asked(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    from test_restore import users_own_tariff

    from iops.core.tariff import price_grid

    own = users_own_tariff()
    tessie.live_tariff = own
    config = make_config(mqtt=mqtt_section(broker.port, restore_when_off="true"))
    assert cli(config, "--at", AT).code == 0
    broker.publish_retained(ENABLE, "off")
    early = cli(config, "--at", "2026-11-24T12:01:00+00:00")  # posts are at least 4 minutes apart
    assert early.code == 0 and len(tessie.posted) == 1
    off = cli(config, "--at", "2026-11-24T12:04:00+00:00")
    assert off.code == 0 and "Switched off over MQTT: put back Octopus Flexible" in off.log
    assert tessie.live_tariff is not None and price_grid(tessie.live_tariff) == price_grid(own)
    assert cli(config, "--at", "2026-11-24T12:05:00+00:00").code == 0
    assert len(tessie.posted) == 2  # restored once, not every minute
    assert json.loads(broker.retained(STATE)[STATE])["result"] == "disabled: your own tariff is back"
    broker.publish_retained(ENABLE, "on")
    assert cli(config, "--at", "2026-11-24T12:08:00+00:00").code == 0
    assert len(tessie.posted) == 3 and price_grid(tessie.live_tariff) != price_grid(own)  # ours again


def test_a_switch_flipped_every_minute_keeps_to_the_call_policy(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """D6: restore_when_off posts go through spacing and back-off, and a failed one is exit 1."""
    from test_restore import users_own_tariff

    tessie.live_tariff = users_own_tariff()
    now = [datetime.fromisoformat(AT)]
    kraken.clock = tessie.clock = lambda: now[0].timestamp()  # noqa: PLW0108  # reads now[0] at each call

    def at(minute: int) -> str:
        now[0] = datetime.fromisoformat(AT) + timedelta(minutes=minute)
        return now[0].isoformat()

    config = make_config(mqtt=mqtt_section(broker.port, restore_when_off="true"))
    assert cli(config, "--at", at(0)).code == 0
    for minute in range(1, 13):
        broker.publish_retained(ENABLE, "off" if minute % 2 else "on")
        assert cli(config, "--at", at(minute)).code == 0
    times = tessie.post_times
    assert 3 <= len(times) <= 4 and all(b - a >= 240 for a, b in itertools.pairwise(times)), times
    tessie.outages = [Outage(0, 10**10, 503)]  # Tesla down: failures, backed off, never exit 0
    tessie.clear_log()
    codes = []
    for minute in range(13, 21):
        broker.publish_retained(ENABLE, "off" if minute % 2 else "on")
        codes.append(cli(config, "--at", at(minute)).code)
    assert 1 in codes
    assert len(tessie.requests) <= 2 * 4  # back-off 1, 2, 4 minutes: four tries in 8 minutes, each sent twice


def test_a_broker_that_lags_after_connack_never_turns_an_off_into_on(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """D7: only an answered subscription may count as "no flag"; the user's retained off stays off."""
    broker.publish_retained(ENABLE, "off")
    proxy = LaggingProxy(broker.port)
    try:
        config = make_config(mqtt=mqtt_section(proxy.port, wait_seconds="1", run_when_unreachable="false"))
        result = cli(config, "--at", AT)
    finally:
        proxy.stop()
    assert result.code == 0 and "did not answer the subscription" in result.log
    assert tessie.posted == [] and kraken.requests == []  # run_when_unreachable = false: skipped
    assert broker.retained(ENABLE)[ENABLE] == "off"  # never overwritten with on


def test_the_bill_check_sensors_show_the_newest_final_day(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """After simulated days of cron runs: the status carries the newest final day's agreement and its
    phantom half-hours with their money, and discovery offers them as two sensors."""
    import test_report_e2e as day

    kraken.data.settle = day.settle
    kraken.data.planned = [
        {"start": day.at(a).isoformat(), "end": day.at(b).isoformat(), "type": "SMART"} for a, b in day.SLOTS.values()
    ]
    config = make_config()  # the week runs without MQTT (quicker); the last runs publish
    sim = day.Sim(kraken, tessie, config, cli)
    day.live_the_day(sim)
    for days in (3, 4):
        day.read_settlement_on(sim, days, polls=2)
    make_config(mqtt=mqtt_section(broker.port, discovery="true"))
    sim.run(day.at("15:00", 4))
    assert json.loads(broker.retained(STATE)[STATE])["bill_check"] is None  # nothing final yet
    day.read_settlement_on(sim, 8, polls=2)
    status = json.loads(broker.retained(STATE)[STATE])
    assert status["bill_check"]["day"] == "2026-11-24"
    final = day.oracle(final=True)
    judged = [h for h in final if h["verdict"] in ("agree", "phantom", "missed")]
    agreed = sum(1 for h in judged if h["verdict"] == "agree")
    assert status["bill_check"]["agreement_percent"] == round(100 * agreed / len(judged), 1)
    assert status["bill_check"]["phantom_half_hours"] == 1  # slot C (B was revised to cheap)
    assert status["bill_check"]["phantom_gbp"] == pytest.approx(2.0 * (DAY_PENCE / 100 - day.CHEAP), abs=0.01)
    node = mqtt_config(config).node_id
    got = broker.retained("homeassistant/#")
    agreement = json.loads(got[f"homeassistant/sensor/{node}/bill_agreement/config"])
    assert agreement["unique_id"] == f"{node}_bill_agreement" and agreement["unit_of_measurement"] == "%"
    assert "entity_category" not in agreement
    assert f"homeassistant/sensor/{node}/bill_phantoms/config" in got


def test_the_battery_sensors_show_yesterday_and_a_live_catch(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """Yesterday's kWh discharged while cheap after the daily energy read, and the problem binary
    sensor on from the live check's catch until the slot ends, both against mosquitto."""
    import test_battery_e2e as two
    from test_report_e2e import Sim

    kraken.data.planned = [
        {"start": (day + two.SLOT[0]).isoformat(), "end": (day + two.SLOT[1]).isoformat(), "type": "SMART"}
        for day in (two.TUE, two.WED)
    ]
    tessie.energy = two.battery
    config = make_config()  # the quiet runs go without MQTT (quicker); the ones that matter publish
    sim = Sim(kraken, tessie, config, cli)
    two.polls(sim, two.WED + timedelta(hours=12), 2)
    tessie.battery_w, tessie.grid_w = 2500.0, 4000.0
    for minute in range(0, 9):
        sim.run(two.WED + timedelta(hours=14, minutes=minute))
    make_config(mqtt=mqtt_section(broker.port, discovery="true"))
    for minute in range(9, 12):
        sim.run(two.WED + timedelta(hours=14, minutes=minute))
    status = json.loads(broker.retained(STATE)[STATE])
    assert status["battery_problem"]["on"] is True and "2500 W" in status["battery_problem"]["detail"]
    node = mqtt_config(config).node_id
    got = broker.retained("homeassistant/#")
    problem = json.loads(got[f"homeassistant/binary_sensor/{node}/battery_problem/config"])
    assert problem["device_class"] == "problem" and problem["unique_id"] == f"{node}_battery_problem"
    tessie.battery_w = -2000.0
    two.polls(sim, two.WED + timedelta(hours=15, minutes=1))  # the slot is over
    assert json.loads(broker.retained(STATE)[STATE])["battery_problem"]["on"] is False
    assert json.loads(broker.retained(STATE)[STATE])["battery_check"] is None  # no day read yet
    two.polls(sim, two.WED + timedelta(days=1, hours=2))
    status = json.loads(broker.retained(STATE)[STATE])
    assert status["battery_check"] == {"day": "2026-11-25", "discharged_while_cheap_kwh": 3.6, "gbp": 0.83}
    sensor = json.loads(got[f"homeassistant/sensor/{node}/battery_cheap_discharge/config"])
    assert sensor["unit_of_measurement"] == "kWh" and "entity_category" not in sensor


# ---- what a real Home Assistant showed (issue 19, part 6) ----------------------------------------


class Clocked:
    """Runs of one config at simulated minutes, with both fakes on the same clock."""

    def __init__(self, kraken: FakeKraken, tessie: FakeTessie, cli: Callable[..., Result], config: Path) -> None:
        self.now = [datetime.fromisoformat(AT)]
        kraken.clock = tessie.clock = lambda: self.now[0].timestamp()  # noqa: PLW0108
        self.cli, self.config = cli, config

    def run(self, minute: int, *extra: str) -> Result:
        self.now[0] = datetime.fromisoformat(AT) + timedelta(minutes=minute)
        return self.cli(self.config, "--at", self.now[0].isoformat(), *extra)


class Watcher:
    """Every status a run publishes, in order, from one subscription (faster than reading the retained
    message after each run)."""

    def __init__(self, broker: Broker, topic: str = STATE) -> None:
        self.got: list[dict[str, Any]] = []
        self.subscribed = threading.Event()
        self.client = broker.client()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(5)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.payload:  # an empty payload clears the topic: not a status
            self.got.append(json.loads(message.payload))

    def after(self, count: int) -> dict[str, Any]:
        """The status of the run that made ``count`` statuses (waits for it to arrive)."""
        deadline = time.monotonic() + 5
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.got[count - 1]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def status(broker: Broker) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(broker.retained(STATE)[STATE])
    return body


def test_a_switch_turned_off_stays_off_when_the_broker_loses_the_flag(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """G1: the broker restarts without its retained messages after the user turned the switch off:
    the run puts "off" back and stays off; with restore_when_off it never posts over the user's tariff."""
    from test_restore import users_own_tariff

    tessie.live_tariff = users_own_tariff()
    sim = Clocked(kraken, tessie, cli, make_config(mqtt=mqtt_section(broker.port, restore_when_off="true")))
    assert sim.run(0).code == 0
    assert broker.retained(ENABLE)[ENABLE] == "on"  # never seen a flag: the switch starts on
    broker.publish_retained(ENABLE, "off")
    assert sim.run(5).code == 0 and len(tessie.posted) == 2  # ours, then the user's put back
    broker.publish_many([(ENABLE, ""), (STATE, "")])  # the broker lost its retained messages
    kraken.clear_log()
    for minute in (6, 7, 12):
        result = sim.run(minute)
        assert result.code == 0
        assert broker.retained(ENABLE)[ENABLE] == "off", minute
    assert len(tessie.posted) == 2 and kraken.requests == []  # nothing posted over the user's tariff
    assert "the broker lost the flag; off, as last seen" in result.log
    assert status(broker)["result"] == "disabled: your own tariff is back"
    broker.publish_retained(ENABLE, "on")  # the user turns it on: back to work
    assert sim.run(13).code == 0 and len(tessie.posted) == 3


def test_a_mismatched_read_back_says_so_and_quiet_minutes_keep_one_result(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """G3 and G8: Result changes only when something happens; a read-back that found another tariff
    live says "mismatch: reposting", not "verified"."""
    from test_restore import users_own_tariff

    sim = Clocked(kraken, tessie, cli, make_config(tesla={"verify_hours": "0.25"}, mqtt=mqtt_section(broker.port)))
    watcher = Watcher(broker)
    try:
        for minute in range(0, 20):
            assert sim.run(minute).code == 0
        watcher.after(20)
        seen = [s["result"] for s in watcher.got]
        changes = [b for a, b in itertools.pairwise(seen) if a != b]
        assert seen[0] == "posted" and changes == ["up to date"]  # polls, a read-back, quiet minutes
        tessie.live_tariff = users_own_tariff()  # someone changed the tariff in the Tesla app
        for minute in range(20, 45):
            assert sim.run(minute).code == 0
        watcher.after(45)
        results = [s["result"] for s in watcher.got[20:]]
    finally:
        watcher.stop()
    assert "mismatch: reposting" in results and "verified" not in results
    assert results[-1] == "up to date"  # reposted, and the next read-back matched


def test_an_outage_keeps_result_on_the_error_and_since_on_the_first_failure(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """G4: between polls and while backing off, Result stays on the error; failing_since stays on the
    streak's first failure even when the error text changes. G9: a long error's detail is capped."""
    sim = Clocked(kraken, tessie, cli, make_config(mqtt=mqtt_section(broker.port)))
    assert sim.run(0).code == 0
    start = sim.now[0].timestamp()
    kraken.outages = [Outage(start + 180, start + 900, 503)]
    watcher = Watcher(broker)
    watcher.after(1)  # the retained status of the first run
    try:
        for minute in range(3, 15):
            if minute == 9:
                kraken.outages = []
                kraken.inject("*", "KT-CT-9999", times=99, message="Something went wrong. " * 1000)
            sim.run(minute)
        watcher.after(13)
    finally:
        watcher.stop()
    got = watcher.got[1:]
    results = [body["result"] for body in got]
    since = {body["failing_since"] for body in got}
    assert all(len(body["detail"]) <= 2000 for body in got)
    assert all(r.startswith("error: Octopus") for r in results), results
    assert since == {"2026-11-24T12:03:00+00:00"}
    assert any("KT-CT-9999" in r for r in results) and any("503" in r for r in results)


def test_while_paused_the_switch_shows_off_and_turning_it_on_resumes(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """G6: after --restore the Result says the user's tariff is back, the hash is unknown rather than
    empty, the switch shows off; turning it on resumes. After --resume the switch is on again."""
    from test_restore import users_own_tariff

    tessie.live_tariff = users_own_tariff()
    config = make_config(mqtt=mqtt_section(broker.port, own_topics=True, discovery="true"))
    settings = mqtt_config(config)
    sim = Clocked(kraken, tessie, cli, config)
    assert sim.run(0).code == 0
    assert sim.run(5, "--restore").code == 0
    assert sim.run(6).code == 0
    got = broker.retained("#")
    body = json.loads(got[settings.state_topic])
    assert body["result"] == "paused: your own tariff is back" and body["hash"] == ""
    hash_sensor = json.loads(got[f"homeassistant/sensor/{settings.node_id}/hash/config"])
    assert "else None" in hash_sensor["value_template"]  # Home Assistant shows unknown for ""
    assert got[settings.enable_topic] == "off"
    assert sim.run(7).code == 0 and len(tessie.posted) == 2  # still paused
    broker.publish_retained(settings.enable_topic, "on")  # the user turns the switch on
    result = sim.run(10)
    assert result.code == 0 and "Resumed: the Enabled switch was turned on over MQTT" in result.log
    assert (
        len(tessie.posted) == 3
        and json.loads(broker.retained(settings.state_topic)[settings.state_topic])["result"] == "posted"
    )
    # --restore again, then --resume from the command line: the "off" shown was ours, so it goes back on.
    assert sim.run(15, "--restore").code == 0
    assert sim.run(16).code == 0 and broker.retained(settings.enable_topic)[settings.enable_topic] == "off"
    assert sim.run(17, "--resume").code == 0
    assert sim.run(20).code == 0
    assert broker.retained(settings.enable_topic)[settings.enable_topic] == "on"
    assert len(tessie.posted) == 5  # the user's tariff, then ours again


def test_the_status_expires_on_the_broker_after_stale_after_minutes(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """G5: over MQTT 5 the retained status carries a message expiry of stale_after_minutes, so after a
    Home Assistant restart an old status is not shown as fresh; the switch's flag never expires."""
    from paho.mqtt.client import MQTTv5

    config = make_config(mqtt=mqtt_section(broker.port, stale_after_minutes="5"))
    assert cli(config, "--at", AT).code == 0
    got: dict[str, Any] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"v5-{time.monotonic_ns()}", protocol=MQTTv5)
    client.on_message = lambda c, u, m: got.__setitem__(m.topic, m)
    client.connect("127.0.0.1", broker.port)
    client.subscribe([(STATE, 1), (ENABLE, 1)])
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    client.disconnect()
    assert 295 <= got[STATE].properties.MessageExpiryInterval <= 300
    assert not hasattr(got[ENABLE].properties, "MessageExpiryInterval")


def test_an_expired_status_is_gone_from_the_broker(broker: Broker, tmp_path: Path) -> None:
    from iops.services.mqtt import publish

    path = tmp_path / "c.txt"
    path.write_text(
        "[tesla]\nsite_id = 2252357221831636\n[tariff]\nrates = auto\n[mqtt]\nenabled = true\n"
        f"host = 127.0.0.1\nport = {broker.port}\n"
    )
    settings = load_config(path, env={}, need_octopus=False, need_tesla=False).mqtt
    assert publish(settings, [("t/status", "fresh"), ("t/flag", "on")], {"t/status": 1})
    assert broker.retained("t/#") == {"t/status": "fresh", "t/flag": "on"}
    time.sleep(2.1)
    assert broker.retained("t/#") == {"t/flag": "on"}
