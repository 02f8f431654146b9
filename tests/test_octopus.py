"""Octopus side: Power Ups, saving sessions, rates, and every fault the fake Kraken can inject."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import AT, Result, read_state
from fakes import DEVICE_ID, IMPORT_MPAN, FakeKraken, FakeTessie

from iops.core.errors import BadResponse, CredentialsRejected, RateLimited
from iops.core.events import plan_sessions
from iops.core.tariff import price_grid
from iops.services.kraken_answers import (
    Reauthenticate,
    check_graphql,
    parse_dispatch_data,
    parse_power_ups,
    parse_session_events,
)

START = datetime.fromisoformat(AT)  # Tuesday 24 Nov 2026, 12:00 GMT
AUTO_RATES = {"rates": "auto", "import_peak": "", "import_off_peak": "", "export": ""}  # every price from Octopus


def at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def grid_at(tessie: FakeTessie, weekday: int, hhmm: str) -> tuple[str, float, float]:
    grid = price_grid(tessie.posted[-1]["tou_settings"]["tariff_content_v2"])
    assert grid is not None
    h, m = map(int, hhmm.split(":"))
    return grid[weekday * 48 + h * 2 + m // 30]


def power_up(start: str, end: str, *, participant: bool | None = True) -> dict[str, Any]:
    node: dict[str, Any] = {
        "code": f"FREE_ELECTRICITY_EVENT_{start[8:10]}",
        "name": "Free Electricity",
        "startAt": start,
        "endAt": end,
    }
    if participant is not None:
        node["isEventParticipant"] = participant
    return node


def session(
    event_id: int, start: str, end: str, points: int, kind: str = "TURN_DOWN", regions: list[int] | None = None
) -> dict[str, Any]:
    return {
        "id": event_id,
        "code": f"EVENT_{event_id}",
        "rewardPerKwhInOctoPoints": points,
        "startAt": start,
        "endAt": end,
        "eventType": kind,
        "targetRegion": [{"regionId": r} for r in regions or []],
    }


def forget_cached(config: Path, key: str) -> None:
    state = read_state(config)
    state["octopus"].pop(key, None)
    Path(str(config) + ".state.json").write_text(json.dumps(state))


# ---- end to end: events shape the posted tariff on the right dates ---------------------------


def test_power_up_and_joined_power_down_on_the_same_day(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.power_ups = [
        power_up("2026-11-26T12:00:00+00:00", "2026-11-26T13:00:00+00:00"),  # Thursday
        power_up("2026-11-26T14:00:00+00:00", "2026-11-26T15:00:00+00:00", participant=False),
        power_up("2026-11-20T12:00:00+00:00", "2026-11-20T13:00:00+00:00"),  # past
    ]
    kraken.data.saving_events = [
        session(1, "2026-11-26T17:30:00+00:00", "2026-11-26T18:30:00+00:00", 1800),  # joined, £2.25
        session(2, "2026-11-27T17:00:00+00:00", "2026-11-27T18:00:00+00:00", 1600),  # not joined
        session(3, "2026-11-25T17:00:00+00:00", "2026-11-25T18:00:00+00:00", 100),  # joined, £0.125: not worth it
    ]
    kraken.data.joined_event_ids = [1, 3]
    result = cli(make_config(), "--at", AT)
    assert result.code == 0, result.log
    assert grid_at(tessie, 3, "12:00") == ("SUPER_OFF_PEAK", 0.0, 0.0)
    assert grid_at(tessie, 3, "12:30") == ("SUPER_OFF_PEAK", 0.0, 0.0)
    assert grid_at(tessie, 3, "14:00")[0] == "ON_PEAK"  # not taking part
    assert grid_at(tessie, 4, "12:00")[0] == "ON_PEAK"  # the past event's weekday is untouched
    assert grid_at(tessie, 3, "17:30") == ("PARTIAL_PEAK", 2.55, 0.15)
    assert grid_at(tessie, 3, "18:00") == ("PARTIAL_PEAK", 2.55, 0.15)
    assert grid_at(tessie, 3, "18:30")[0] == "ON_PEAK"
    assert grid_at(tessie, 4, "17:00")[0] == "ON_PEAK"  # not joined
    assert grid_at(tessie, 2, "17:00")[0] == "ON_PEAK"  # reward below export + offset
    tariff = tessie.posted[-1]["tou_settings"]["tariff_content_v2"]
    assert set(tariff["energy_charges"]["Summer"]["rates"]) == {"ON_PEAK", "OFF_PEAK", "SUPER_OFF_PEAK", "PARTIAL_PEAK"}
    # Power Ups ride in the dispatch request; saving sessions use the backend host with the raw token.
    backend = [r for r in kraken.requests if r["path"] == FakeKraken.BACKEND_PATH]
    assert len(backend) == 1 and not backend[0]["auth"].startswith("JWT ")
    batched = [r for r in kraken.requests if "flexPlannedDispatches" in r["operations"]]
    assert batched[0]["variables"] == {
        "accountNumber": "A-1234ABCD",
        "device0": DEVICE_ID,
        "mpan": IMPORT_MPAN,
        "campaignSlug": "free_electricity",
    }
    assert "A-1234ABCD" not in batched[0]["query"]  # values travel as variables, never in the query text


def test_a_joined_session_outranks_a_power_up_on_the_same_half_hour(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """A joined session is a promise not to import, so it keeps winning where a Power Up overlaps it."""
    kraken.data.power_ups = [power_up("2026-11-26T17:00:00+00:00", "2026-11-26T18:00:00+00:00")]
    kraken.data.saving_events = [session(1, "2026-11-26T17:30:00+00:00", "2026-11-26T18:30:00+00:00", 1800)]
    kraken.data.joined_event_ids = [1]
    assert cli(make_config(), "--at", AT).code == 0
    assert grid_at(tessie, 3, "17:00") == ("SUPER_OFF_PEAK", 0.0, 0.0)
    assert grid_at(tessie, 3, "17:30")[0] == "PARTIAL_PEAK"
    assert grid_at(tessie, 3, "18:00")[0] == "PARTIAL_PEAK"


def test_weekend_happy_hour_joined_is_free(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.saving_events = [
        session(7, "2026-11-28T12:00:00+00:00", "2026-11-28T13:00:00+00:00", 0, kind="WEEKEND_HAPPY_HOUR")
    ]
    kraken.data.joined_event_ids = [7]
    assert cli(make_config(), "--at", AT).code == 0
    assert grid_at(tessie, 5, "12:00") == ("SUPER_OFF_PEAK", 0.0, 0.0)


def test_features_off_ignore_events(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.power_ups = [power_up("2026-11-26T12:00:00+00:00", "2026-11-26T13:00:00+00:00")]
    kraken.data.saving_events = [session(1, "2026-11-26T17:30:00+00:00", "2026-11-26T18:30:00+00:00", 1800)]
    kraken.data.joined_event_ids = [1]
    config = make_config(features={"free_electricity": "false", "saving_sessions": "false"})
    assert cli(config, "--at", AT).code == 0
    assert grid_at(tessie, 3, "12:00")[0] == "ON_PEAK" and grid_at(tessie, 3, "17:30")[0] == "ON_PEAK"
    assert all("customerFlexibilityCampaignEvents" not in r["operations"] for r in kraken.requests)
    assert all(r["path"] != FakeKraken.BACKEND_PATH for r in kraken.requests)


def test_auto_join_joins_worthwhile_sessions_in_region(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.saving_events = [
        session(1, "2026-11-26T17:30:00+00:00", "2026-11-26T18:30:00+00:00", 1800, regions=[5]),
        session(2, "2026-11-27T17:30:00+00:00", "2026-11-27T18:30:00+00:00", 1800, regions=[9]),  # other region
        session(3, "2026-11-25T17:30:00+00:00", "2026-11-25T18:30:00+00:00", 400),  # below £1
    ]
    config = make_config(features={"auto_join_saving_sessions": "true", "auto_join_min_reward": "1.00"})
    result = cli(config, "--at", AT)
    assert result.code == 0, result.log
    assert kraken.data.joined_event_ids == [1]
    assert "Octopus says it joined saving session EVENT_1" in result.log
    assert cli(config, "--at", at(4)).code == 0
    assert grid_at(tessie, 3, "17:30")[0] == "PARTIAL_PEAK"
    assert grid_at(tessie, 4, "17:30")[0] == "ON_PEAK"


def test_unexpected_power_up_shape_means_no_free_slots(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.power_ups = [{"startAt": 17}]  # a node with nonsense in it
    result = cli(make_config(), "--at", AT)
    assert result.code == 0, result.log
    assert "Ignoring Power Up events with an unexpected shape" in result.log
    assert (
        "SUPER_OFF_PEAK"
        not in tessie.posted[-1]["tou_settings"]["tariff_content_v2"]["energy_charges"]["Summer"]["rates"]
    )


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"customerFlexibilityCampaignEvents": None},
        {"customerFlexibilityCampaignEvents": {"edges": []}},
        {"customerFlexibilityCampaignEvents": {"edges": "garbage"}},
        {"customerFlexibilityCampaignEvents": [1, 2]},
    ],
)
def test_power_up_parser_never_crashes(data: Any) -> None:
    assert parse_power_ups(data, START) == []


# ---- rates ---------------------------------------------------------------------------------------


def test_auto_rates_from_agreements_cached_and_overridden(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config(tariff=AUTO_RATES)
    shown = cli(config, "--at", AT, "--show")
    assert shown.code == 0, shown.stderr
    assert "Rates in use: import peak £0.2896, off-peak £0.0700, export £0.1500" in shown.stdout
    assert cli(config, "--at", AT).code == 0
    assert grid_at(tessie, 1, "12:00") == ("ON_PEAK", 0.28959, 0.15)
    assert grid_at(tessie, 1, "02:00") == ("OFF_PEAK", 0.07, 0.07)
    kraken.clear_log()
    assert cli(config, "--at", at(1)).code == 0
    assert all(r["operations"] != ["rest"] and "account" not in r["operations"] for r in kraken.requests)
    override = make_config("override.txt", tariff={**AUTO_RATES, "import_peak": "0.40"})
    assert cli(override, "--at", AT).code == 0
    assert grid_at(tessie, 1, "12:00")[1] == 0.4 and grid_at(tessie, 1, "02:00")[1] == 0.07


def test_auto_rates_for_day_night_only_products(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.import_tariff = ("IOG-SMB-TOU-25-12-12", "E-1R-IOG-SMB-TOU-25-12-12-H")
    kraken.data.unit_rates["E-1R-IOG-SMB-TOU-25-12-12-H"] = {"day": [31.5], "night": [6.5]}
    config = make_config(tariff=AUTO_RATES)
    assert cli(config, "--at", AT).code == 0
    assert grid_at(tessie, 1, "12:00")[1] == 0.315 and grid_at(tessie, 1, "02:00")[1] == 0.065


YESTERDAY, TODAY, NOON = "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z", "2026-11-24T12:00:00Z"
WEEK_AGO = "2026-11-17T00:00:00Z"


@pytest.mark.parametrize(
    ("product", "tariff"),
    [
        ("IOG-SMB-VAR-24-10-29", "E-1R-IOG-SMB-VAR-24-10-29-H"),
        ("IOG-SMB-FIX-12M-26-02-11", "E-1R-IOG-SMB-FIX-12M-26-02-11-H"),
        ("IOG-SMB-FIX-6M-26-03-05", "E-1R-IOG-SMB-FIX-6M-26-03-05-H"),
        ("INTELLI-FIX-OEV-26-08-22", "E-1R-INTELLI-FIX-OEV-26-08-22-H"),
    ],
)
def test_the_2026_codes_take_each_bands_rate_valid_now_from_its_own_feed(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    product: str,
    tariff: str,
) -> None:
    """The day rate fell at noon: the rate valid now (13:00), not the day's highest; the window stays
    23:30-05:30 whatever the feeds say; and the 2026 Charge Cap rules apply."""
    kraken.data.import_tariff = (product, tariff)
    kraken.data.unit_rates[tariff] = {
        "day": [(31.0, YESTERDAY, NOON), (29.0, NOON, None)],
        "night": [(6.5, WEEK_AGO, None)],
    }
    result = cli(make_config(tariff=AUTO_RATES), "--at", at(60), "--show")
    assert result.code == 0, result.stderr
    assert "Rates in use: import peak £0.2900, off-peak £0.0650" in result.stdout
    assert "dispatch_trust = started, car allowance 12 half-hours a day" in result.stdout
    assert cli(make_config(tariff=AUTO_RATES), "--at", at(60)).code == 0
    assert [grid_at(tessie, 1, hhmm)[0] for hhmm in ("23:00", "23:30", "05:00", "05:30", "07:00")] == [
        "ON_PEAK",
        "OFF_PEAK",
        "OFF_PEAK",
        "ON_PEAK",
        "ON_PEAK",
    ]


def test_a_lagging_day_feed_keeps_its_own_last_rate_never_the_nights(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """Octopus published today's night rate but not yet today's day rate (the feeds can lag each
    other): the day keeps its own last rate, and daytime is never priced at the night rate."""
    code = "E-1R-IOG-SMB-VAR-24-10-29-H"
    kraken.data.import_tariff = ("IOG-SMB-VAR-24-10-29", code)
    kraken.data.unit_rates[code] = {
        "day": [(30.0, WEEK_AGO, TODAY)],
        "night": [(6.5, WEEK_AGO, TODAY), (6.9, TODAY, None)],
    }
    result = cli(make_config(tariff=AUTO_RATES), "--at", AT)
    assert result.code == 0, result.log
    assert grid_at(tessie, 1, "12:00")[:2] == ("ON_PEAK", 0.3)
    assert grid_at(tessie, 1, "02:00")[:2] == ("OFF_PEAK", 0.069)
    assert "has not published today's day rate for E-1R-IOG-SMB-VAR-24-10-29-H yet: using its last one" in result.log


def test_the_window_is_23_30_to_05_30_local_in_summer_too(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """Peers read the day/night feeds as Economy 7 and put off-peak at 01:30-08:30 BST: not here."""
    code = "E-1R-IOG-SMB-VAR-24-10-29-H"
    kraken.data.import_tariff = ("IOG-SMB-VAR-24-10-29", code)
    kraken.data.unit_rates[code] = {
        "day": [(30.0, "2026-07-01T00:00:00Z", None)],
        "night": [(7.0, "2026-07-01T00:00:00Z", None)],
    }
    assert cli(make_config(tariff=AUTO_RATES), "--at", "2026-07-15T12:00:00+01:00").code == 0
    grid = price_grid(tessie.posted[-1]["tou_settings"]["tariff_content_v2"])
    assert grid is not None
    wednesday = 2 * 48
    local = {f"{h // 2:02d}:{h % 2 * 30:02d}": grid[wednesday + h][0] for h in range(48)}
    assert [local[t] for t in ("23:00", "23:30", "01:30", "05:00", "05:30", "08:00")] == [
        "ON_PEAK",
        "OFF_PEAK",
        "OFF_PEAK",
        "OFF_PEAK",
        "ON_PEAK",
        "ON_PEAK",
    ]


def test_auto_rates_missing_is_a_config_error(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.unit_rates = {}
    result = cli(make_config(tariff=AUTO_RATES), "--at", AT)
    assert result.code == 2
    assert "[tariff] import_peak: could not be read from Octopus" in result.log
    assert tessie.posted == []


# ---- faults: nothing built from partial data is ever posted --------------------------------


FAULTS = [
    # (operation, kind, status, expected log text)
    ("flexPlannedDispatches", "KT-CT-4340", 0, "KT-CT-4340"),
    ("flexPlannedDispatches", "KT-CT-1199", 0, "rate limited (KT-CT-1199)"),
    ("obtainKrakenToken", "KT-CT-1199", 0, "rate limited (KT-CT-1199)"),
    ("flexPlannedDispatches", "http", 500, "Octopus: HTTP 500"),
    ("flexPlannedDispatches", "http", 503, "Octopus: HTTP 503"),
    ("flexPlannedDispatches", "html502", 0, "Octopus: HTTP 502"),
    ("flexPlannedDispatches", "html403", 0, "Octopus: HTTP 403 block page"),
    ("flexPlannedDispatches", "malformed", 0, "answer is not JSON"),
    ("flexPlannedDispatches", "hang", 0, "Octopus: no answer within 1 s"),
    ("savingSessions", "http", 502, "Octopus: HTTP 502"),
    ("savingSessions", "KT-CT-4340", 0, "GraphQL error KT-CT-4340"),
    # Kraken's usual 4340: the dispatch field fails, the rest of the answer stands (BCD #1369).
    ("flexPlannedDispatches", "field:KT-CT-4340", 0, "GraphQL error KT-CT-4340"),
    ("completedDispatches", "field:KT-CT-4341", 0, "GraphQL error KT-CT-4341"),
    ("rest", "http", 500, "Octopus: HTTP 500"),
]


@pytest.mark.parametrize(("operation", "kind", "status", "logged"), FAULTS)
def test_no_fault_ever_produces_a_post(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    operation: str,
    kind: str,
    status: int,
    logged: str,
) -> None:
    config = make_config(tariff=AUTO_RATES if operation == "rest" else {})
    if operation in ("obtainKrakenToken", "rest"):
        first_run = []  # the fault hits the very first run
    else:
        assert cli(config, "--at", AT).code == 0
        first_run = list(tessie.posted)
        forget_cached(config, "saving_sessions")  # so this run asks for them again
    kraken.data.planned = [{"start": "2026-11-24T19:30:00+00:00", "end": "2026-11-24T20:00:00+00:00", "type": "SMART"}]
    kraken.inject(operation, kind, status=status, times=5)
    result = cli(config, "--at", at(3))  # the next poll
    assert result.code == 1, result.log
    assert tessie.posted == first_run
    failures = [line for line in result.log.splitlines() if " ERROR " in line]
    assert len(failures) == 1 and logged in failures[0], failures
    assert "keeping the current tariff" in failures[0]


def test_rate_limit_backs_off_and_repeated_failures_are_logged_once(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    kraken.inject("flexPlannedDispatches", "KT-CT-1199", times=100)
    assert cli(config, "--at", at(3)).code == 1
    kraken.clear_log()
    for minute in range(4, 8):  # backing off for 5 minutes: Octopus is left alone
        assert cli(config, "--at", at(minute)).code == 0
    assert kraken.requests == []
    assert cli(config, "--at", at(8)).code == 1  # tries again, fails again, backs off longer
    kraken.faults.clear()
    kraken.clear_log()
    assert cli(config, "--at", at(17)).code == 0  # still in the 10-minute back-off
    assert kraken.requests == []
    assert cli(config, "--at", at(18)).code == 0
    assert kraken.requests != []
    log = Path(str(config) + ".log").read_text()
    assert log.count("rate limited") == 1  # logged when it started, not every minute
    assert "Services back after 2 failed run(s)" in log


def test_expired_refresh_and_bad_token_recover_through_the_api_key(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    state_path = Path(str(config) + ".state.json")
    state = read_state(config)
    state["octopus"]["token"] = "garbage"  # KT-CT-1143 on use
    state["octopus"]["refresh_token"] = "refresh-unknown"  # KT-CT-1139-style refusal on refresh
    state["octopus"]["token_expires"] = 0
    state_path.write_text(json.dumps(state))
    result = cli(config, "--at", at(3))
    assert result.code == 0, result.log
    assert read_state(config)["octopus"]["token"] in kraken.tokens


# ---- pure parsers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("KT-CT-1124", Reauthenticate),
        ("KT-CT-1143", Reauthenticate),
        ("KT-CT-1134", Reauthenticate),
        ("KT-CT-1139", CredentialsRejected),
        ("KT-CT-1199", RateLimited),
        ("KT-CT-4340", BadResponse),
        ("OE-1305", BadResponse),
    ],
)
def test_graphql_error_codes(code: str, error: type[Exception]) -> None:
    body = {"data": {"x": None}, "errors": [{"message": "m", "extensions": {"errorCode": code}}]}
    with pytest.raises(error):
        check_graphql(body)


def test_accepted_codes_and_missing_data() -> None:
    body = {"data": {"x": 1}, "errors": [{"message": "m", "extensions": {"errorCode": "KT-CT-4340"}}]}
    assert check_graphql(body, frozenset({"KT-CT-4340"})) == {"x": 1}
    with pytest.raises(BadResponse):
        check_graphql({"data": None})
    with pytest.raises(BadResponse):
        check_graphql(["not", "an", "object"])


def test_dispatch_parser_accepts_legacy_time_format_and_rejects_junk() -> None:
    data = parse_dispatch_data(
        {
            "ev0": [{"start": "2024-02-25 02:00:00+00:00", "end": "2024-02-25 02:30:00+00:00", "type": "SMART"}],
            "completedDispatches": [],
        },
        ["car"],
    )
    assert data.planned[0].slot.start.isoformat() == "2024-02-25T02:00:00+00:00"
    assert data.planned[0].device == "car"
    with pytest.raises(BadResponse):
        parse_dispatch_data({"ev0": [{"start": "yesterday", "end": None}], "completedDispatches": []}, ["car"])
    with pytest.raises(BadResponse):
        parse_dispatch_data({"ev0": None, "completedDispatches": []}, ["car"])
    with pytest.raises(BadResponse):
        parse_dispatch_data({"ev0": [], "completedDispatches": [{"start": "x", "meta": "odd"}]}, ["car"])


def test_session_rules() -> None:
    data = {
        "savingSessions": {
            "events": [
                session(1, "2026-11-26T17:30:00+00:00", "2026-11-26T18:30:00+00:00", 240),
                session(2, "2026-11-20T17:30:00+00:00", "2026-11-20T18:30:00+00:00", 2000),
            ],
            "account": {
                "hasJoinedCampaign": True,
                "signedUpMeterPoint": None,
                "joinedEvents": [{"eventId": 1}, {"eventId": 2}],
            },
        }
    }
    events = parse_session_events(data, START)
    assert [e.code for e in events] == ["EVENT_1"]  # the ended one is dropped
    assert events[0].reward == 0.3  # 240 points / 800
    # 0.30 > 0.15 export + 0.10 offset: counts; with a 0.20 offset it does not.
    assert len(plan_sessions(events, export_rate=0.15, min_offset=0.10, auto_join_min_reward=None).saving_sessions) == 1
    assert plan_sessions(events, export_rate=0.15, min_offset=0.20, auto_join_min_reward=None).saving_sessions == []
    not_signed_up = {"savingSessions": {**data["savingSessions"], "account": {"hasJoinedCampaign": False}}}
    assert parse_session_events(not_signed_up, START) == []


def test_listing_helpers_print_upcoming_events(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.power_ups = [power_up("2099-01-01T12:00:00+00:00", "2099-01-01T13:00:00+00:00")]
    kraken.data.saving_events = [session(9, "2099-01-02T17:00:00+00:00", "2099-01-02T18:00:00+00:00", 800)]
    kraken.data.joined_event_ids = [9]
    config = make_config()
    ups = cli(config, script="free_electricity.py")
    assert ups.code == 0, ups.stderr
    assert ups.stdout == "Power Up  2099-01-01T12:00:00+00:00 - 2099-01-01T13:00:00+00:00\n"
    downs = cli(config, script="savings_sessions.py")
    assert downs.code == 0, downs.stderr
    assert downs.stdout == "Power Down EVENT_9 2099-01-02T17:00:00+00:00 - 2099-01-02T18:00:00+00:00 £1.00/kWh joined\n"
    assert cli(make_config("bad.txt", octopus={"api_key": "sk_live_wrong"}), script="savings_sessions.py").code == 2


def test_the_parser_keeps_smart_dispatches_and_drops_boost_test_and_bump_ones() -> None:
    """Planned: SMART (or no type) only. Completed: any location (Octopus relabels them AWAY and
    still bills them cheap); a null location is at home; a bump charge or boost is left out."""
    from iops.services.kraken_answers import parse_dispatch_data

    def slot(hour: int, **extra: Any) -> dict[str, Any]:
        return {"start": f"2026-11-24T{hour:02d}:00:00+00:00", "end": f"2026-11-24T{hour:02d}:30:00+00:00", **extra}

    data = {
        "ev0": [
            slot(10, type="SMART"),
            slot(11, type="BOOST"),
            slot(12, type="TEST"),
            slot(13),
            slot(14, type="smart"),
        ],
        "completedDispatches": [
            slot(1, meta={"source": None, "location": "AT_HOME"}),
            slot(2, meta={"source": "smart-charge", "location": "AWAY"}),
            slot(3, meta={"source": None, "location": None}),
            slot(4, meta={"source": "bump-charge", "location": "AT_HOME"}),
            slot(5, meta={"source": "BOOST", "location": None}),
            slot(6, meta=None),
            slot(7, meta={"source": "test", "location": "AT_HOME"}),
        ],
    }
    parsed = parse_dispatch_data(data, ["car"])
    assert [p.slot.start.hour for p in parsed.planned] == [10, 13, 14]
    assert [s.start.hour for s in parsed.completed] == [1, 2, 3, 6]


# ---- weekend happy hours are a menu; a join is Octopus's claim, not proof --------------------------


def test_a_happy_hour_menu_prices_only_the_booked_hour_and_joins_none(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    """Sunday 29 Nov: four 0-point candidates 11:00-15:00, the 12:00 one booked on the website (in
    joinedEvents, its code null); auto-join on, and a worthwhile Power Down that it does join."""
    menu = [
        session(
            20 + k, f"2026-11-29T{11 + k}:00:00+00:00", f"2026-11-29T{12 + k}:00:00+00:00", 0, kind="WEEKEND_HAPPY_HOUR"
        )
        for k in range(4)
    ]
    menu[1]["code"] = None
    kraken.data.saving_events = [
        *menu,
        session(1, "2026-11-26T17:30:00+00:00", "2026-11-26T18:30:00+00:00", 1800),
    ]
    kraken.data.joined_event_ids = [21]
    config = make_config(features={"auto_join_saving_sessions": "true", "auto_join_min_reward": "1.00"})
    for minutes in (0, 4, 8):
        result = cli(config, "--at", at(minutes))
        assert result.code == 0, result.log
    joins = [r["variables"]["eventCode"] for r in kraken.requests if r["operations"] == ["joinSavingSessionsEvent"]]
    assert joins == ["EVENT_1"]  # never a candidate hour
    assert [grid_at(tessie, 6, f"{h}:00")[0] for h in (11, 12, 13, 14)] == [
        "ON_PEAK",
        "SUPER_OFF_PEAK",
        "ON_PEAK",
        "ON_PEAK",
    ]
    assert grid_at(tessie, 6, "12:30") == ("SUPER_OFF_PEAK", 0.0, 0.0)
    assert grid_at(tessie, 3, "17:30")[0] == "PARTIAL_PEAK"


@pytest.mark.parametrize("refusal", ["OE-1308", "OE-1305", "http500"])
def test_a_refused_join_never_stops_the_tariff(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    refusal: str,
) -> None:
    """OE-1308 "already signed up" comes for accounts that are not opted in (BottlecapDave#1865):
    each run still posts, the session is not counted, the refusal is logged once and the join is
    tried again at most hourly."""
    kraken.data.saving_events = [session(1, "2026-11-26T17:30:00+00:00", "2026-11-26T18:30:00+00:00", 1800)]
    kraken.data.planned = [{"start": at(120), "end": at(150), "type": "SMART"}]
    if refusal == "http500":
        kraken.inject("joinSavingSessionsEvent", "http", status=500, times=99)
    else:
        kraken.data.join_refusals["EVENT_1"] = refusal
    config = make_config(features={"auto_join_saving_sessions": "true", "auto_join_min_reward": "1.00"})

    def joins() -> int:
        return len([r for r in kraken.requests if r["operations"] == ["joinSavingSessionsEvent"]])

    joined_at = []
    for minutes in range(0, 80, 4):
        before = joins()
        result = cli(config, "--at", at(minutes))
        assert result.code == 0, result.log
        if joins() > before:
            joined_at.append(minutes)
    logs = result.log  # the log file, all runs
    assert tessie.posted and grid_at(tessie, 1, "14:00")[0] == "OFF_PEAK"  # the slot went to Tesla
    assert grid_at(tessie, 3, "17:30")[0] == "ON_PEAK"  # not counted: joinedEvents does not list it
    assert joined_at == [0, 60]  # tried again an hour later, not every poll
    assert logs.count("Could not join saving session EVENT_1") == 1


def test_a_join_that_joinedevents_never_lists_is_not_counted_and_said_once(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.saving_events = [session(1, "2026-11-26T17:30:00+00:00", "2026-11-26T18:30:00+00:00", 1800)]
    kraken.data.join_claims_only = {"EVENT_1"}
    config = make_config(
        features={
            "auto_join_saving_sessions": "true",
            "auto_join_min_reward": "1.00",
            "saving_sessions_poll_minutes": "5",
        }
    )
    for minutes in range(0, 40, 4):
        result = cli(config, "--at", at(minutes))
        assert result.code == 0, result.log
    logs = result.log  # the log file, all runs
    assert grid_at(tessie, 3, "17:30")[0] == "ON_PEAK"
    assert logs.count("but joinedEvents does not list it") == 1
    kraken.data.joined_event_ids = [1]  # Octopus catches up
    result = cli(config, "--at", at(48))
    assert result.code == 0
    assert grid_at(tessie, 3, "17:30")[0] == "PARTIAL_PEAK"
