"""The MQTT switch and status against a real mosquitto broker started by the tests."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import AT, ROOT, Result, read_state
from fakes import FakeKraken, FakeTessie

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
        client = self.client(auth)
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()

    def retained(self, topic_filter: str, seconds: float = 2.0, auth: tuple[str, str] | None = None) -> dict[str, str]:
        got: dict[str, str] = {}
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"reader-{time.monotonic_ns()}")
        if auth:
            client.username_pw_set(*auth)
        client.on_message = lambda c, u, m: got.__setitem__(m.topic, m.payload.decode())
        client.connect("127.0.0.1", self.port)
        client.subscribe(topic_filter, qos=1)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            client.loop(timeout=0.1)
        client.disconnect()
        return got


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    yield b
    b.stop()


def mqtt_section(port: int, **extra: str) -> dict[str, str]:
    return {"enabled": "true", "host": "127.0.0.1", "port": str(port), "wait_seconds": "3", **extra}


def test_flag_off_skips_the_run_before_any_octopus_request(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    broker.publish_retained("io_powerwall_scheduler/enabled", "off")
    result = cli(make_config(mqtt=mqtt_section(broker.port)), "--at", AT)
    assert result.code == 0, result.stderr
    assert kraken.requests == [] and tessie.requests == []


def test_flag_on_runs_and_publishes_retained_status(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.planned = [{"start": "2026-11-24T14:00:00+00:00", "end": "2026-11-24T15:00:00+00:00", "type": "SMART"}]
    broker.publish_retained("io_powerwall_scheduler/enabled", "ON")
    config = make_config(mqtt=mqtt_section(broker.port))
    result = cli(config, "--at", AT)
    assert result.code == 0, result.stderr
    assert len(tessie.posted) == 1
    status = json.loads(broker.retained("io_powerwall_scheduler/state")["io_powerwall_scheduler/state"])
    state = read_state(config)
    assert status["result"] == "posted" and status["posted"] is True
    assert status["hash"] == state["tesla"]["posted_hash"]
    assert status["last_run"] == AT
    assert status["next_off_peak"][0] == {
        "start": "2026-11-24T14:00:00+00:00",
        "end": "2026-11-24T15:00:00+00:00",
        "label": "OFF_PEAK",
    }


def test_no_retained_flag_follows_the_config(
    broker: Broker, kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    started = time.monotonic()
    assert cli(make_config(mqtt=mqtt_section(broker.port)), "--at", AT).code == 0
    assert time.monotonic() - started < 3  # no retained message is known at the SUBACK, not after wait_seconds
    assert len(tessie.posted) == 1
    kraken.clear_log()
    result = cli(make_config("other.txt", mqtt=mqtt_section(broker.port, run_when_no_flag="false")), "--at", AT)
    assert result.code == 0
    assert kraken.requests == []


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
        secured.publish_retained("io_powerwall_scheduler/enabled", "off", auth=("scheduler", "right-password"))
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
    assert cli(make_config(mqtt=mqtt_section(broker.port, discovery="true")), "--at", AT).code == 0
    got = broker.retained("homeassistant/#")
    switch = json.loads(got["homeassistant/switch/io_powerwall_scheduler/enabled/config"])
    assert switch["command_topic"] == switch["state_topic"] == "io_powerwall_scheduler/enabled"
    assert (switch["payload_on"], switch["payload_off"]) == ("on", "off")
    sensors = {t for t in got if t.startswith("homeassistant/sensor/")}
    assert {
        "homeassistant/sensor/io_powerwall_scheduler/last_run/config",
        "homeassistant/sensor/io_powerwall_scheduler/result/config",
    } <= sensors
    last_run = json.loads(got["homeassistant/sensor/io_powerwall_scheduler/last_run/config"])
    assert last_run["state_topic"] == "io_powerwall_scheduler/state" and last_run["device_class"] == "timestamp"
    # The switch works: Home Assistant turning it off stops the next run.
    broker.publish_retained("io_powerwall_scheduler/enabled", "off")
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
