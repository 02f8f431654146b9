"""The 2026 IOG billing rules end to end: the CLI against the fake Kraken, with --dry-run --at."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import AT, Result, read_state
from fakes import DEVICE_ID, FakeKraken, FakeTessie, _agreement

from iops.core.tariff import price_grid

SMB = ("IOG-SMB-TOU-25-12-12", "E-1R-IOG-SMB-TOU-25-12-12-H")
VAN_ID = "00000000-0009-4000-8020-0000000b0b0b"
SMART = "SMART_CONTROL_IN_PROGRESS"


def dispatch(start: str, end: str, kind: str = "SMART") -> dict[str, Any]:
    return {"start": f"2026-11-{start}:00+00:00", "end": f"2026-11-{end}:00+00:00", "type": kind}


def completed(start: str, end: str, location: str | None = "AT_HOME") -> dict[str, Any]:
    return {
        "start": f"2026-11-{start}:00+00:00",
        "end": f"2026-11-{end}:00+00:00",
        "delta": "-1.2",
        "meta": {"source": None, "location": location},
    }


def labels(body: dict[str, Any], weekday: int, *times: str) -> list[str]:
    grid = price_grid(body["tou_settings"]["tariff_content_v2"])
    assert grid is not None
    out = []
    for hhmm in times:
        h, m = map(int, hhmm.split(":"))
        out.append(grid[weekday * 48 + h * 2 + m // 30][0])
    return out


def dry(cli: Callable[..., Result], config: Path, at: str, *extra: str) -> Result:
    result = cli(config, "--at", f"2026-11-{at}:00+00:00", "--dry-run", *extra)
    assert result.code == 0, result.stderr
    return result


def add_van(kraken: FakeKraken) -> None:
    kraken.data.devices.append(
        {
            "id": VAN_ID,
            "provider": "OHME",
            "deviceType": "ELECTRIC_VEHICLES",
            "status": {"current": "LIVE"},
            "__typename": "SmartFlexVehicle",
        }
    )


# ---- which dispatches to trust -------------------------------------------------------------------


def test_started_trust_on_iog_smb_before_and_after_the_slot_begins(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.import_tariff = SMB
    kraken.data.planned = [dispatch("24T14:00", "24T15:00")]
    kraken.data.device_states = {DEVICE_ID: SMART}
    config = make_config()
    before = dry(cli, config, "24T13:50")
    assert labels(before.body(), 1, "14:00", "14:30") == ["ON_PEAK", "ON_PEAK"]
    under_way = dry(cli, config, "24T14:05")
    assert labels(under_way.body(), 1, "14:00", "14:30") == ["OFF_PEAK", "ON_PEAK"]  # later half-hour waits
    second = dry(cli, config, "24T14:35")
    # 14:00 is past and not yet in completedDispatches: peak; 14:30 is under way.
    assert labels(second.body(), 1, "14:00", "14:30") == ["ON_PEAK", "OFF_PEAK"]
    kraken.data.completed = [completed("24T14:00", "24T14:30")]
    confirmed = dry(cli, config, "24T14:35")
    assert labels(confirmed.body(), 1, "14:00", "14:30") == ["OFF_PEAK", "OFF_PEAK"]
    assert labels(confirmed.body(), 1, "02:00") == ["OFF_PEAK"]  # the fixed window, always
    assert tessie.requests == []


def test_the_same_slot_on_the_original_iog_is_cheap_from_the_plan(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.planned = [dispatch("24T14:00", "24T15:00")]
    kraken.data.device_states = {DEVICE_ID: "SMART_CONTROL_CAPABLE"}
    config = make_config()
    assert labels(dry(cli, config, "24T12:00").body(), 1, "14:00", "14:30") == ["OFF_PEAK", "OFF_PEAK"]
    # The user can ask for the stricter rule on any tariff.
    strict = make_config("strict.txt", tariff={"dispatch_trust": "started"})
    assert labels(dry(cli, strict, "24T12:00").body(), 1, "14:00", "14:30") == ["ON_PEAK", "ON_PEAK"]


def test_unplugged_car_at_the_slot_start_stays_peak(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.import_tariff = SMB
    kraken.data.planned = [dispatch("24T14:00", "24T15:00")]  # a phantom slot
    kraken.data.device_states = {DEVICE_ID: "SMART_CONTROL_CAPABLE"}
    config = make_config()
    result = dry(cli, config, "24T14:05", "--show")
    assert labels(json.loads(result.stdout[result.stdout.index("{") :]), 1, "14:00") == ["ON_PEAK"]
    assert "Tue 14:00 - 15:00  # peak" in result.stdout
    assert "planned slot not started yet (dispatch_trust = started)" in result.stdout


def test_a_live_run_remembers_a_started_half_hour_after_the_car_stops(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.import_tariff = SMB
    kraken.data.planned = [dispatch("24T14:00", "24T15:00")]
    kraken.data.device_states = {DEVICE_ID: SMART}
    config = make_config()
    first = cli(config, "--at", "2026-11-24T14:02:00+00:00")
    assert first.code == 0, first.log
    assert "Tue 24 Nov 14:00-14:30 OFF_PEAK (started), Tue 24 Nov 14:30-15:00 ON_PEAK (not-started)" in first.log
    assert read_state(config)["dispatch"]["started"] == {DEVICE_ID: ["2026-11-24T14:00:00+00:00"]}
    kraken.data.device_states = {DEVICE_ID: "SMART_CONTROL_CAPABLE"}  # the car finished at 14:10
    assert cli(config, "--at", "2026-11-24T14:12:00+00:00").code == 0
    assert len(tessie.posted) == 1  # nothing changed: 14:00 is still off-peak
    assert labels(tessie.posted[-1], 1, "14:00") == ["OFF_PEAK"]


# ---- the car allowance ------------------------------------------------------------------------------


def test_fourteen_half_hours_in_one_allowance_day_on_iog_smb(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.import_tariff = SMB
    kraken.data.planned = [
        dispatch("24T14:00", "24T17:00"),  # 6 half-hours
        dispatch("25T00:00", "25T02:00"),  # 4 in the fixed window: they use allowance too
        dispatch("25T06:00", "25T08:00"),  # the 11th to 14th
        dispatch("25T13:00", "25T13:30"),  # the next allowance day
    ]
    config = make_config(tariff={"dispatch_trust": "planned"})  # the allowance is automatic: 12
    result = dry(cli, config, "24T12:00", "--show")
    body = json.loads(result.stdout[result.stdout.index("{") :])
    assert labels(body, 1, "14:00", "16:30") == ["OFF_PEAK", "OFF_PEAK"]
    assert labels(body, 2, "01:00", "06:00", "06:30", "07:00", "07:30", "13:00") == [
        "OFF_PEAK",
        "OFF_PEAK",
        "OFF_PEAK",
        "ON_PEAK",
        "ON_PEAK",
        "OFF_PEAK",
    ]
    assert "Wed 07:00 - 08:00  # peak                         past the car allowance" in result.stdout
    assert "car allowance 12 half-hours a day (tariff E-1R-IOG-SMB-TOU-25-12-12-H)" in result.stdout
    unlimited = make_config("unlimited.txt", tariff={"dispatch_trust": "planned", "car_allowance_half_hours": "0"})
    assert labels(dry(cli, unlimited, "24T12:00").body(), 2, "07:00", "07:30") == ["OFF_PEAK", "OFF_PEAK"]


@pytest.mark.parametrize("location", ["AWAY", None, "AT_HOME"])
def test_completed_slots_use_the_allowance_whatever_their_location(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    location: str | None,
) -> None:
    """Octopus relabels completed dispatches AT_HOME -> AWAY hours later and still bills them cheap
    (batpred#4946): they still count toward the car allowance, and stay cheap in the past."""
    kraken.data.import_tariff = SMB
    kraken.data.completed = [completed("24T12:00", "24T17:00", location)]  # 10 half-hours
    kraken.data.planned = [dispatch("24T17:00", "24T19:00")]  # the 11th to 14th
    config = make_config(tariff={"dispatch_trust": "planned"})
    body = dry(cli, config, "24T17:00").body()
    assert labels(body, 1, "12:00", "16:30", "17:00", "17:30", "18:00", "18:30") == [
        "OFF_PEAK",
        "OFF_PEAK",
        "OFF_PEAK",
        "OFF_PEAK",
        "ON_PEAK",
        "ON_PEAK",
    ]


def test_two_evs_each_with_its_own_allowance_in_one_request(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    add_van(kraken)
    kraken.data.import_tariff = SMB
    kraken.data.planned = [dispatch("24T13:00", "24T20:00")]  # the car: 14 half-hours
    kraken.data.planned_by_device = {VAN_ID: [dispatch("24T21:00", "24T22:00")]}  # the van: 2
    config = make_config(tariff={"dispatch_trust": "planned"})
    body = dry(cli, config, "24T12:00").body()
    assert labels(body, 1, "18:30", "19:00", "19:30", "21:00", "21:30") == [
        "OFF_PEAK",
        "ON_PEAK",  # the car's 13th and 14th are past its allowance
        "ON_PEAK",
        "OFF_PEAK",  # the van's own allowance is untouched
        "OFF_PEAK",
    ]
    polls = [r for r in kraken.requests if "flexPlannedDispatches" in r["operations"]]
    assert len(polls) == 1
    assert {polls[0]["variables"]["device0"], polls[0]["variables"]["device1"]} == {DEVICE_ID, VAN_ID}


def test_a_second_ev_added_later_is_followed_from_the_next_run(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    add_van(kraken)
    kraken.data.planned_by_device = {VAN_ID: [dispatch("24T15:00", "24T15:30")]}
    assert cli(config, "--at", "2026-11-24T12:03:00+00:00").code == 0  # learns of the van
    assert cli(config, "--at", "2026-11-24T12:06:00+00:00").code == 0  # asks for its dispatches
    assert labels(tessie.posted[-1], 1, "15:00") == ["OFF_PEAK"]
    assert [r["operations"] for r in kraken.requests].count(["devices"]) == 1  # no extra device query


# ---- partial answers and agreements -----------------------------------------------------------------


def test_power_up_field_error_keeps_the_last_good_list_and_still_posts_dispatch_changes(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.power_ups = [
        {"code": "FE_1", "name": "Free", "startAt": "2026-11-26T12:00:00+00:00", "endAt": "2026-11-26T13:00:00+00:00"}
    ]
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    kraken.inject("customerFlexibilityCampaignEvents", "field:KT-CT-4340", times=100)
    kraken.data.planned = [dispatch("24T19:30", "24T20:00")]
    result = cli(config, "--at", "2026-11-24T12:04:00+00:00")
    assert result.code == 0, result.log
    assert len(tessie.posted) == 2
    assert labels(tessie.posted[-1], 1, "19:30") == ["OFF_PEAK"]  # the dispatch change went out
    assert labels(tessie.posted[-1], 3, "12:00") == ["SUPER_OFF_PEAK"]  # the kept Power Up list
    assert "using the Power Up list from 2026-11-24T12:00" in result.log
    assert " WARNING " in result.log and " ERROR " not in result.log
    later = cli(config, "--at", "2026-11-24T18:01:00+00:00")  # the list is now over 6 hours old
    assert later.code == 0
    assert labels(tessie.posted[-1], 3, "12:00") == ["ON_PEAK"]
    assert later.log.count("not the Power Up field") == 1  # warned once, when the failure began


def test_dispatch_field_error_keeps_the_live_tariff(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    config = make_config()
    assert cli(config, "--at", AT).code == 0
    kraken.inject("flexPlannedDispatches", "field:KT-CT-4340")
    kraken.data.planned = [dispatch("24T19:30", "24T20:00")]
    result = cli(config, "--at", "2026-11-24T12:03:00+00:00")
    assert result.code == 1
    assert "KT-CT-4340" in result.log and len(tessie.posted) == 1


def test_a_future_agreement_changes_nothing_until_it_starts(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.import_valid_to = "2026-11-25T00:00:00+00:00"  # a switch already arranged for tomorrow
    kraken.data.later_imports = [_agreement("2026-11-25T00:00:00+00:00", None, *SMB)]
    kraken.data.unit_rates[SMB[1]] = {"day": [33.0], "night": [5.0]}
    kraken.data.planned = [dispatch("24T14:00", "24T15:00")]
    config = make_config(tariff={"rates": "auto", "import_peak": "", "import_off_peak": "", "export": ""})
    now = dry(cli, config, "24T12:00", "--show")
    assert "import peak £0.2896, off-peak £0.0700" in now.stdout
    assert "dispatch_trust = planned" in now.stdout
    assert labels(json.loads(now.stdout[now.stdout.index("{") :]), 1, "14:00") == ["OFF_PEAK"]
    live = cli(config, "--at", AT)  # caches the agreements and rates for a day
    assert live.code == 0
    kraken.clear_log()
    switched = cli(config, "--at", "2026-11-25T10:00:00+00:00", "--show")
    assert "import peak £0.3300, off-peak £0.0500" in switched.stdout
    assert "dispatch_trust = started, car allowance 12" in switched.stdout
    assert not any("account" in r["operations"] for r in kraken.requests)  # switched from the cached list


def test_no_agreement_falls_back_to_planned_and_says_so_once(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.import_valid_to = "2026-01-01T00:00:00+00:00"  # ended: no import agreement now
    kraken.data.planned = [dispatch("24T14:00", "24T15:00")]
    config = make_config(features={"free_electricity": "false"})
    assert cli(config, "--at", AT).code == 0
    assert cli(config, "--at", "2026-11-24T12:01:00+00:00").code == 0
    log = Path(str(config) + ".log").read_text()
    assert log.count("No import agreement known") == 1
    assert labels(tessie.posted[-1], 1, "14:00") == ["OFF_PEAK"]


# ---- Power Ups and Power Downs at the edges -----------------------------------------------------------


@pytest.mark.parametrize("newest_first", [False, True])
def test_next_power_up_is_seen_behind_a_long_history_whichever_the_order(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    newest_first: bool,
) -> None:
    past = [
        {"code": f"FE_{i}", "name": "Free", "startAt": f"2025-{1 + i // 28:02d}-{1 + i % 28:02d}T12:00:00+00:00"}
        for i in range(40)
    ]
    for node in past:
        node["endAt"] = node["startAt"].replace("T12", "T13")
    upcoming = {"code": "FE_NEXT", "name": "Free", "startAt": "2026-11-26T12:00:00+00:00"}
    upcoming["endAt"] = "2026-11-26T13:00:00+00:00"
    kraken.data.power_ups = [*past, upcoming]
    kraken.data.power_ups_newest_first = newest_first
    body = dry(cli, make_config(), "24T12:00").body()
    assert labels(body, 3, "12:00", "12:30", "13:00") == ["SUPER_OFF_PEAK", "SUPER_OFF_PEAK", "ON_PEAK"]


def test_power_up_already_in_progress_is_still_free(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.power_ups = [
        {"code": "FE_1", "name": "Free", "startAt": "2026-11-24T11:30:00+00:00", "endAt": "2026-11-24T13:00:00+00:00"}
    ]
    body = dry(cli, make_config(), "24T12:10").body()
    assert labels(body, 1, "11:30", "12:00", "12:30", "13:00") == [
        "SUPER_OFF_PEAK",
        "SUPER_OFF_PEAK",
        "SUPER_OFF_PEAK",
        "ON_PEAK",
    ]


@pytest.mark.parametrize(("points", "label"), [(200, "ON_PEAK"), (201, "PARTIAL_PEAK")])
def test_saving_session_reward_exactly_at_the_threshold_does_not_count(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    points: int,
    label: str,
) -> None:
    # Export 0.15 + min_saving_offset 0.10 = 0.25 GBP/kWh = 200 OctoPoints: only a reward above it counts.
    kraken.data.saving_events = [
        {
            "id": 4,
            "code": "EVENT_4",
            "rewardPerKwhInOctoPoints": points,
            "startAt": "2026-11-25T17:30:00+00:00",
            "endAt": "2026-11-25T18:30:00+00:00",
            "eventType": "TURN_DOWN",
            "targetRegion": [],
        }
    ]
    kraken.data.joined_event_ids = [4]
    assert labels(dry(cli, make_config(), "24T12:00").body(), 2, "17:30", "18:00") == [label, label]


@pytest.mark.parametrize(("joined", "label"), [([], "ON_PEAK"), ([8], "SUPER_OFF_PEAK")])
def test_weekend_happy_hour_is_free_only_when_joined(
    kraken: FakeKraken,
    tessie: FakeTessie,
    make_config: Callable[..., Path],
    cli: Callable[..., Result],
    joined: list[int],
    label: str,
) -> None:
    kraken.data.saving_events = [
        {
            "id": 8,
            "code": "EVENT_8",
            "rewardPerKwhInOctoPoints": 0,
            "startAt": "2026-11-28T12:00:00+00:00",
            "endAt": "2026-11-28T13:00:00+00:00",
            "eventType": "WEEKEND_HAPPY_HOUR",
            "targetRegion": [],
        }
    ]
    kraken.data.joined_event_ids = joined
    assert labels(dry(cli, make_config(), "24T12:00").body(), 5, "12:00", "12:30") == [label, label]


def test_show_explains_every_cheap_half_hour(
    kraken: FakeKraken, tessie: FakeTessie, make_config: Callable[..., Path], cli: Callable[..., Result]
) -> None:
    kraken.data.planned = [dispatch("24T14:00", "24T15:00"), dispatch("25T05:00", "25T06:15")]
    kraken.data.completed = [completed("24T10:00", "24T10:30")]
    kraken.data.power_ups = [
        {"code": "FE_1", "name": "Free", "startAt": "2026-11-25T09:00:00+00:00", "endAt": "2026-11-25T10:00:00+00:00"}
    ]
    result = cli(make_config(), "--at", AT, "--show")
    assert result.code == 0, result.stderr
    why = result.stdout[result.stdout.index("Why") :]
    assert "  Tue 14:00 - 15:00  . off-peak                     planned smart slot\n" in why
    assert "  Wed 05:30 - 06:30  . off-peak                     planned smart slot\n" in why
    assert "  Wed 09:00 - 10:00  0 free (Power Up)              Power Up\n" in why
    assert "Tue 10:00" not in why  # the past is not shown
    assert "23:30" not in why  # nor the fixed window
