"""Hostile inputs and broken surroundings: every run ends with 0, 1 or 2 and says why."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import AT, Result
from fakes import API_KEY, TESSIE_TOKEN, FakeKraken, FakeTessie

from iops.app import cache
from iops.core import decision


def test_a_missing_folder_is_named_and_nothing_is_created(tmp_path: Path, cli: Callable[..., Result]) -> None:
    path = tmp_path / "typo" / "config.txt"
    result = cli(path)
    assert result.code == 2 and f"its folder {path.parent} does not exist" in result.stderr
    assert not path.parent.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[tariff]\nname = Café\n".encode("latin-1"), "not UTF-8 text (saved as Latin-1 or UTF-16?)"),
        ("[tariff]\nname = x\n".encode("utf-16"), "not UTF-8 text"),
        (None, "is a folder, not a config file"),
    ],
)
def test_unreadable_configs_exit_2_naming_the_file(
    tmp_path: Path, cli: Callable[..., Result], content: bytes | None, expected: str
) -> None:
    path = tmp_path / "config.txt"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    result = cli(path)
    assert result.code == 2, result.stderr
    assert str(path) in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr


def test_a_byte_order_mark_is_accepted(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    assert cli(config, "--at", AT, "--dry-run").code == 0


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ("tariff", {"import_peak": "nan"}, "[tariff] import_peak: must be a finite number"),
        ("debug", {"timeout_seconds": "inf"}, "[debug] timeout_seconds: must be a finite number"),
        ("mqtt", {"wait_seconds": "0"}, "[mqtt] wait_seconds: must be above 0"),
        ("tariff", {"import_peak": "30"}, "[tariff] import_peak: 30 is above 10; a typo?"),
        ("tariff", {"off_peak_start": "05:30", "off_peak_end": "05:30"}, "[tariff] off_peak_end: equals"),
        ("tesla", {"site_id": "STE123"}, "[tesla] site_id: must be digits only"),
        ("octopus", {"graphql_url": "http://api.octopus.energy/v1/graphql/"}, "must be an https:// address"),
        ("tesla", {"api_base_url": "http://tessie.example/"}, "must be an https:// address"),
    ],
)
def test_bad_values_are_config_errors(
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
    assert tessie.posted == []


def test_a_key_pasted_into_a_price_is_not_printed(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    result = cli(make_config(tariff={"import_peak": API_KEY}), "--at", AT)
    assert result.code == 2 and "[tariff] import_peak: the value given is not a number" in result.stderr
    assert API_KEY not in result.stderr + result.stdout + result.log


@pytest.mark.parametrize("port", ["pw12", "ub4dor"])
def test_a_short_secret_typed_into_the_wrong_setting_is_not_printed(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    port: str,
) -> None:
    """The MQTT password (or a piece of it) typed into ``port``: the error names the key, not the value."""
    password = "pw12" if port == "pw12" else "tr0ub4dor"
    mqtt = {"enabled": "true", "host": "127.0.0.1", "port": port, "username": "me", "password": password}
    result = cli(make_config(mqtt=mqtt), "--at", AT)
    assert result.code == 2 and "[mqtt] port: the value given is not a number" in result.stderr, result.stderr
    assert port not in result.stderr + result.stdout + result.log
    plain = cli(make_config("plain.txt", mqtt={**mqtt, "port": "1883 tcp"}), "--at", AT)
    assert "[mqtt] port: '1883 tcp' is not a number" in plain.stderr  # an ordinary typo is still quoted


def test_a_config_others_can_read_is_warned_about(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    config.chmod(0o644)
    first = cli(config, "--at", AT)
    second = cli(config, "--at", "2026-11-24T12:01:00+00:00")
    assert first.code == second.code == 0
    for result in (first, second):
        assert f"run  chmod 600 {config}" in result.stderr
    assert second.log.count("chmod 600") == 1  # in the log once, not every minute


def test_an_unusable_lock_file_is_a_clear_error(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    Path(str(config) + ".lock").mkdir()  # as root, permissions do not stop us; a folder does
    result = cli(config, "--at", AT)
    assert result.code == 1 and "Cannot open the lock file" in result.stderr
    assert "Traceback" not in result.stderr and tessie.posted == []


def test_an_unusable_log_file_falls_back_to_stderr_and_the_run_goes_on(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    Path(str(config) + ".log").mkdir()
    result = cli(config, "--at", AT)
    assert result.code == 0 and len(tessie.posted) == 1
    assert "Cannot write the log file" in result.stderr and "Posted tariff" in result.stderr


def test_an_unwritable_state_stops_the_run_before_it_posts(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    Path(str(config) + ".state.json").mkdir()
    for minute in ("00", "05"):
        result = cli(config, "--at", f"2026-11-24T12:{minute}:00+00:00")
        assert result.code == 1 and "Cannot write the state file" in result.log
    assert [r for r in tessie.requests if r["method"] == "POST"] == []  # never posted, so never reposted


def test_a_state_that_becomes_unwritable_never_turns_into_a_post_every_minute(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0 and len(tessie.posted) == 1

    def disk_full(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "save", disk_full)  # the state still reads; it cannot be written
    kraken.data.planned = [{"start": "2026-11-24T19:30:00+00:00", "end": "2026-11-24T20:00:00+00:00", "type": "SMART"}]
    for minute in range(4, 20):
        assert cli(config, "--at", f"2026-11-24T12:{minute:02d}:00+00:00").code in (0, 1)
    assert len(tessie.posted) == 1  # not posted, so not posted again and again
    assert "Cannot write the state file" in Path(str(config) + ".log").read_text()


@pytest.mark.parametrize("at", ["1999-12-31T23:00:00+00:00", "2101-01-01T00:00:00+00:00", "yesterday"])
def test_at_far_from_today_is_refused(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result], at: str
) -> None:
    result = cli(make_config(), "--at", at)
    assert result.code == 2 and "--at" in result.stderr and "Traceback" not in result.stderr


def test_an_unexpected_error_is_logged_with_its_traceback_and_exits_1(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError(f"a bug near {API_KEY}")

    monkeypatch.setattr(decision, "assemble", broken)
    config = make_config()
    result = cli(config, "--at", AT)
    assert result.code == 1
    assert "Unexpected error (a bug; please report it)" in result.log and "Traceback" in result.log
    assert "RuntimeError: a bug near ***" in result.log  # the traceback is redacted too
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert API_KEY not in result.log + result.stderr
    status = cli(config, "--status", "--at", AT)
    assert status.code == 1 and "unexpected RuntimeError" in status.stdout


# ---- secrets in what servers say back ----------------------------------------------------------


def test_a_tesla_error_that_echoes_the_token_is_redacted(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    tessie.inject("post", "echo")
    result = cli(make_config(), "--at", AT, "--debug")
    assert result.code == 1
    assert "you sent Authorization: Bearer ***" in result.log  # the server really did say it back
    assert TESSIE_TOKEN not in result.log + result.stderr + result.stdout


def test_a_kraken_error_that_echoes_the_token_is_redacted(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    kraken.inject("flexPlannedDispatches", "KT-CT-9999", message="Refused the token {auth} for this account")
    result = cli(config, "--at", "2026-11-24T12:03:00+00:00", "--debug")
    assert result.code == 1
    assert "Refused the token *** for this account" in result.log
    for token in kraken.tokens:
        assert token not in result.log + result.stderr + result.stdout


def test_a_server_trickling_one_byte_at_a_time_cannot_hold_a_run(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(debug={"timeout_seconds": "0.3"})
    kraken.inject("obtainKrakenToken", "trickle", times=2)
    started = time.monotonic()
    result = cli(config, "--at", AT)
    assert result.code == 1 and "Octopus: no answer within 0.3 s" in result.log
    assert time.monotonic() - started < 5  # two attempts of at most 3 timeouts each, not the trickle's 15 s


@pytest.mark.parametrize(
    ("state", "warned"),
    [
        ({"octopus": ["a token cache saved as a list"]}, "dropped section 'octopus' (of an unexpected type)"),
        ({"octopus": {"token": "x", "token_expires": "soon"}}, "dropped octopus.token_expires: unusable value"),
        ({"octopus_calls": {"backoff_until": 1e12}}, "dropped octopus_calls.backoff_until: unusable value"),
        ({"failing": {"runs": "many", "reason": 5}}, None),
        ({"dispatch": {"started": {"car": ["2026-11-24T12:00"]}}}, None),
    ],
)
def test_a_damaged_state_section_is_dropped_with_a_warning_never_a_crash(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    state: dict[str, Any],
    warned: str | None,
) -> None:
    config = make_config()
    Path(str(config) + ".state.json").write_text(json.dumps(state))
    result = cli(config, "--at", AT)
    assert result.code == 0, result.log
    assert len(tessie.posted) == 1 and "Traceback" not in result.log
    if warned:
        assert result.log.count(warned) == 1


def test_a_redirect_never_carries_a_token_elsewhere(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    tessie.redirect_to = kraken.url + "/collect"  # another host, as far as the token is concerned
    tessie.inject("post", "redirect", times=2)
    kraken.redirect_to = tessie.url + "/collect"
    kraken.inject("flexPlannedDispatches", "redirect")
    config = make_config()
    assert cli(config, "--at", AT).code == 1  # Octopus redirected the dispatch query
    assert cli(config, "--at", "2026-11-24T12:03:00+00:00").code == 1  # Tesla redirected the post
    assert not [r for r in kraken.requests + tessie.requests if r["path"] == "/collect"]


@pytest.mark.parametrize(
    ("operation", "answer"),
    [
        ("completedDispatches", {"data": {"devices": [], "ev0": [], "completedDispatches": [{"meta": "odd"}]}}),
        (
            "flexPlannedDispatches",
            {
                "data": {
                    "ev0": [{"start": "2026-11-24T14:00:00+00:00", "end": "9999-12-31T23:59:59+00:00"}],
                    "completedDispatches": [],
                    "devices": [],
                }
            },
        ),
        (
            "savingSessions",
            {
                "data": {
                    "savingSessions": {
                        "events": [
                            {
                                "id": 1,
                                "startAt": "2026-11-25T17:00:00+00:00",
                                "endAt": "2026-11-25T18:00:00+00:00",
                                "rewardPerKwhInOctoPoints": "lots",
                            }
                        ],
                        "account": {},
                    }
                }
            },
        ),
    ],
)
def test_odd_octopus_shapes_are_bad_responses_not_tracebacks(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    operation: str,
    answer: dict[str, Any],
) -> None:
    kraken.raw_answers = {operation: answer}
    started = time.monotonic()
    result = cli(make_config(), "--at", AT)
    assert result.code in (0, 1) and "Traceback" not in result.log + result.stderr
    assert time.monotonic() - started < 10  # a year-9999 end is clipped, not walked
    if result.code == 1:
        assert "Octopus:" in result.log


def test_a_helper_command_waits_for_the_run_lock_before_touching_the_state(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    fd = os.open(str(config) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a scheduler run is under way
        result = cli(config, script="free_electricity.py")
    finally:
        os.close(fd)
    assert result.code == 1 and "is under way; try again" in result.stderr
    assert not Path(str(config) + ".state.json").exists() and kraken.requests == []
