"""The scheduler as cron runs it: a subprocess against fake Kraken and Tessie servers."""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import AT, Result, read_state
from fakes import API_KEY, TESSIE_TOKEN, FakeKraken, FakeTessie

from iops.core.tariff import price_grid, tariff_digest, validate_tariff


def dispatch(start: str, end: str, kind: str = "SMART") -> dict[str, Any]:
    return {"start": start, "end": end, "type": kind, "energyAddedKwh": "-1.5"}


def label_at(tariff: dict[str, Any], weekday: int, hhmm: str) -> str:
    grid = price_grid(tariff)
    assert grid is not None
    h, m = map(int, hhmm.split(":"))
    return grid[weekday * 48 + h * 2 + m // 30][0]


def posted_tariff(tessie: FakeTessie, index: int = -1) -> dict[str, Any]:
    tariff: dict[str, Any] = tessie.posted[index]["tou_settings"]["tariff_content_v2"]
    return tariff


def test_daytime_slot_lands_on_its_own_weekday_only(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.planned = [
        dispatch("2026-11-24T14:00:00+00:00", "2026-11-24T15:00:00+00:00"),  # today, Tuesday
        dispatch("2026-11-25T10:00:00+00:00", "2026-11-25T10:30:00+00:00"),  # tomorrow, Wednesday
    ]
    result = cli(make_config(), "--at", AT, fresh=True)  # a real process, as cron runs it
    assert result.code == 0, result.stderr
    assert len(tessie.posted) == 1
    tariff = posted_tariff(tessie)
    assert validate_tariff(tariff) == []
    assert tariff["currency"] == "GBP"
    assert label_at(tariff, 1, "14:00") == "OFF_PEAK"
    assert label_at(tariff, 1, "14:30") == "OFF_PEAK"
    assert label_at(tariff, 1, "15:00") == "ON_PEAK"
    assert label_at(tariff, 2, "14:00") == "ON_PEAK"  # tomorrow's same hour stays peak
    assert label_at(tariff, 2, "10:00") == "OFF_PEAK"
    assert label_at(tariff, 1, "10:00") == "ON_PEAK"  # today's same hour stays peak
    assert label_at(tariff, 4, "03:00") == "OFF_PEAK"  # core window every day
    assert tariff["energy_charges"]["Summer"]["rates"] == {"OFF_PEAK": 0.07, "ON_PEAK": 0.3}
    assert tariff["sell_tariff"]["energy_charges"]["Summer"]["rates"] == {"OFF_PEAK": 0.07, "ON_PEAK": 0.15}
    assert "Posted tariff" in result.log and "Tue 24 Nov 14:00-15:00 OFF_PEAK" in result.log


def test_quiet_minutes_poll_octopus_every_third_minute_and_leave_tesla_alone(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.planned = [dispatch("2026-11-24T14:00:00+00:00", "2026-11-24T15:00:00+00:00")]
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    first_run_ops = kraken.operations()
    assert ["obtainKrakenToken"] in first_run_ops
    kraken.clear_log()
    tessie.clear_log()
    between = cli(config, "--at", "2026-11-24T12:01:00+00:00", "--debug")
    assert between.code == 0, between.stderr
    assert kraken.requests == [] and tessie.requests == []  # between polls: no network at all
    assert "Octopus not polled: polled recently" in between.log
    result = cli(config, "--at", "2026-11-24T12:03:00+00:00")
    assert result.code == 0, result.stderr
    assert kraken.operations() == [
        ["devices", "flexPlannedDispatches", "completedDispatches", "customerFlexibilityCampaignEvents"]
    ]
    assert tessie.requests == []
    assert len(tessie.posted) == 1
    assert result.log.count("Posted tariff") == 1  # quiet minutes are not logged
    state_path = Path(str(config) + ".state.json")
    written = state_path.stat().st_mtime_ns
    assert cli(config, "--at", "2026-11-24T12:04:00+00:00").code == 0
    assert state_path.stat().st_mtime_ns == written  # nothing changed, nothing written


def test_changed_slots_post_again_and_vanished_slots_too(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    kraken.data.planned = [dispatch("2026-11-24T19:30:00+00:00", "2026-11-24T20:15:00+00:00")]
    assert cli(config, "--at", "2026-11-24T12:04:00+00:00").code == 0  # the next poll; posts 4 minutes apart
    assert len(tessie.posted) == 2
    tariff = posted_tariff(tessie)
    assert [label_at(tariff, 1, t) for t in ("19:00", "19:30", "20:00", "20:30")] == [
        "ON_PEAK",
        "OFF_PEAK",
        "OFF_PEAK",
        "ON_PEAK",
    ]
    kraken.data.planned = []  # withdrawn at the last minute
    assert cli(config, "--at", "2026-11-24T12:08:00+00:00").code == 0
    assert len(tessie.posted) == 3
    assert label_at(posted_tariff(tessie), 1, "19:30") == "ON_PEAK"


def test_boost_and_test_dispatches_are_not_off_peak_a_completed_away_one_is(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.planned = [
        dispatch("2026-11-24T14:00:00+00:00", "2026-11-24T15:00:00+00:00", "BOOST"),
        dispatch("2026-11-24T16:00:00+00:00", "2026-11-24T16:30:00+00:00", "TEST"),
    ]
    kraken.data.completed = [
        {
            "start": "2026-11-24T10:00:00+00:00",
            "end": "2026-11-24T10:30:00+00:00",
            "delta": "-1",
            "meta": {"source": None, "location": "AWAY"},
        },
        {
            "start": "2026-11-24T11:00:00+00:00",
            "end": "2026-11-24T11:30:00+00:00",
            "delta": "-1",
            "meta": {"source": "bump-charge", "location": "AT_HOME"},
        },
        {
            "start": "2026-11-24T08:00:00+00:00",
            "end": "2026-11-24T08:30:00+00:00",
            "delta": "-1",
            "meta": {"source": None, "location": "AT_HOME"},
        },
    ]
    assert cli(make_config(), "--at", AT).code == 0
    tariff = posted_tariff(tessie)
    for hhmm in ("14:00", "16:00", "11:00"):
        assert label_at(tariff, 1, hhmm) == "ON_PEAK", hhmm
    assert label_at(tariff, 1, "10:00") == "OFF_PEAK"  # relabelled AWAY after it ran, still billed cheap
    assert label_at(tariff, 1, "08:00") == "OFF_PEAK"


def test_force_posts_an_unchanged_tariff(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    assert cli(config, "--at", AT, "--force").code == 0
    assert len(tessie.posted) == 2
    assert tessie.posted[0] == tessie.posted[1]


def test_dry_run_prints_exactly_the_body_a_real_run_posts(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.planned = [dispatch("2026-11-24T14:00:00+00:00", "2026-11-24T15:00:00+00:00")]
    config = make_config()
    dry = cli(config, "--at", AT, "--dry-run")
    assert dry.code == 0, dry.stderr
    assert tessie.requests == []
    assert not Path(str(config) + ".state.json").exists()
    assert cli(config, "--at", AT).code == 0
    assert dry.body() == tessie.posted[0]


def test_show_prints_a_readable_timeline_without_posting(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.planned = [dispatch("2026-11-24T14:00:00+00:00", "2026-11-24T15:00:00+00:00")]
    result = cli(make_config(), "--at", AT, "--show")
    assert result.code == 0, result.stderr
    assert "Tue 14:00 - 15:00  . off-peak" in result.stdout
    assert "Tue 23:30 - 05:30  . off-peak" in result.stdout
    assert "Rates in use: import peak £0.3000" in result.stdout
    assert tessie.requests == []


def test_state_records_hash_of_what_was_posted(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    state_path = Path(str(config) + ".state.json")
    assert read_state(config)["tesla"]["posted_hash"] == tariff_digest(posted_tariff(tessie))
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600


def test_failed_post_is_not_recorded_and_is_retried(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    tessie.inject("post", "http", status=500, times=2)  # both attempts of this run
    result = cli(config, "--at", AT)
    assert result.code == 1
    assert "Tesla: HTTP 500" in result.log
    assert "posted_hash" not in read_state(config).get("tesla", {})
    assert cli(config, "--at", "2026-11-24T12:01:00+00:00").code == 0
    assert len(tessie.posted) == 1


def test_cached_token_is_reused_and_an_expired_one_replaced_once(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    kraken.expire_tokens()
    kraken.clear_log()
    result = cli(config, "--at", "2026-11-24T12:03:00+00:00")
    assert result.code == 0, result.log
    ops = kraken.operations()
    assert ops.count(["obtainKrakenToken"]) == 1
    assert len(ops) == 3  # refused query, new token, the query again


def test_overlapping_run_exits_quietly(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    fd = os.open(str(config) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = cli(config, "--at", AT)
    finally:
        os.close(fd)
    assert result.code == 0
    assert result.stdout == "" and result.stderr == ""
    assert kraken.requests == [] and tessie.requests == []


def test_two_configs_keep_separate_state(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    first = make_config("house.txt")
    second = make_config("annex.txt", tariff={"import_peak": "0.35"})
    assert cli(first, "--at", AT).code == 0
    assert cli(second, "--at", AT).code == 0
    a = read_state(first)
    b = read_state(second)
    assert a["tesla"]["posted_hash"] != b["tesla"]["posted_hash"]
    assert len(tessie.posted) == 2


def test_no_secret_reaches_output_or_log(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    tessie.inject("post", "error_body")
    result = cli(config, "--at", AT, "--debug")
    assert result.code == 1
    tokens = list(kraken.tokens)
    assert tokens
    for secret in [API_KEY, TESSIE_TOKEN, *tokens]:
        for text in (result.stdout, result.stderr, result.log):
            assert secret not in text
    assert "Couldn't update config syncer" in result.log


def test_secrets_from_environment(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(octopus={"api_key": ""}, tesla={"api_key": "<your Tessie API token>"})
    assert cli(config, "--at", AT).code == 2
    result = cli(config, "--at", AT, env={"OCTOPUS_API_KEY": API_KEY, "TESLA_API_KEY": TESSIE_TOKEN})
    assert result.code == 0, result.stderr
    assert len(tessie.posted) == 1


def test_rejected_keys_exit_2_and_name_the_key(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    result = cli(make_config(octopus={"api_key": "sk_live_wrong"}), "--at", AT)
    assert result.code == 2
    assert "[octopus] api_key" in result.log and "KT-CT-1139" in result.log
    result = cli(make_config("other.txt", tesla={"api_key": "wrong-token"}), "--at", AT)
    assert result.code == 2
    assert "[tesla] api_key" in result.log
    assert tessie.posted == []
