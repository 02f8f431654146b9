"""What goes to MQTT, decided without a broker: status payloads, discovery timing, removals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from iops.app.config import load_config
from iops.core.mqtt_payloads import RESULT_LIMIT, StatusFacts, cheap_blocks, plan_discovery, status_payload
from iops.core.settings import MqttConfig
from iops.core.tariff import Rates, Slot, TariffInputs, build_tariff

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 01:00 GMT, inside the fixed window

ENTITIES = 10  # Home Assistant entities per config: switch, 7 sensors, 2 binary sensors


def mqtt(tmp_path: Path, **values: str) -> MqttConfig:
    path = tmp_path / "config.txt"
    lines = ["[tesla]", "site_id = 2252357221831636", "[tariff]", "rates = auto", "[mqtt]", "enabled = true"]
    lines += ["host = 127.0.0.1"]
    lines += [f"{k} = {v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return load_config(path, env={}, need_octopus=False, need_tesla=False).mqtt


def test_next_off_peak_is_the_real_start_of_the_block_we_are_in() -> None:
    plan, _ = build_tariff(
        TariffInputs(
            now=NOW,
            time_zone="Europe/London",
            off_peak_start=time(23, 30),
            off_peak_end=time(5, 30),
            rates=Rates(0.3, 0.07, 0.15, 0.15),
            dispatches=[Slot(datetime(2026, 11, 24, 14, 0, tzinfo=UTC), datetime(2026, 11, 24, 15, 0, tzinfo=UTC))],
        )
    )
    blocks = cheap_blocks(plan, NOW, "Europe/London")
    assert blocks[0] == ("2026-11-23T23:30:00+00:00", "2026-11-24T05:30:00+00:00", "OFF_PEAK")
    assert blocks[1] == ("2026-11-24T14:00:00+00:00", "2026-11-24T15:00:00+00:00", "OFF_PEAK")
    status = status_payload(StatusFacts(result="unchanged", posted=False, now=NOW, blocks=blocks))
    assert status["next_off_peak"] == "2026-11-23T23:30:00+00:00"
    later = status_payload(StatusFacts(result="unchanged", posted=False, now=NOW + timedelta(hours=6), blocks=blocks))
    assert later["next_off_peak"] == "2026-11-24T14:00:00+00:00"
    none_left = status_payload(StatusFacts(result="x", posted=False, now=NOW + timedelta(days=2), blocks=blocks))
    assert none_left["next_off_peak"] is None and none_left["next_off_peak_blocks"] == []


def test_a_long_result_is_cut_for_the_state_and_kept_whole_in_the_detail() -> None:
    text = "error: Octopus: " + "x" * 600
    status = status_payload(StatusFacts(result=text, posted=False, now=NOW, last_hash="abc"))
    assert len(status["result"]) == RESULT_LIMIT and status["result"].endswith("…")
    assert status["detail"] == text
    assert status["hash"] == "abc"


def test_discovery_is_sent_when_new_daily_and_when_the_broker_lost_the_status(tmp_path: Path) -> None:
    config = mqtt(tmp_path, discovery="true")
    first = plan_discovery(config, None, False, NOW, status_retained=None)
    assert len(first.publish) == ENTITIES and all(payload for _, payload in first.publish)
    quiet = plan_discovery(config, first.sent, False, NOW + timedelta(minutes=1), status_retained=True)
    assert quiet.publish == [] and quiet.sent == first.sent  # a quiet minute costs nothing
    lost = plan_discovery(config, first.sent, False, NOW + timedelta(minutes=2), status_retained=False)
    assert len(lost.publish) == ENTITIES
    daily = plan_discovery(config, first.sent, False, NOW + timedelta(days=1), status_retained=True)
    assert len(daily.publish) == ENTITIES


def test_entities_no_longer_ours_are_removed_once(tmp_path: Path) -> None:
    on = mqtt(tmp_path, discovery="true")
    first = plan_discovery(on, None, False, NOW, status_retained=None)
    off = replace(on, discovery=False)
    removal = plan_discovery(off, first.sent, False, NOW, status_retained=True)
    assert sorted(removal.publish) == sorted((topic, "") for topic, _ in first.publish)
    assert removal.sent is None
    assert plan_discovery(off, removal.sent, False, NOW, status_retained=True).publish == []
    # A config from before 1.1 kept only a digest: the shared legacy entities go, ours arrive.
    legacy = plan_discovery(on, None, True, NOW, status_retained=True)
    removed = [topic for topic, payload in legacy.publish if not payload]
    assert (
        "homeassistant/switch/io_powerwall_scheduler/enabled/config" in removed and len(removed) == 6
    )  # version 1.0's six


def test_each_config_has_its_own_identity(tmp_path: Path) -> None:
    a = mqtt(tmp_path)
    (tmp_path / "b").mkdir()
    b_path = tmp_path / "b" / "config.txt"
    b_path.write_text("[tesla]\nsite_id = 1111222233334444\n[tariff]\nrates = auto\n[mqtt]\nenabled = true\nhost = x\n")
    b = load_config(b_path, env={}, need_octopus=False, need_tesla=False).mqtt
    assert a.node_id != b.node_id and a.node_id.startswith("iops_")
    assert a.enable_topic == f"io_powerwall_scheduler/{a.node_id}/enabled" != b.enable_topic
    assert a.device_name == "IO Powerwall Scheduler (site …1636)"
    assert "2252357221831636" not in a.node_id + a.enable_topic  # the topics reveal nothing of the site
    assert mqtt(tmp_path, node_id="garage").node_id == "garage"


def test_the_flag_read_with_what_this_config_saw_before() -> None:
    from iops.core.mqtt_payloads import read_flag

    def view(retained: str | None, last: str, ours: bool = False, paused: bool = False) -> tuple[bool, str | None]:
        v = read_flag(retained, last_seen=last, ours_off=ours, paused=paused, default_when_no_flag=True)
        return v.enabled, v.publish

    assert view(None, "") == (True, "on")  # never seen: the switch starts on
    assert view(None, "off") == (False, "off")  # lost after an off: put back, stay off
    assert view(None, "on") == (True, None)  # lost after an on: carry on, publish nothing
    assert view("off", "on") == (False, None) and view("on", "off") == (True, None)
    assert view("on", "on", paused=True) == (False, "off")  # paused: the switch shows off
    assert view("off", "off", paused=True) == (False, None)  # the user's own off is left alone
    assert view("on", "off", ours=True, paused=True) == (True, None)  # turned on while paused: resume
    assert view("off", "off", ours=True) == (True, "on")  # after --resume, our off goes back on
    assert not read_flag("off", last_seen="", ours_off=False, paused=True, default_when_no_flag=True).ours_off
    assert read_flag(None, last_seen="", ours_off=False, paused=False, default_when_no_flag=False).publish is None
