"""The second audit's causes (issue 16), each through the CLI against the fakes. The Fleet token chain
(D1, D2, D16) is in test_fleet_tokens.py, --restore (D3, D5, D18) in test_restore.py, MQTT (D6, D7)
in test_mqtt.py and the state's clock bounds (D4, D17) in test_cache.py; what they need end to end
is here too."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import AT, ROOT, Result, read_state
from fakes import API_KEY, DEVICE_ID, SITE_ID, TESSIE_TOKEN, FakeKraken, FakeTessie

START = datetime.fromisoformat(AT)


def at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def write_state(config: Path, state: Any) -> None:
    Path(str(config) + ".state.json").write_text(json.dumps(state))


# ---- D3: a damaged cache loses nothing irreplaceable -----------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "oversized", "unreadable"])
def test_a_damaged_cache_is_dropped_with_a_warning_and_the_durable_records_survive(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    damage: str,
) -> None:
    from test_restore import users_own_tariff

    tessie.live_tariff = users_own_tariff()
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    state = Path(str(config) + ".state.json")
    if damage == "truncated":
        state.write_text(state.read_text()[:40])
    elif damage == "oversized":
        state.write_text(json.dumps({"tesla": {"site_id": SITE_ID, "junk": "x" * (5 * 1024 * 1024)}}))
    else:
        state.unlink()
        state.mkdir()
    result = cli(config, "--at", at(5))
    assert "Traceback" not in result.log + result.stderr
    if damage != "unreadable":
        assert result.code == 0 and "starting afresh" in result.log
    restored = cli(config, "--restore", "--at", at(10)) if damage != "unreadable" else None
    if restored is not None:  # the user's tariff was kept in the store, not in the dropped cache
        assert restored.code == 0, restored.stderr
        assert "Put back Octopus Flexible" in restored.stdout


# ---- D4: future times cannot freeze the scheduler -------------------------------------------------


def test_a_replay_ahead_does_not_freeze_the_cron_job(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", at(60 * 24 * 10)).code == 0  # a live run ten days ahead (a replay)
    kraken.clear_log()
    kraken.data.planned = [{"start": at(90), "end": at(120), "type": "SMART"}]
    for minute in range(1, 7):  # the real clock again: its times are taken as now, then polled as usual
        assert cli(config, "--at", at(minute)).code == 0
    assert any("flexPlannedDispatches" in ops for ops in kraken.operations())
    assert len(tessie.posted) == 2


def test_a_foreign_state_from_the_future_is_treated_as_now(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    month = START.timestamp() + 30 * 86400
    write_state(
        config,
        {
            "octopus_calls": {"polled_at": month, "backoff_until": month},
            "tesla": {"site_id": SITE_ID, "posted_at": month, "backoff_until": month, "verified_at": month},
        },
    )
    for minute in range(0, 5):  # taken as now: a poll within poll_minutes, a post 4 minutes after "now"
        assert cli(config, "--at", at(minute)).code == 0
    assert len(tessie.posted) == 1


# ---- D5: a tariff from the state is checked before it is posted -----------------------------------


def test_a_broken_tariff_in_the_state_is_never_posted(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    state = read_state(config)
    broken = dict(state["tesla"]["posted_tariff"])
    broken["seasons"] = {"Summer": {"tou_periods": {}}}  # covers no minute of the week
    state["tesla"].update(pending_hash="0" * 64, pending_tariff=broken)
    state["octopus_calls"]["polled_at"] = START.timestamp() + 300  # between polls: the pending one would go
    write_state(config, state)
    result = cli(config, "--at", at(5))
    assert result.code == 1 and "breaks Tesla's rules" in result.log
    assert len(tessie.posted) == 1
    assert cli(config, "--at", at(9)).code == 0  # the next poll builds afresh
    assert (
        len(tessie.posted) == 2
        and tessie.posted[-1]["tou_settings"]["tariff_content_v2"]["seasons"] != broken["seasons"]
    )


# ---- D8: values that read well but would break every run ------------------------------------------


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        (
            "mqtt",
            {"enabled": "true", "host": "127.0.0.1", "tls": "true", "ca_certs": "/no/such/ca.pem"},
            "[mqtt] ca_certs",
        ),
        ("mqtt", {"enabled": "true", "host": "127.0.0.1", "enable_topic": "home/+/enabled"}, "[mqtt] enable_topic"),
        ("mqtt", {"enabled": "true", "host": "127.0.0.1", "state_topic": "home/#"}, "[mqtt] state_topic"),
        ("mqtt", {"enabled": "true", "host": "127.0.0.1", "discovery_prefix": "ha/+"}, "[mqtt] discovery_prefix"),
        ("debug", {"log_file": "/tmp/" + "x" * 300}, "[debug] log_file"),
        ("debug", {"timeout_seconds": "600"}, "[debug] timeout_seconds"),
        ("tesla", {"api_key": "tessie-tøken"}, "[tesla] api_key"),
        ("tesla", {"api_key": "tessie token"}, "[tesla] api_key"),
        ("octopus", {"api_key": "sk_live_ünïcode"}, "[octopus] api_key"),
    ],
)
def test_values_that_would_break_every_run_are_config_errors(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    section: str,
    values: dict[str, str],
    expected: str,
) -> None:
    result = cli(make_config(**{section: values}), "--at", AT)
    assert result.code == 2 and expected in result.stderr, result.stderr
    assert tessie.requests == [] and "Traceback" not in result.stderr


def test_a_line_break_in_an_environment_token_names_the_key(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    result = cli(make_config(), "--at", AT, env={"TESLA_API_KEY": TESSIE_TOKEN + "\n"})
    assert result.code == 0  # a trailing line break is trimmed, as a pasted value's would be
    result = cli(make_config(), "--at", AT, env={"TESLA_API_KEY": "tessie\nX-Injected: 1"})
    assert result.code == 2 and "[tesla] api_key" in result.stderr


# ---- D9, D10: no secret in what is printed or stored ----------------------------------------------


def test_an_echoed_token_is_redacted_in_the_failure_record_and_status(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    tessie.inject("post", "echo")
    assert cli(config, "--at", AT).code == 1
    assert TESSIE_TOKEN not in Path(str(config) + ".state.json").read_text()
    status = cli(config, "--status", "--at", at(1))
    assert status.code == 1 and "Bearer ***" in status.stdout and TESSIE_TOKEN not in status.stdout


def test_the_helpers_redact_what_a_service_says_back(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    tessie.inject("products", "echo")
    listed = cli(config, script="get_site_id.py")
    assert listed.code == 1 and "Bearer ***" in listed.stderr and TESSIE_TOKEN not in listed.stderr + listed.stdout
    kraken.inject("savingSessions", "KT-CT-9999", message="Refused {auth} for this account")
    sessions = cli(config, script="savings_sessions.py")
    assert sessions.code == 1 and "Refused *** for this account" in sessions.stderr
    for token in kraken.tokens:
        assert token not in sessions.stderr + sessions.stdout


@pytest.mark.parametrize("key", ["time_zone", "rates", "dispatch_trust"])
def test_a_secret_pasted_into_a_setting_is_not_echoed(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result], key: str
) -> None:
    result = cli(make_config(tariff={key: API_KEY}), "--at", AT)
    assert result.code == 2 and f"[tariff] {key}" in result.stderr
    assert API_KEY not in result.stderr + result.stdout + result.log


# ---- D11: a refused key is not tried every minute -------------------------------------------------


def test_a_refused_key_is_logged_once_and_tried_again_after_a_wait_or_a_change(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(octopus={"api_key": "sk_live_WRONGKEY0000"})
    first = cli(config, "--at", AT)
    assert first.code == 2 and "check [octopus] api_key" in first.log
    kraken.clear_log()
    for minute in range(1, 5):
        assert cli(config, "--at", at(minute)).code == 2
    assert kraken.requests == []  # backed off: no request, and no new line in the log
    assert Path(str(config) + ".log").read_text().count("check [octopus] api_key") == 1
    assert cli(config, "--at", at(5)).code == 2 and kraken.requests  # tried again after 5 minutes
    kraken.clear_log()
    make_config(octopus={"api_key": API_KEY})  # the user fixed the key: tried at once
    assert cli(config, "--at", at(6)).code == 0 and len(tessie.posted) == 1


# ---- D12: numbers from services are finite, or refused ---------------------------------------------


def test_nan_or_huge_numbers_from_services_are_refused(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    event = {"id": 7, "code": "HUGE", "rewardPerKwhInOctoPoints": 1e308, "startAt": at(300), "endAt": at(360)}
    account = {"hasJoinedCampaign": True, "joinedEvents": [{"eventId": 7}]}
    sessions = {"events": [{**event, "eventType": "TURN_DOWN", "targetRegion": []}], "account": account}
    kraken.raw_answers = {"savingSessions": {"data": {"savingSessions": sessions}}}  # beyond the schema's Int
    result = cli(make_config(), "--at", AT)
    assert result.code == 0 and "reward is not a plausible number" in result.log
    labels = tessie.posted[0]["tou_settings"]["tariff_content_v2"]["energy_charges"]["Summer"]["rates"]
    assert "PARTIAL_PEAK" not in labels


def test_a_nan_unit_rate_is_bad_data_and_nothing_is_posted(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.unit_rates["E-1R-INTELLI-VAR-24-10-29-A"] = {"standard": [float("nan"), 7.0]}
    config = make_config(tariff={"rates": "auto", "import_peak": "", "import_off_peak": "", "export": ""})
    result = cli(config, "--at", AT)
    assert result.code == 1 and "Octopus:" in result.log and tessie.posted == []


def test_a_nan_token_lifetime_keeps_the_rotated_token_and_a_sane_expiry(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    from test_fleet_tokens import chain, fleet

    tessie.expires_in = float("nan")
    config = make_config(tesla=fleet(tessie))
    result = cli(config, "--at", AT)
    assert result.code == 0, result.log
    kept = chain(config)
    assert kept["refresh_token"] == "NA_fleet-refresh-0001" and kept["expires_at"] == START.timestamp() + 3600


# ---- D13, D14: no traceback, no endless wait ------------------------------------------------------


def test_check_and_the_helpers_turn_odd_answers_into_exit_codes(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    tessie.products = [
        {"energy_site_id": None, "resource_type": "battery", "components": {"battery": True}},
        {"energy_site_id": {"x": 1}, "components": "odd"},
    ]
    before = config.read_text()
    listed = cli(config, "--write", script="get_site_id.py")
    assert listed.code == 2 and "No energy sites" in listed.stderr
    assert config.read_text() == before  # never "site_id = None" (nor an empty one)
    kraken.raw_answers = {"devices": {"errors": [{"path": [["nested"]], "message": "odd"}], "data": {"devices": None}}}
    checked = cli(config, "--check", "--at", AT)
    assert checked.code in (1, 2) and "Traceback" not in checked.stdout + checked.stderr
    kraken.raw_answers = {"savingSessions": "[" * 100_000}
    deep = cli(config, script="savings_sessions.py")
    assert deep.code == 1 and "Traceback" not in deep.stderr


def test_a_server_trickling_its_headers_cannot_hold_check(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(debug={"timeout_seconds": "0.2"})
    tessie.inject("read", "trickle_headers", times=2)
    started = time.monotonic()
    result = cli(config, "--check", "--at", AT)
    assert result.code == 1 and "Tesla" in result.stdout
    assert time.monotonic() - started < 5  # two attempts of 3 x 0.2 s, not 40 s of headers


# ---- D15: warnings about the cars are said once ----------------------------------------------------


def test_no_ev_is_warned_about_once_not_every_poll(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.devices = [d for d in kraken.data.devices if d["id"] != DEVICE_ID]
    config = make_config()
    for minute in (0, 3, 6, 9):
        assert cli(config, "--at", at(minute)).code == 0
    assert Path(str(config) + ".log").read_text().count("No live smart-charging device") == 1


# ---- D16: messages name the key at fault ------------------------------------------------------------


def test_a_wrong_account_number_names_the_account_number(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    result = cli(make_config(octopus={"account_number": "A-99999999"}), "--at", AT)
    assert result.code == 2 and "check [octopus] account_number" in result.log
    assert "[octopus] api_key" not in result.log


def test_a_fleet_403_names_the_refresh_token_and_its_scopes(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    from test_fleet_tokens import fleet

    tessie.inject("post", "http", status=403)
    result = cli(make_config(tesla=fleet(tessie)), "--at", AT)
    assert result.code == 2 and "check [tesla] refresh_token" in result.log and "energy_cmds" in result.log


# ---- D17: --status on any state ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        '{"failing": {"since": NaN, "runs": 2, "reason": "x"}, "tesla": {"posted_at": Infinity}}',
        '{"failing": {"since": 1e308, "runs": 2}, "octopus_calls": {"backoff_until": -5}}',
        '{"tesla": {"posted_at": "2026-11-24"}, "failing": []}',
    ],
)
def test_status_reads_any_state(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result], state: str
) -> None:
    config = make_config()
    Path(str(config) + ".state.json").write_text(state)
    result = cli(config, "--status", "--at", AT)
    assert result.code in (0, 1) and "Last run:" in result.stdout and "Traceback" not in result.stderr


# ---- D19: a failed Power Up field is not an empty list ----------------------------------------------


def test_free_electricity_says_when_octopus_failed_the_power_up_field(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.inject("customerFlexibilityCampaignEvents", "KT-CT-4340", times=2)
    result = cli(make_config(), script="free_electricity.py")
    assert result.code == 1 and "not the Power Up field" in result.stderr


# ---- D20: Retry-After, as Tesla may send it --------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["nan", "HTTP-DATE"])
def test_retry_after_nan_or_a_date_is_honoured_without_a_crash(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    retry_after: str,
) -> None:
    from datetime import UTC

    real_later = datetime.now(UTC) + timedelta(minutes=20)  # a date is read against the machine's clock
    value = format_datetime(real_later, usegmt=True) if retry_after == "HTTP-DATE" else retry_after
    tessie.inject("post", "http", status=429, times=100, retry_after=value)
    config = make_config()
    result = cli(config, "--at", AT)
    assert result.code == 1 and "Traceback" not in result.log and "rate limited" in result.log
    tessie.clear_log()
    for minute in range(1, 11):
        assert cli(config, "--at", at(minute)).code in (0, 1)
    tries = {r["at"] for r in tessie.requests if r["method"] == "POST"}
    if retry_after == "HTTP-DATE":
        assert tries == set()  # 20 minutes asked for: none in the next 10
    else:  # nothing usable said: waits of 1, 2, 4 ... minutes, never a post every minute
        assert len(tessie.requests) <= 3 * 2


def test_an_http_date_retry_after_is_read() -> None:
    from iops.services.http import _retry_after

    class Answer:
        def __init__(self, value: str) -> None:
            self.headers = {"Retry-After": value}

    later = datetime.now(START.tzinfo) + timedelta(minutes=10)
    seconds = _retry_after(Answer(format_datetime(later, usegmt=True)))  # type: ignore[arg-type]
    assert seconds is not None and 590 < seconds <= 600
    assert _retry_after(Answer("nan")) is None and _retry_after(Answer("inf")) is None  # type: ignore[arg-type]
    assert _retry_after(Answer("120")) == 120  # type: ignore[arg-type]


# ---- D21: a reader that stops early -----------------------------------------------------------------


@pytest.mark.parametrize("args", [["--sample"], ["--sample", "--dry-run"]])
def test_a_closed_pipe_ends_quietly(tmp_path: Path, args: list[str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "io_powerwall_scheduler.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line (| head -0, | true)
    errors = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "error" not in errors.lower() and "Traceback" not in errors  # (--dry-run shows the view on stderr)


def test_the_durable_records_are_readable_with_sqlite3(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    with sqlite3.connect(str(config) + ".db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert db.execute("SELECT site_id FROM own_tariff").fetchall() == [(SITE_ID,)]
